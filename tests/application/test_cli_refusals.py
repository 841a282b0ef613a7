"""Every command refuses bad arguments the same way: a typed eventshop error
is one line on stderr and exit status 2, never a traceback; a value argparse
can check (a count, a name it knows) is refused before anything is touched."""

from __future__ import annotations

import base64
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from application.cli import main

UNKNOWN_ID = str(uuid.UUID(int=7))
A_TIME = "2026-01-01T00:00:00+00:00"


def as_cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode()


# (command and its bad arguments, what the one line names)
TYPED_REFUSALS: dict[str, tuple[list[str], str]] = {
    "demo, bad url": (["demo", "--database-url", "mysql://h/db"], "unsupported"),
    "worker, bad url": (
        ["worker", "stock", "--database-url", "mysql://h/db"],
        "unsupported",
    ),
    "status, bad url": (["status", "--database-url", "sqlite:///"], "no folder"),
    "rebuild, bad url": (["rebuild", "stock", "--database-url", "x:"], "unsupported"),
    "dead-letters retry, bad id": (["dead-letters", "retry", "42"], "invalid"),
    "dead-letters retry, unknown id": (
        ["dead-letters", "retry", UNKNOWN_ID],
        "not found",
    ),
    "dead-letters discard, bad id": (["dead-letters", "discard", "x"], "invalid"),
    "audit verify, bad url": (["audit", "verify", "--database-url", "x:"], "url"),
    "audit history, bad id": (["audit", "history", "not-an-id"], "aggregate_id"),
    "audit events, limit 0": (["audit", "events", "--limit", "0"], "limit"),
    "audit events, huge limit": (
        ["audit", "events", "--limit", str(2**63)],
        "limit",
    ),
    "audit events, crafted cursor": (
        ["audit", "events", "--cursor", "eyJub3QiOiAiYSBjdXJzb3IifQ=="],
        "cursor",
    ),
    "audit events, bad SKU": (["audit", "events", "--sku", "no such sku!"], "sku"),
    "audit events, unknown type": (
        ["audit", "events", "--type", "Nothing.Happened"],
        "Nothing.Happened",
    ),
    "audit events, unknown service": (
        ["audit", "events", "--service", "Payroll"],
        "service",
    ),
    "audit events, bad actor": (["audit", "events", "--actor", ""], "actor"),
    "audit trace, bad id": (["audit", "trace", "nope"], "correlation_id"),
    "audit stock, bad SKU": (["audit", "stock", "tea pot?"], "sku"),
    "audit state, bad id": (["audit", "state", "nope"], "aggregate_id"),
    "audit state, version 0": (
        ["audit", "state", UNKNOWN_ID, "--version", "0"],
        "version",
    ),
    "audit state, version 2**63": (
        ["audit", "state", UNKNOWN_ID, "--version", str(2**63)],
        "version",
    ),
    "audit state, time before year 1 in UTC": (
        ["audit", "state", UNKNOWN_ID, "--at", "0001-01-01T00:00+05:00"],
        "at",
    ),
    "audit events, since before year 1 in UTC": (
        ["audit", "events", "--since", "0001-01-01T00:00+05:00"],
        "since",
    ),
    "audit events, until after year 9999 in UTC": (
        ["audit", "events", "--until", "9999-12-31T23:59-05:00"],
        "until",
    ),
    "audit events, actor with NUL": (["audit", "events", "--actor", "a\x00b"], "actor"),
    "audit events, customer with a newline": (
        ["audit", "events", "--customer", "line\nbreak"],
        "customer_id",
    ),
    "audit events, customer of 10 MB": (
        ["audit", "events", "--customer", "x" * 10_000_000],
        "customer_id",
    ),
    "audit events, cursor nested 100,000 deep": (
        ["audit", "events", "--cursor", as_cursor("[" * 100_000 + "]" * 100_000)],
        "cursor",
    ),
    "audit events, cursor with version 2**63": (
        [
            "audit",
            "events",
            "--cursor",
            as_cursor(f'["{A_TIME}", "{UNKNOWN_ID}", {2**63}]'),
        ],
        "cursor",
    ),
    "audit events, cursor beyond year 9999 in UTC": (
        [
            "audit",
            "events",
            "--cursor",
            as_cursor(f'["9999-12-31T23:59:59-05:00", "{UNKNOWN_ID}", 1]'),
        ],
        "cursor",
    ),
    "audit events, cursor of wrong types": (
        ["audit", "events", "--cursor", as_cursor("[1, 2, 3]")],
        "cursor",
    ),
    "audit trace, id with NUL": (["audit", "trace", "\x00"], "correlation_id"),
    "audit stock, SKU with NUL": (["audit", "stock", "TEA\x00"], "sku"),
    "audit history, lone surrogate": (["audit", "history", "\ud800"], "aggregate_id"),
    "dead-letters discard, reason with NUL": (
        ["dead-letters", "discard", UNKNOWN_ID, "--reason", "oops\x00"],
        "reason",
    ),
}

STORAGE_OPTIONS = ("--database-url", "--data-dir")


def with_storage(argv: list[str], data_dir: Path) -> list[str]:
    """``argv`` on a folder of the test's own, unless it names its storage."""
    if any(option in argv for option in STORAGE_OPTIONS):
        return argv
    return [*argv, "--data-dir", str(data_dir)]


def assert_one_line_refusal(stderr: str, names: str) -> None:
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("eventshop: error: ")
    assert names.lower() in lines[0].lower()


@pytest.mark.parametrize(
    ("argv", "names"), TYPED_REFUSALS.values(), ids=TYPED_REFUSALS.keys()
)
def test_a_typed_error_is_one_line_on_stderr_and_exit_2(
    argv: list[str],
    names: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # when a command is given a bad argument
    status = main(with_storage(argv, tmp_path / "data"))

    # then it says so in one line, with exit status 2
    assert status == 2
    assert_one_line_refusal(capsys.readouterr().err, names)


ARGPARSE_REFUSALS: dict[str, list[str]] = {
    "demo, negative customers": ["demo", "--customers", "-5"],
    "demo, no customers": ["demo", "--customers", "0"],
    "demo, too many customers": ["demo", "--customers", "100001"],
    "demo, no threads": ["demo", "--threads", "0"],
    "demo, too many threads": ["demo", "--threads", "65"],
    "demo, threads not a number": ["demo", "--threads", "four"],
    "demo, negative seed": ["demo", "--seed", "-1"],
    "worker, unknown subscriber": ["worker", "nobody"],
    "worker, batch size 0": ["worker", "stock", "--batch-size", "0"],
    "dead-letters list, unknown subscriber": [
        "dead-letters",
        "list",
        "--subscriber",
        "nobody",
    ],
    "rebuild, unknown read model": ["rebuild", "nope"],
    "audit events, not a time": ["audit", "events", "--since", "yesterday"],
    "audit events, time without zone": [
        "audit",
        "events",
        "--until",
        "2026-01-01T00:00",
    ],
}


@pytest.mark.parametrize(
    "argv", ARGPARSE_REFUSALS.values(), ids=ARGPARSE_REFUSALS.keys()
)
def test_a_bad_option_value_is_refused_before_anything_is_written(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"

    # when a command is given a value its parser refuses
    status = main(with_storage(argv, data_dir))

    # then it exits 2 with argparse's usage and error, and touched nothing
    assert status == 2
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    assert stderr.splitlines()[-1].startswith("eventshop ")
    assert ": error: argument " in stderr.splitlines()[-1]
    assert not data_dir.exists()


def test_help_still_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--help"]) == 0
    assert "--customers" in capsys.readouterr().out


EVENTSHOP = Path(sys.executable).parent / "eventshop"


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["audit", "history", "not-an-id"], "aggregate_id"),
        (["dead-letters", "retry", UNKNOWN_ID], "not found"),
        (["status", "--database-url", "mysql://h/db"], "unsupported"),
    ],
)
def test_the_installed_command_refuses_in_one_line(
    argv: list[str], names: str, tmp_path: Path
) -> None:
    # when the installed `eventshop` is given a bad argument
    done = subprocess.run(
        [str(EVENTSHOP), *with_storage(argv, tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    # then its stderr is one line and its exit status 2
    assert done.returncode == 2, done.stderr
    assert_one_line_refusal(done.stderr, names)


def test_the_installed_demo_refuses_no_threads_before_writing_stock(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    done = subprocess.run(
        [str(EVENTSHOP), "demo", "--threads", "0", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "--threads" in done.stderr
    assert not data_dir.exists()
