"""The view store's own tables: positions, the generation registry, subscriber
reports and dead letters. Every part of the store writes to one or two of them,
and ``create_system_tables`` creates them all together."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
)

system_metadata = MetaData()

tracking_table = Table(
    "eventshop_tracking",
    system_metadata,
    Column("subscriber", String(200), primary_key=True),
    Column("service", String(100), primary_key=True),
    Column("position", BigInteger, nullable=False),
)

generations_table = Table(
    "eventshop_generations",
    system_metadata,
    Column("projection", String(100), primary_key=True),
    Column("active", Integer, nullable=False),
    Column("switched_at", DateTime(timezone=True), nullable=False),
    # The ReadModel.version of the code that built the active generation:
    # only runners of that version may write to it.
    Column("active_version", Integer, nullable=False, server_default="1"),
)

subscribers_table = Table(
    "eventshop_subscribers",
    system_metadata,
    Column("subscriber", String(200), primary_key=True),
    Column("host", String(200), primary_key=True),
    Column("pid", Integer, primary_key=True),
    Column("state", String(20), nullable=False),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False),
    Column("error", Text, nullable=True),
)

dead_letters_table = Table(
    "eventshop_dead_letters",
    system_metadata,
    Column("dead_letter_id", Uuid, primary_key=True),
    Column("projection", String(100), nullable=False),
    Column("generation", Integer, nullable=False),
    Column("service", String(100), nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("event_topic", Text, nullable=False),
    Column("originator_id", Uuid, nullable=False),
    Column("originator_version", BigInteger, nullable=False),
    Column("error", Text, nullable=False),
    Column("traceback", Text, nullable=False),
    Column("parked_at", DateTime(timezone=True), nullable=False),
    Column("status", String(20), nullable=False),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    Column("discard_reason", Text, nullable=True),
)
