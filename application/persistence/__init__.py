"""eventsourcing infrastructure factories for eventshop's two engines.

Both add what the plain library leaves out: the stored events are append-only at
the database level, enforced by triggers that refuse UPDATE and DELETE (and
TRUNCATE on PostgreSQL).
"""

APPEND_ONLY_MESSAGE = "eventshop: stored events are append-only"
