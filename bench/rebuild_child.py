"""A child process that does one rebuild and nothing else, so that its peak
memory is the rebuild's: ``python -m bench.rebuild_child URL NAME`` prints the
report as one JSON line."""

from __future__ import annotations

import json
import sys

from application.shop import Shop


def main() -> None:
    database_url, name = sys.argv[1:3]
    with Shop(database_url=database_url, subscribers="workers") as shop:
        [report] = shop.rebuild(name, mode="verify")
    print(
        json.dumps(
            {
                "seconds": report.seconds,
                "notifications_read": report.notifications_read,
                "events_applied": report.events_applied,
                "position": report.position,
                "agrees": report.agrees,
            }
        )
    )


if __name__ == "__main__":
    main()
