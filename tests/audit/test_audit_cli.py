"""``eventshop audit verify``: chains what is new, verifies, and says where a
log was tampered with."""

from __future__ import annotations

import pytest

from application import Settings, Shop
from application.cli import main
from tests.audit.chain_testing import fill_logs, tampering


def storage_options(settings: Settings) -> list[str]:
    if settings.engine == "sqlite":
        return ["--data-dir", str(settings.data_dir)]
    return ["--database-url", settings.database_url()]


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")


def test_verify_checkpoints_a_fresh_store_and_finds_it_intact(
    settings: Settings, shop: Shop, capsys: pytest.CaptureFixture[str]
) -> None:
    fill_logs(shop)

    assert main(["audit", "verify", *storage_options(settings)]) == 0

    output = capsys.readouterr().out
    for service, head in shop.log_heads().items():
        assert f"│ {service}" in output
        assert head > 0
    assert output.count("intact") == 3
    assert "altered" not in output


def test_verify_names_the_first_tampered_position_and_exits_1(
    settings: Settings, shop: Shop, capsys: pytest.CaptureFixture[str]
) -> None:
    fill_logs(shop)
    assert main(["audit", "verify", *storage_options(settings)]) == 0
    capsys.readouterr()
    with tampering(settings, "Carts") as table:
        first = table.rows()[1]
        table.set_state(first.position, first.state + b" ")

    status = main(["audit", "verify", *storage_options(settings)])

    output = capsys.readouterr().out
    assert status == 1
    assert f"Carts: altered at position {first.position}" in output
    assert output.count("intact") == 2

    only_orders = ["audit", "verify", "--service", "orders"]
    assert main([*only_orders, *storage_options(settings)]) == 0
    assert "Carts" not in capsys.readouterr().out
