"""``Settings.from_url``: one URL (or the environment) picks the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from application.config import (
    DATABASE_URL_VARIABLE,
    Settings,
)
from application.databases import (
    DATA_DIR_VARIABLE,
    ConfigurationError,
    PostgresLocation,
)


def test_no_url_means_sqlite_under_eventshop_data() -> None:
    settings = Settings.from_url()

    assert settings.engine == "sqlite"
    assert settings.data_dir == Path("eventshop-data")
    assert not settings.data_dir.is_absolute()
    assert settings.postgres is None


def test_no_url_and_a_data_dir_variable_means_that_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(DATA_DIR_VARIABLE, str(tmp_path / "shop"))

    assert Settings.from_url() == Settings(engine="sqlite", data_dir=tmp_path / "shop")


@pytest.mark.parametrize(
    ("url", "data_dir"),
    [
        ("sqlite:///rel/dir", Path("rel/dir")),
        ("sqlite:///data", Path("data")),
        ("sqlite:////abs/dir", Path("/abs/dir")),
        ("sqlite:////tmp/shop data", Path("/tmp/shop data")),
    ],
)
def test_sqlite_url_names_the_folder(url: str, data_dir: Path) -> None:
    settings = Settings.from_url(url)

    assert settings.engine == "sqlite"
    assert settings.data_dir == data_dir
    assert settings.data_dir.is_absolute() == url.startswith("sqlite:////")


def test_sqlite_url_in_the_environment_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(DATABASE_URL_VARIABLE, "sqlite:////srv/shop")

    assert Settings.from_url().data_dir == Path("/srv/shop")


def test_an_explicit_url_beats_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(DATABASE_URL_VARIABLE, "postgresql://u@127.0.0.1/db")

    assert Settings.from_url("sqlite:///local").engine == "sqlite"


def test_data_dir_argument_picks_the_sqlite_folder(tmp_path: Path) -> None:
    assert Settings.from_url(data_dir=tmp_path).data_dir == tmp_path
    assert Settings.from_url(data_dir=str(tmp_path)).data_dir == tmp_path


def test_data_dir_argument_means_sqlite_whatever_the_environment_says(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(DATABASE_URL_VARIABLE, "postgresql://u@127.0.0.1/db")

    assert Settings.from_url(data_dir=tmp_path) == Settings(
        engine="sqlite", data_dir=tmp_path
    )


def test_data_dir_argument_with_a_postgresql_url_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="only applies to SQLite"):
        Settings.from_url("postgresql://u@127.0.0.1/db", data_dir=tmp_path)


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", "sqlite:"])
def test_sqlite_url_without_a_folder_is_refused(url: str) -> None:
    with pytest.raises(ConfigurationError, match="names no folder"):
        Settings.from_url(url)


def test_postgresql_url_with_schema() -> None:
    settings = Settings.from_url(
        "postgresql://shop:s%40cret@127.0.0.1:5433/shopdb?schema=shop_1"
    )

    assert settings.engine == "postgres"
    assert settings.postgres == PostgresLocation(
        host="127.0.0.1",
        port=5433,
        user="shop",
        password="s@cret",
        dbname="shopdb",
        schema="shop_1",
    )


def test_postgresql_url_defaults_port_and_schema() -> None:
    settings = Settings.from_url("postgres://shop@127.0.0.1/shopdb")

    assert settings.postgres is not None
    assert (settings.postgres.port, settings.postgres.schema) == (5432, "public")


def test_postgresql_settings_give_each_service_the_same_schema() -> None:
    settings = Settings.from_url("postgresql://shop@127.0.0.1/shopdb?schema=s1")

    env = settings.service_env("Carts")

    assert env["PERSISTENCE_MODULE"] == (
        "application.persistence.postgres:PostgresFactory"
    )
    assert (env["POSTGRES_HOST"], env["POSTGRES_DBNAME"]) == ("127.0.0.1", "shopdb")
    assert env["POSTGRES_SCHEMA"] == "s1"


def test_sqlite_settings_give_each_service_its_own_file(tmp_path: Path) -> None:
    settings = Settings.from_url(data_dir=tmp_path)

    env = settings.service_env("Inventory")

    assert env["PERSISTENCE_MODULE"] == "application.persistence.sqlite:SQLiteFactory"
    assert env["SQLITE_DBNAME"] == str(tmp_path / "inventory.sqlite3")


def test_describe_never_shows_the_password() -> None:
    settings = Settings.from_url("postgresql://shop:hunter2@127.0.0.1/shopdb")

    assert "hunter2" not in settings.describe()
    assert "shop@127.0.0.1:5432/shopdb" in settings.describe()


@pytest.mark.parametrize(
    "schema",
    ["Shop", "shop-1", "1shop", "shop;drop", "", "a" * 64, "sh op", "shöp"],
)
def test_bad_schema_name_is_refused(schema: str) -> None:
    with pytest.raises(ConfigurationError, match="schema"):
        Settings.from_url(f"postgresql://u@127.0.0.1/db?schema={schema}")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("postgresql://u@127.0.0.1", "names no database"),
        ("postgresql://u@127.0.0.1:notaport/db", "bad port"),
        ("postgresql://u:pw@127.0.0.1:99999/db", "bad port"),
    ],
)
def test_bad_postgresql_url_is_refused(url: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem) as refused:
        Settings.from_url(url)

    assert ":pw@" not in str(refused.value)


@pytest.mark.parametrize(
    "url",
    [
        "mysql://u@127.0.0.1/db",
        "http://127.0.0.1/db",
        "postgresqlx://u@127.0.0.1/db",
        "/just/a/path",
        "eventshop-data",
    ],
)
def test_unsupported_scheme_is_refused(url: str) -> None:
    with pytest.raises(ConfigurationError, match="unsupported database URL"):
        Settings.from_url(url)


def test_configuration_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        Settings.from_url("mysql://u@127.0.0.1/db")
