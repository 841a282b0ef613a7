"""The audit metadata every stored event carries, as read back from an event.

Who did it (actor), which user action it belongs to (correlation id) and what
caused it (causation id: the id of the event a reaction answered). The
application layer writes it (``application.services.audit_metadata``);
anything that reads events (audit index, deadlines) reads it with :func:`metadata_of`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

METADATA_KEY = "_meta"
"""Key of the metadata beside an event's own attributes in its stored state."""


@dataclass(frozen=True)
class EventMetadata:
    actor: str
    correlation_id: UUID
    causation_id: str | None = None

    def as_state(self) -> dict[str, Any]:
        return {
            "actor": self.actor,
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> EventMetadata:
        return cls(
            actor=state["actor"],
            correlation_id=state["correlation_id"],
            causation_id=state.get("causation_id"),
        )


def event_id(event: Any) -> str:
    """A stable identity for a stored event: its aggregate id and version."""
    return f"{event.originator_id}:{event.originator_version}"


def metadata_of(event: object) -> EventMetadata | None:
    """The metadata a stored event was recorded with (None for an event stored
    without any)."""
    state = vars(event).get(METADATA_KEY)
    return EventMetadata.from_state(state) if state else None
