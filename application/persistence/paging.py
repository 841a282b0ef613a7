"""Reading a whole notification log, or the part of it with some topics, page
by page with the library's recorder: the loop that operator commands and
checks (dead letters, chain verification, invariants) share."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from eventsourcing.persistence import ApplicationRecorder, Notification


def notification_pages(
    recorder: ApplicationRecorder,
    page_size: int,
    *,
    after: int | None = None,
    up_to: int | None = None,
    topics: Sequence[str] = (),
) -> Iterator[Sequence[Notification]]:
    """The log's notifications after position ``after`` (None: from its very
    first row, whatever its position) and up to ``up_to`` (None: its end),
    only those with ``topics`` if any are given, oldest first, in pages of at
    most ``page_size``. A short page is the last: the filtering is the
    database's, so a full page may have more after it."""
    position = after
    while True:
        page = recorder.select_notifications(
            position,
            page_size,
            stop=up_to,
            topics=topics,
            inclusive_of_start=False,
        )
        if page:
            yield page
        if len(page) < page_size:
            return
        position = page[-1].id
