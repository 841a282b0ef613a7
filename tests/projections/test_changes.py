"""How a batch's row changes fold per key before anything is written: what each
operation leaves to insert, replace or delete, and what a handler may read."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import Column, Integer, MetaData, Numeric, String, Table

from projections.batching.changes import (
    DuplicateRowError,
    NotLoadedError,
    TableChanges,
)
from projections.batching.rows import shape_of

metadata = MetaData()
counters = Table(
    "counters",
    metadata,
    Column("name", String(20), primary_key=True),
    Column("count", Integer, nullable=False),
    Column("amount", Numeric(12, 2), nullable=False),
    Column("label", String(20), nullable=True),
)
lines = Table(
    "lines",
    metadata,
    Column("cart_id", String(20), primary_key=True),
    Column("sku", String(20), primary_key=True),
    Column("quantity", Integer, nullable=False),
)
notes = Table(
    "notes",
    metadata,
    Column("about", String(20), nullable=False),
    Column("text", String(20), nullable=False),
)


def counter(name: str, count: int = 0, amount: str = "0.00") -> dict[str, object]:
    return {"name": name, "count": count, "amount": Decimal(amount), "label": None}


def test_what_a_batch_inserts_and_then_changes_is_one_insert() -> None:
    changes = TableChanges(shape_of(counters))

    changes.insert(**counter("a"))
    changes.add("a", count=2, amount=Decimal("1.10"))
    changes.add("a", count=3, amount=Decimal("0.05"))
    changes.update("a", label="seen")

    outcome = changes.outcome()
    assert outcome.inserted == [
        {"name": "a", "count": 5, "amount": Decimal("1.15"), "label": "seen"}
    ]
    assert (outcome.replaced, outcome.deleted) == ([], [])


def test_changes_to_a_row_not_loaded_wait_for_the_stored_row() -> None:
    changes = TableChanges(shape_of(counters))
    changes.add("stored", count=1, amount=Decimal("2.50"))
    changes.update("stored", label="later")
    changes.add("stored", count=1, amount=Decimal("0.50"))
    changes.add("missing", count=1)

    assert changes.unresolved() == ["stored", "missing"]
    changes.resolve({"stored": counter("stored", 10, "1.00")})

    outcome = changes.outcome()
    # Added up in Decimal, in the order the events did it; a row the table
    # does not hold is not made up.
    assert outcome.replaced == [
        {"name": "stored", "count": 12, "amount": Decimal("4.00"), "label": "later"}
    ]
    assert (outcome.inserted, outcome.deleted) == ([], [])


def test_columns_set_on_a_row_not_loaded_become_one_update() -> None:
    changes = TableChanges(shape_of(counters))
    changes.update("a", label="first")
    changes.update("a", count=3)
    changes.update("a", label="second")

    assert changes.unresolved() == []
    outcome = changes.outcome()
    assert outcome.updated == [{"name": "a", "label": "second", "count": 3}]
    assert (outcome.inserted, outcome.replaced, outcome.deleted) == ([], [], [])


def test_a_counter_starts_from_its_default_row() -> None:
    changes = TableChanges(shape_of(counters))
    zero = {"count": 0, "amount": Decimal("0.00")}
    changes.add("new", count=1, amount=Decimal("3.00"), default=zero)
    changes.add("new", count=1, amount=Decimal("3.00"), default=zero)
    changes.add("old", count=1, amount=Decimal("3.00"), default=zero)

    changes.resolve({"old": counter("old", 4, "8.00")})

    outcome = changes.outcome()
    assert outcome.inserted == [{"name": "new", "count": 2, "amount": Decimal("6.00")}]
    assert outcome.replaced == [
        {"name": "old", "count": 5, "amount": Decimal("11.00"), "label": None}
    ]


def test_keep_latest_keeps_the_later_value_whatever_the_order() -> None:
    changes = TableChanges(shape_of(counters))
    changes.insert(name="x", count=0, amount=Decimal(0), label="2030-03")
    changes.keep_latest("x", label="2030-06")
    changes.keep_latest("x", label="2030-01")

    assert changes.get("x") == {
        "name": "x",
        "count": 0,
        "amount": Decimal(0),
        "label": "2030-06",
    }


def test_a_row_deleted_and_inserted_again_replaces_the_stored_one() -> None:
    changes = TableChanges(shape_of(lines), loaded_by="cart_id")
    changes.load([{"cart_id": "c", "sku": "TEA", "quantity": 1}], groups=["c"])

    changes.delete(("c", "TEA"))
    assert changes.where(cart_id="c") == []
    changes.insert(cart_id="c", sku="TEA", quantity=4)

    outcome = changes.outcome()
    assert outcome.replaced == [{"cart_id": "c", "sku": "TEA", "quantity": 4}]
    assert (outcome.inserted, outcome.deleted) == ([], [])


def test_deleting_what_is_not_loaded_deletes_it_when_written() -> None:
    changes = TableChanges(shape_of(counters))
    changes.add("gone", count=1)
    changes.delete("gone")

    assert changes.unresolved() == []
    assert changes.outcome().deleted == ["gone"]


def test_loaded_rows_are_read_as_the_batch_has_changed_them() -> None:
    changes = TableChanges(shape_of(lines), loaded_by="cart_id")
    changes.load(
        [
            {"cart_id": "c", "sku": "TEA", "quantity": 1},
            {"cart_id": "c", "sku": "MUG", "quantity": 2},
        ],
        groups=["c", "empty"],
    )

    changes.update(("c", "TEA"), quantity=5)
    changes.insert(cart_id="c", sku="POT", quantity=1)
    [mug] = [row for row in changes.where(cart_id="c") if row["sku"] == "MUG"]
    changes.delete(mug)

    assert sorted(
        (row["sku"], row["quantity"]) for row in changes.where(cart_id="c")
    ) == [("POT", 1), ("TEA", 5)]
    assert changes.where(cart_id="empty") == []
    # A key in a loaded group that is not there is known not to be stored.
    assert changes.get(("empty", "TEA")) is None
    outcome = changes.outcome()
    assert outcome.deleted == [("c", "MUG")]
    assert outcome.inserted == [{"cart_id": "c", "sku": "POT", "quantity": 1}]
    assert outcome.replaced == [{"cart_id": "c", "sku": "TEA", "quantity": 5}]


def test_an_unchanged_loaded_row_is_not_written() -> None:
    changes = TableChanges(shape_of(lines), loaded_by="cart_id")
    changes.load([{"cart_id": "c", "sku": "TEA", "quantity": 1}], groups=["c"])

    assert not changes.outcome()


def test_reading_what_was_not_loaded_is_refused() -> None:
    changes = TableChanges(shape_of(lines), loaded_by="cart_id")
    changes.load([], groups=["loaded"])

    with pytest.raises(NotLoadedError, match="were not loaded"):
        changes.where(cart_id="other")
    with pytest.raises(NotLoadedError, match="it loads by 'cart_id'"):
        changes.where(sku="TEA")
    with pytest.raises(NotLoadedError, match="was not loaded"):
        changes.get(("other", "TEA"))
    changes.update(("other", "TEA"), quantity=1)
    with pytest.raises(NotLoadedError):
        changes.get(("other", "TEA"))


def test_inserting_a_row_that_is_there_is_refused() -> None:
    changes = TableChanges(shape_of(lines), loaded_by="cart_id")
    changes.load([{"cart_id": "c", "sku": "TEA", "quantity": 1}], groups=["c"])

    with pytest.raises(DuplicateRowError, match=r"\('c', 'TEA'\)"):
        changes.insert(cart_id="c", sku="TEA", quantity=2)


def test_unknown_columns_and_key_changes_are_refused() -> None:
    changes = TableChanges(shape_of(counters))

    with pytest.raises(KeyError, match="colour"):
        changes.insert(name="a", count=0, amount=0, colour="red")
    with pytest.raises(KeyError, match="colour"):
        changes.update("a", colour="red")
    with pytest.raises(ValueError, match="key"):
        changes.update("a", name="b")
    with pytest.raises(ValueError, match="no column 'nope'"):
        TableChanges(shape_of(counters), loaded_by="nope")


def test_a_table_without_a_key_is_only_inserted_into() -> None:
    changes = TableChanges(shape_of(notes), loaded_by="about")
    changes.load([{"about": "a", "text": "stored"}], groups=["a"])

    changes.insert(about="a", text="new")

    assert [row["text"] for row in changes.where(about="a")] == ["stored", "new"]
    assert changes.outcome().inserted == [{"about": "a", "text": "new"}]
    with pytest.raises(TypeError, match="can only be inserted"):
        changes.delete("a")


def test_rows_read_cannot_be_changed_behind_the_batch_s_back() -> None:
    changes = TableChanges(shape_of(counters))
    changes.insert(**counter("a"))
    row = changes.get("a")
    assert row is not None

    with pytest.raises(TypeError):
        row["count"] = 7  # type: ignore[index]


def test_text_with_nul_is_kept_with_u_fffd_in_rows_and_keys_alike() -> None:
    """PostgreSQL cannot hold NUL in text: rows get U+FFFD in its place, and a
    handler finds them by the key it gave, NUL and all."""
    changes = TableChanges(shape_of(lines))

    changes.insert(cart_id="c\x00", sku="S\x00KU", quantity=1)
    changes.add(("c\x00", "S\x00KU"), quantity=2)
    changes.add(("d\x00", "SKU"), default={"quantity": 0}, quantity=4)
    changes.update(("e", "SKU"), quantity=5)

    row = changes.get(("c\x00", "S\x00KU"))
    assert row is not None
    assert dict(row) == {"cart_id": "c\ufffd", "sku": "S\ufffdKU", "quantity": 3}
    changes.resolve({})
    outcome = changes.outcome()
    assert outcome.inserted == [
        {"cart_id": "c\ufffd", "sku": "S\ufffdKU", "quantity": 3},
        {"cart_id": "d\ufffd", "sku": "SKU", "quantity": 4},
    ]
    assert outcome.updated == [{"cart_id": "e", "sku": "SKU", "quantity": 5}]


def test_a_loaded_group_is_found_by_the_value_with_nul() -> None:
    changes = TableChanges(shape_of(notes), loaded_by="about")
    changes.load([{"about": "a\ufffd", "text": "stored"}], groups=["a\ufffd"])

    changes.insert(about="a\x00", text="new\x00")

    assert [dict(row) for row in changes.where(about="a\x00")] == [
        {"about": "a\ufffd", "text": "stored"},
        {"about": "a\ufffd", "text": "new\ufffd"},
    ]
