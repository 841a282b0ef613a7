"""The erasure of a customer: the record that their personal data was forgotten.

Forgetting itself is done by deleting the customer's key (see
``application.privacy``); this aggregate is what the log keeps of it. Its one
event names only the pseudonymous customer id; who did it and when are in the
event's audit metadata and timestamp, as for every event."""

from __future__ import annotations

from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.values import ID_NAMESPACE, parse_text


def customer_erasure_id(customer_id: str) -> UUID:
    """The id of a customer's erasure, the same however often it is asked for."""
    return uuid5(ID_NAMESPACE, f"customer-erasure/{customer_id}")


class CustomerErasure(Aggregate):
    """A customer forgotten; there is at most one per customer."""

    class Forgotten(Aggregate.Created):
        customer_id: str

    @staticmethod
    def create_id(customer_id: str) -> UUID:
        return customer_erasure_id(customer_id)

    @classmethod
    def forget(cls, customer_id: str) -> CustomerErasure:
        return cls(customer_id=parse_text(customer_id, "customer_id", stored=True))

    @event(Forgotten)
    def __init__(self, customer_id: str) -> None:
        self._customer_id = customer_id

    @property
    def customer_id(self) -> str:
        return self._customer_id
