"""The database password never shows: not on a worker's command line (anyone on
the machine reads those with ``ps``), not in a printed URL, error or repr."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from application import cli
from application.cli import demo_commands as cli_commands
from application.config import (
    DATABASE_URL_VARIABLE,
    Settings,
)
from application.databases import ConfigurationError, redact
from bench import processes

PASSWORD = "s3cret-Pa55word"
URL = f"postgresql://shopper:{PASSWORD}@db.example:5433/shop?schema=eventshop"


class RecordedProcess:
    """Stands in for a started process; keeps what it was started with."""

    started: list[RecordedProcess] = []

    def __init__(
        self, args: Sequence[str], env: Mapping[str, str] | None = None, **_: Any
    ) -> None:
        self.args = list(args)
        self.env = dict(env or {})
        self.returncode = 0
        RecordedProcess.started.append(self)

    def poll(self) -> int:
        return 0

    def terminate(self) -> None: ...

    def send_signal(self, _: int) -> None: ...

    def kill(self) -> None: ...

    def wait(self, timeout: float | None = None) -> int:
        return 0


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[RecordedProcess]:
    RecordedProcess.started = []
    monkeypatch.setattr(subprocess, "Popen", RecordedProcess)
    return RecordedProcess.started


def assert_settings_by_environment(started: list[RecordedProcess]) -> None:
    assert started
    for process in started:
        assert not any(PASSWORD in argument for argument in process.args)
        # The worker gets its storage from the environment instead.
        assert Settings.from_url(process.env[DATABASE_URL_VARIABLE]).postgres == (
            Settings.from_url(URL).postgres
        )


def test_demo_workers_get_the_password_by_environment_not_argv(
    recorded: list[RecordedProcess],
) -> None:
    with cli_commands.demo_workers(Settings.from_url(URL), Console(quiet=True)):
        pass
    assert len(recorded) >= 3
    assert_settings_by_environment(recorded)


def test_benchmark_workers_get_the_password_by_environment_not_argv(
    recorded: list[RecordedProcess], tmp_path: Path
) -> None:
    with processes.workers_running(URL, [["allocation"], ["stock"]], tmp_path):
        pass
    assert_settings_by_environment(recorded)


@pytest.mark.parametrize(
    "url",
    [
        f"postgresq://shopper:{PASSWORD}@db.example/shop",  # mistyped scheme
        f"mysql://shopper:{PASSWORD}@db.example/shop",
        f"postgresql://shopper:{PASSWORD}@db.example:port/shop",  # bad port
        f"postgresql://shopper:{PASSWORD}@db.example:5432/",  # no database
    ],
)
def test_a_refused_url_is_shown_without_its_password(url: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        Settings.from_url(url)
    assert PASSWORD not in str(refused.value)
    assert "db.example" in str(refused.value)


def test_the_cli_shows_a_refused_url_without_its_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = cli.main(
        ["status", "--database-url", f"postgresq://shopper:{PASSWORD}@h/db"]
    )
    out, err = capsys.readouterr()
    assert code != 0
    assert PASSWORD not in out + err
    assert "postgresq://shopper:***@h/db" in " ".join((out + err).split())


def test_settings_show_no_password() -> None:
    settings = Settings.from_url(URL)
    assert settings.postgres is not None
    assert settings.postgres.password == PASSWORD
    for shown in (
        repr(settings),
        str(settings),
        repr(settings.postgres),
        settings.describe(),
    ):
        assert PASSWORD not in shown
        assert "db.example" in shown


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (URL, "postgresql://shopper:***@db.example:5433/shop?schema=eventshop"),
        (
            "postgresql://shopper@db.example/shop",
            "postgresql://shopper@db.example/shop",
        ),
        (
            f"x postgres://a:{PASSWORD}@h/d and sqlite:///f",
            "x postgres://a:***@h/d and sqlite:///f",
        ),
        (f"host=h password={PASSWORD} dbname=d", "host=h password=*** dbname=d"),
        (f"host=h password='{PASSWORD} x' dbname=d", "host=h password=*** dbname=d"),
    ],
)
def test_redact_hides_passwords_in_urls_and_connection_strings(
    text: str, shown: str
) -> None:
    assert redact(text) == shown


def test_redact_hides_a_known_secret_wherever_it_appears() -> None:
    assert redact(f"server said: {PASSWORD}?", PASSWORD) == "server said: ***?"
