"""Events stored in an old shape load into the new code through the real mapper
and recorder: upcast on read, never rewritten in the append-only store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.utils import _topic_cache, _topic_cache_lock, get_topic

from application import Settings
from tests.application.upcasting_models import (
    DEFAULT_COLOUR,
    DEFAULT_RENAME_REASON,
    Widget,
    Widgets,
    WidgetV1,
    release_v2,
)


@pytest.fixture
def widgets(settings: Settings) -> Iterator[Widgets]:
    service = Widgets(settings)
    try:
        yield service
    finally:
        service.close()


@pytest.fixture
def topics_restored() -> Iterator[None]:
    """Puts the process-wide topic cache back as it was, so that the next test
    starts again with the first release."""
    with _topic_cache_lock:
        saved = dict(_topic_cache)
    try:
        yield
    finally:
        with _topic_cache_lock:
            _topic_cache.clear()
            _topic_cache.update(saved)


def stored_states(widgets: Widgets, widget_id: UUID) -> list[dict[str, Any]]:
    """The stored events' state as the recorder holds it: JSON, before mapping."""
    return [
        json.loads(stored.state) for stored in widgets.recorder.select_events(widget_id)
    ]


def stored_topics(widgets: Widgets, widget_id: UUID) -> list[str]:
    return [stored.topic for stored in widgets.recorder.select_events(widget_id)]


@pytest.fixture
def stored_v1(widgets: Widgets, topics_restored: None) -> WidgetV1:
    """Given a widget registered and renamed by the first release."""
    widget = WidgetV1(name="gear")
    widget.rename("cog")
    widgets.save(widget)
    states = stored_states(widgets, widget.id)
    assert [state["name"] for state in states] == ["gear", "cog"]
    assert all("class_version" not in state for state in states)
    assert isinstance(widgets.repository.get(widget.id), WidgetV1)
    return widget


def test_old_events_load_into_the_new_class_with_defaults_for_new_fields(
    widgets: Widgets, stored_v1: WidgetV1
) -> None:
    release_v2()

    loaded: Widget = widgets.repository.get(stored_v1.id)

    assert type(loaded) is Widget
    assert loaded.id == stored_v1.id
    assert loaded.version == 2
    assert loaded.created_on == stored_v1.created_on
    assert loaded.modified_on == stored_v1.modified_on
    assert loaded.name == "cog"
    assert loaded.colour == DEFAULT_COLOUR
    assert loaded.rename_reasons == [DEFAULT_RENAME_REASON]


def test_old_events_are_upcast_one_by_one_as_domain_events(
    widgets: Widgets, stored_v1: WidgetV1
) -> None:
    release_v2()

    registered, renamed = widgets.events.get(stored_v1.id)

    assert isinstance(registered, Widget.Registered)
    assert (registered.name, registered.colour) == ("gear", DEFAULT_COLOUR)
    assert isinstance(renamed, Widget.Renamed)
    assert (renamed.name, renamed.reason) == ("cog", DEFAULT_RENAME_REASON)


def test_a_new_event_is_stored_as_version_2_and_old_rows_stay_as_they_were(
    widgets: Widgets, stored_v1: WidgetV1
) -> None:
    old_states = stored_states(widgets, stored_v1.id)
    old_topics = stored_topics(widgets, stored_v1.id)
    release_v2()
    loaded: Widget = widgets.repository.get(stored_v1.id)

    loaded.rename("sprocket", "catalogue clean-up")
    widgets.save(loaded)

    states = stored_states(widgets, stored_v1.id)
    assert states[:2] == old_states
    assert stored_topics(widgets, stored_v1.id) == [
        *old_topics,
        get_topic(Widget.Renamed),
    ]
    assert states[2]["class_version"] == 2
    assert (states[2]["name"], states[2]["reason"]) == (
        "sprocket",
        "catalogue clean-up",
    )
    reloaded: Widget = widgets.repository.get(stored_v1.id)
    assert reloaded.name == "sprocket"
    assert reloaded.rename_reasons == [DEFAULT_RENAME_REASON, "catalogue clean-up"]


def test_a_widget_made_by_the_new_release_keeps_its_own_values(
    widgets: Widgets, topics_restored: None
) -> None:
    widget = Widget(name="gear", colour="teal")
    widgets.save(widget)

    loaded: Widget = widgets.repository.get(widget.id)

    [state] = stored_states(widgets, widget.id)
    assert (state["class_version"], state["colour"]) == (2, "teal")
    assert (loaded.name, loaded.colour) == ("gear", "teal")
