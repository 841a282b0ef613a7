"""What a fresh Python interpreter has imported after running some code: the
check behind the lazy package faces (a test's own process has imported
everything already, so only a new one can tell)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def modules_loaded_after(code: str, *, prefixes: tuple[str, ...]) -> list[str]:
    """The modules whose names start with one of ``prefixes`` that a new
    interpreter, started in the project's folder, holds after ``code``."""
    probe = (
        f"{code}\nimport json, sys\n"
        f"loaded = [m for m in sys.modules if m.startswith({prefixes!r})]\n"
        "print(json.dumps(sorted(loaded)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    loaded: list[str] = json.loads(result.stdout.strip().splitlines()[-1])
    return loaded
