"""A service, or the views, in a database of its own: how the settings read
which (arguments, the environment, the command line), what each part is then
given, and what a child process inherits."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from application.bootstrap import bootstrap
from application.cli import main
from application.config import (
    STORAGE_PARTS,
    VIEWS,
    Settings,
    part_url_variable,
)
from application.databases import ConfigurationError, Storage
from application.subscribers.hosting import leadership_for
from application.subscribers.leadership import FileLockLeadership
from tests.conftest import POSTGRES_URL, postgres_url, temporary_postgres_schema

PG = "postgresql://shop:secret@127.0.0.1:5432/{}?schema=shop"


def test_without_part_urls_every_part_is_in_the_shops_database(
    tmp_path: Path,
) -> None:
    settings = Settings.from_url(data_dir=tmp_path)

    assert settings.own_storage == {}
    for part in STORAGE_PARTS:
        assert settings.storage_of(part) == Storage("sqlite", tmp_path)


def test_a_part_url_gives_that_part_its_own_database_and_engine(
    tmp_path: Path,
) -> None:
    settings = Settings.from_url(
        PG.format("shop"),
        part_urls={"Carts": f"sqlite:///{tmp_path / 'carts'}", "Orders": None},
    )

    carts = settings.storage_of("Carts")
    assert (carts.engine, carts.data_dir) == ("sqlite", tmp_path / "carts")
    assert settings.storage_of("Orders") == settings.storage
    assert settings.storage_of(VIEWS) == settings.storage
    # Each service's eventsourcing environment names its own database.
    assert settings.service_env("Carts")["SQLITE_DBNAME"] == str(
        tmp_path / "carts" / "carts.sqlite3"
    )
    assert settings.service_env("Orders")["POSTGRES_DBNAME"] == "shop"


def test_part_urls_are_read_from_the_environment_unless_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(part_url_variable("Inventory"), PG.format("inventory"))
    monkeypatch.setenv(part_url_variable(VIEWS), PG.format("views"))

    settings = Settings.from_url(
        PG.format("shop"), part_urls={VIEWS: PG.format("given")}
    )

    inventory = settings.storage_of("Inventory").postgres
    views = settings.storage_of(VIEWS).postgres
    assert inventory is not None
    assert views is not None
    assert (inventory.dbname, views.dbname) == ("inventory", "given")
    assert part_url_variable("Inventory") == "EVENTSHOP_INVENTORY_DATABASE_URL"


def test_a_part_url_naming_the_shops_own_database_is_no_part_apart() -> None:
    settings = Settings.from_url(
        PG.format("shop"), part_urls={"Carts": PG.format("shop")}
    )

    assert settings.own_storage == {}


def test_an_unknown_part_or_a_bad_part_url_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no part named"):
        Settings.from_url(data_dir=tmp_path, part_urls={"Payments": "sqlite:///x"})
    with pytest.raises(ConfigurationError, match="unsupported database URL"):
        Settings.from_url(
            data_dir=tmp_path, part_urls={"Orders": "mysql://u:pw@host/db"}
        )
    with pytest.raises(ConfigurationError, match="no part named"):
        Settings(engine="sqlite", own_storage={"nope": Storage("sqlite")})


def test_a_bad_part_url_in_the_environment_is_reported_without_its_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(part_url_variable("Orders"), "mysql://u:hunter2@host/db")

    with pytest.raises(ConfigurationError) as raised:
        Settings.from_url()
    assert "hunter2" not in str(raised.value)


def test_describe_names_each_part_kept_apart(tmp_path: Path) -> None:
    settings = Settings.from_url(
        PG.format("shop"), part_urls={"Carts": f"sqlite:///{tmp_path}"}
    )

    described = settings.describe()
    assert described.startswith("PostgreSQL shop@127.0.0.1:5432/shop schema shop")
    assert f"Carts: SQLite files under {tmp_path.resolve()}" in described
    assert "secret" not in described


def test_a_child_process_inherits_every_part_database(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = Settings.from_url(
        PG.format("shop"),
        part_urls={"Carts": f"sqlite:///{tmp_path}", VIEWS: PG.format("views")},
    )

    for variable, value in settings.child_environment().items():
        monkeypatch.setenv(variable, value)
    inherited = Settings.from_url()

    for part in STORAGE_PARTS:
        assert inherited.storage_of(part) == settings.storage_of(part)


def test_a_subscribers_one_active_instance_is_decided_where_it_records(
    tmp_path: Path,
) -> None:
    settings = Settings.from_url(
        data_dir=tmp_path / "shop",
        part_urls={"Orders": f"sqlite:///{tmp_path / 'orders'}"},
    )

    # A process manager records in its own service's database, a read model
    # (and anything else) in the views'.
    checkout = leadership_for(settings, "checkout", part="Orders")
    carts_view = leadership_for(settings, "carts")
    assert isinstance(checkout, FileLockLeadership)
    assert isinstance(carts_view, FileLockLeadership)
    assert checkout.path.parent == tmp_path / "orders" / "locks"
    assert carts_view.path.parent == tmp_path / "shop" / "locks"


def test_the_command_line_takes_a_database_per_part(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "status",
            "--data-dir",
            str(tmp_path / "shop"),
            "--carts-database-url",
            f"sqlite:///{tmp_path / 'carts'}",
        ]
    )

    assert code == 0
    assert (tmp_path / "carts" / "carts.sqlite3").exists()
    assert not (tmp_path / "shop" / "carts.sqlite3").exists()
    assert (tmp_path / "shop" / "orders.sqlite3").exists()
    capsys.readouterr()


def test_a_bad_part_url_on_the_command_line_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "status",
            "--data-dir",
            str(tmp_path),
            "--orders-database-url",
            "mysql://u:hunter2@host/db",
        ]
    )

    err = capsys.readouterr().err
    assert code != 0
    assert len(err.strip().splitlines()) == 1
    assert "unsupported database URL" in err
    assert "hunter2" not in err


@pytest.mark.postgres
def test_views_in_a_schema_of_their_own_get_it_created(tmp_path: Path) -> None:
    with temporary_postgres_schema() as shop_schema:
        views_schema = f"{shop_schema}_views"  # not created by anyone yet
        settings = Settings.from_url(
            data_dir=tmp_path, part_urls={VIEWS: postgres_url(views_schema)}
        )
        try:
            with bootstrap(settings, hosting="threads") as parts:
                parts.inventory.register_product("TEA-1", "Tea", "3.50")
                parts.subscribers.wait_until_processed()
                level = parts.queries.stock_level("TEA-1")
                assert level is not None
                assert level.on_hand == 0
        finally:
            with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                        sql.Identifier(views_schema)
                    )
                )


def test_followers_of_a_log_whose_database_was_replaced_halt_and_say_why(
    tmp_path: Path,
) -> None:
    # given a shop whose saga has followed the Carts log for a while
    shop_dir = tmp_path / "shop"
    with bootstrap(Settings.from_url(data_dir=shop_dir), hosting="threads") as parts:
        parts.inventory.register_product("TEA-1", "Tea", "3.50")
        parts.inventory.receive_stock("TEA-1", 5)
        for customer in ("ann", "bob"):
            cart_id = parts.carts.open_cart(customer)
            parts.carts.add_item(cart_id, "TEA-1", 1, Decimal("3.50"))
            parts.carts.check_out(cart_id)
        parts.subscribers.wait_until_processed()

    # when Carts is given a database of its own, empty, the others kept
    moved = Settings.from_url(
        data_dir=shop_dir, part_urls={"Carts": f"sqlite:///{tmp_path / 'carts'}"}
    )
    followers = ("checkout", "carts", "audit_carts")
    # then its followers halt, naming the positions, instead of silently
    # skipping the new log's first events, and the Inventory followers, whose
    # log is where it was, keep running. (This process's rows still say what
    # the first shop's runners said until the new ones report.)
    expected = {**{name: ["halted"] for name in followers}, "stock": ["running"]}
    with bootstrap(moved, hosting="threads") as parts:
        deadline = time.monotonic() + 10
        while {
            name: [report.state for report in parts.views.reports.all().get(name, [])]
            for name in expected
        } != expected:
            assert time.monotonic() < deadline, parts.views.reports.all()
            time.sleep(0.05)
        reports = parts.views.reports.all()
        for name in followers:
            [report] = reports[name]
            assert report.error is not None
            assert "of the Carts log, whose head is 0" in report.error
            assert "was its database replaced?" in report.error
