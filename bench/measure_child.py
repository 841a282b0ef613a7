"""A small launcher that measures the peak memory of one program:

    python -m bench.measure_child REPORT -- PROGRAM [ARGUMENTS...]

runs the program as its only child, passes SIGTERM and SIGINT on to it, and
writes ``{"returncode": ..., "peak_rss_kb": ...}`` to the file REPORT, where
the peak is ``getrusage(RUSAGE_CHILDREN).ru_maxrss``. The launcher exists
because Linux carries a process's high-water mark across ``exec``: a program
started straight from the harness (hundreds of MB) would report the
harness's memory as its own; started from this launcher (about 10 MB, and
nothing but the standard library), it reports its own.
"""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
from pathlib import Path


def main() -> int:
    report, separator, *command = sys.argv[1:]
    if separator != "--" or not command:
        raise SystemExit(__doc__)
    child = subprocess.Popen(command)
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda received, _: child.send_signal(received))
    returncode = child.wait()
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    Path(report).write_text(json.dumps({"returncode": returncode, "peak_rss_kb": peak}))
    return returncode if returncode >= 0 else 128 - returncode


if __name__ == "__main__":
    sys.exit(main())
