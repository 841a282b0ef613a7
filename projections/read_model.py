"""What a projection is: a read model's tables and one handler per event type.

A projection follows one service's event log. Its tables are declared once, on
the class's ``metadata``, as a template; the store materialises them per
*generation* (``<table>_g<N>``), so that a rebuild can fill new tables while the
current ones keep serving readers, and switch over atomically.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

from eventsourcing.utils import get_topic
from sqlalchemy import Constraint, Index, MetaData, Table
from sqlalchemy.sql.elements import conv

from projections.batching.changes import Changes

# Index and constraint names derive from the (generation-specific) table name, so
# two generations of one table never fight over an index name.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "pk": "pk_%(table_name)s",
}

F = TypeVar("F", bound=Callable[..., None])


def new_metadata() -> MetaData:
    """The MetaData a projection declares its template tables on."""
    return MetaData(naming_convention=NAMING_CONVENTION)


def handles(*event_types: type) -> Callable[[F], F]:
    """Marks a projection method as the handler of these event types."""

    def mark(handler: F) -> F:
        handler.__handles__ = event_types  # type: ignore[attr-defined]
        return handler

    return mark


def handlers_of(cls: type) -> dict[type, Callable[..., None]]:
    """The methods of ``cls`` (and its bases) marked with :func:`handles`, by
    the event type they handle."""
    handlers: dict[type, Callable[..., None]] = {}
    for klass in reversed(cls.__mro__):
        for attribute in vars(klass).values():
            for event_type in getattr(attribute, "__handles__", ()):
                handlers[event_type] = attribute
    return handlers


class ReadModel:
    """Base of every read model. Subclasses set ``name`` (short, lower case),
    ``follows`` (the name of the service whose log they read), ``metadata``
    (the template tables) and decorate one method per event type with
    :func:`handles`.

    Handlers run no SQL. Each gets the batch's
    :class:`~projections.batching.changes.Changes` and the event, and records what the
    event does to the rows of this projection's tables
    (``changes["stock_levels"].add(item_id, on_hand=5)``); the framework folds
    a whole batch per row and writes it with a few multi-row statements, in the
    transaction that moves the projection's position (``projections.batching.flush``).

    A handler that needs to read rows gets them from ``loads``: for each table
    named there, the rows whose given column holds the originator id of one of
    the batch's events are loaded in one query before the handlers run, and
    ``changes[table].where(column=...)`` or ``.get(key)`` show them as the
    batch has changed them so far.

    ``version`` goes up whenever the tables or the rules change: runners only
    write to a generation built by their own version, and the new version is
    rolled out by a shadow rebuild (``projections.shadow_rebuild``) that switches
    readers over when it has caught up."""

    name: ClassVar[str]
    follows: ClassVar[str]
    metadata: ClassVar[MetaData]
    version: ClassVar[int] = 1
    loads: ClassVar[Mapping[str, str]] = {}
    """Template table name -> the column holding the originator id of the
    events whose rows handlers read (see above)."""
    loads_before_creation: ClassVar[frozenset[str]] = frozenset()
    """Tables of ``loads`` whose rows may be there before the aggregate whose
    id their column holds is created (rows keyed by an id derived for it), so
    they are looked up for the batch's new aggregates too."""
    _handlers: ClassVar[dict[type, Callable[..., None]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._handlers = handlers_of(cls)

    def handle(self, changes: Changes, event: object) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(self, changes, event)

    @classmethod
    def handlers(cls) -> Mapping[type, Callable[..., None]]:
        """The handler of each event type this projection reads."""
        return cls._handlers

    @classmethod
    def event_types(cls) -> tuple[type, ...]:
        return tuple(cls._handlers)

    @classmethod
    def topics(cls) -> frozenset[str]:
        """Topics of the stored events this projection reads."""
        return frozenset(get_topic(event_type) for event_type in cls._handlers)


def physical_name(template_name: str, generation: int) -> str:
    return f"{template_name}_g{generation}"


_generations: dict[tuple[type[ReadModel], int], Mapping[str, Table]] = {}
_generations_lock = threading.Lock()


def generation_tables(
    projection: type[ReadModel], generation: int
) -> Mapping[str, Table]:
    """The tables of one generation of a projection, keyed by template name."""
    key = (projection, generation)
    with _generations_lock:
        if key not in _generations:
            metadata = MetaData(naming_convention=NAMING_CONVENTION)
            _generations[key] = {
                name: _copy_table(table, metadata, physical_name(name, generation))
                for name, table in projection.metadata.tables.items()
            }
        return _generations[key]


def deferrable_indexes(projection: type[ReadModel], generation: int) -> set[Index]:
    """The indexes of a generation's tables that a batch does not need: those
    that neither keep rows unique nor lead with a column the projection
    ``loads`` rows by."""
    deferrable: set[Index] = set()
    for name, table in generation_tables(projection, generation).items():
        loaded_by = projection.loads.get(name)
        for index in table.indexes:
            leading = next(iter(index.columns)).name
            if not index.unique and leading != loaded_by:
                deferrable.add(index)
    return deferrable


def _copy_table(template: Table, metadata: MetaData, name: str) -> Table:
    table = template.to_metadata(metadata, name=name)
    # A primary key and table-level indexes and constraints keep the name the
    # convention gave them on the template, the same in every generation; but
    # index names must be unique per schema (PostgreSQL) or database (SQLite).
    items: list[Constraint | Index] = [*table.constraints, *table.indexes]
    for item in items:
        if isinstance(item.name, str):
            kind, _, rest = item.name.partition("_")
            if rest.startswith(template.name) and not rest.startswith(name):
                item.name = conv(f"{kind}_{name}{rest[len(template.name) :]}")
    return table
