"""Two releases of one small aggregate, for the upcasting tests.

``WidgetV1`` is the code as first released; ``Widget`` is the code after a later
release gave its events new fields (``class_version = 2``). Events stored by the
first release keep the first release's topics; ``release_v2`` makes those topics
resolve to the new classes, as importing the new code would.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.utils import _topic_cache, get_topic, register_topic

from application.config import Settings


class WidgetV1(Aggregate):
    """The first release: a widget has a name."""

    class Registered(Aggregate.Created):
        name: str

    class Renamed(Aggregate.Event):
        name: str

    @event(Registered)
    def __init__(self, name: str) -> None:
        self.name = name

    @event(Renamed)
    def rename(self, name: str) -> None:
        self.name = name


DEFAULT_COLOUR = "unpainted"
DEFAULT_RENAME_REASON = "(not recorded)"


class Widget(Aggregate):
    """The second release: a widget also has a colour, and a rename a reason."""

    class Registered(Aggregate.Created):
        name: str
        colour: str

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["colour"] = DEFAULT_COLOUR

    class Renamed(Aggregate.Event):
        name: str
        reason: str

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["reason"] = DEFAULT_RENAME_REASON

    @event(Registered)
    def __init__(self, name: str, colour: str) -> None:
        self.name = name
        self.colour = colour
        self.rename_reasons: list[str] = []

    @event(Renamed)
    def rename(self, name: str, reason: str) -> None:
        self.name = name
        self.rename_reasons.append(reason)


RELEASE_V2: list[tuple[type[Any], type[Any]]] = [
    (WidgetV1, Widget),
    (WidgetV1.Registered, Widget.Registered),
    (WidgetV1.Renamed, Widget.Renamed),
]


def release_v2() -> None:
    """What deploying the second release amounts to for the stored events: their
    topics (module and class names of the first release) now find the new
    classes. In a fresh process ``register_topic`` alone would do; this one has
    already resolved the old topics, so their cached entries are dropped first."""
    for old, new in RELEASE_V2:
        topic = get_topic(old)
        _topic_cache.pop(topic, None)
        register_topic(topic, new)


class Widgets(Application[UUID]):
    """A service holding widgets, stored like the shop's own services."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(env=settings.service_env(self.name))
