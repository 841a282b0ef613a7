"""``eventshop customers forget ID``: one line and exit 0 when done (again too),
one line on stderr and exit 2 for a malformed id, on both engines."""

from __future__ import annotations

import pytest

from application import Settings, Shop
from application.cli import main
from domain.errors import CustomerForgottenError
from tests.audit.test_audit_cli import storage_options


def test_forget_says_so_in_one_line_and_exits_0(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a customer with a cart
    with Shop(settings=settings, subscribers="workers") as shop:
        shop.open_cart("customer-9")
    # When an operator forgets them, twice
    argv = ["customers", "forget", "customer-9", "--actor", "dpo"]
    assert main([*argv, *storage_options(settings)]) == 0
    assert main([*argv, *storage_options(settings)]) == 0
    # Then each time one line says so
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert "forgot customer 'customer-9'" in lines[0]
    # And the customer can open no more carts
    with (
        Shop(settings=settings, subscribers="workers") as shop,
        pytest.raises(CustomerForgottenError),
    ):
        shop.open_cart("customer-9")


def test_a_malformed_customer_id_is_one_line_on_stderr_and_exit_2(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["customers", "forget", "bad\tid", *storage_options(settings)]
    assert main(argv) == 2
    captured = capsys.readouterr()
    [line] = captured.err.splitlines()
    assert line.startswith("eventshop: error: invalid customer_id")
    assert "Traceback" not in captured.err
