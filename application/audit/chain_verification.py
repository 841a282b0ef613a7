"""Verifying a shop's event logs against their hash chains, from its settings
(what ``eventshop audit verify`` runs).

Above both the keepers (``application.subscribers.chain_keeper``) and the
hosting, which runs the keepers; the view store the chains are kept in is opened
by the composition root (``application.bootstrap``).
"""

from __future__ import annotations

from collections.abc import Collection

from application.bootstrap import open_views
from application.config import Settings
from application.subscribers.chain_keeper import ChainKeeper
from application.topology import TOPOLOGY
from projections.audit.chain import ChainStore, ChainVerdict


def open_chain_store(settings: Settings) -> ChainStore:
    """The chain table in the shop's view database, created if missing."""
    chains = ChainStore(open_views(settings))
    chains.create_schema()
    return chains


def verify_chains(
    settings: Settings,
    services: Collection[str] | None = None,
    *,
    extend_first: bool = True,
) -> dict[str, ChainVerdict]:
    """Verifies the log of every service (or of those named, in any case)
    against its chain, having first chained what is new, unless told not to
    (so a store never checkpointed before gets its chain) or not allowed to
    (a read-only role: what is not chained yet is reported as such)."""
    known = {service.name.lower(): service.application for service in TOPOLOGY.services}
    wanted = [name.lower() for name in services or known]
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise LookupError(
            f"no service named {', '.join(unknown)} (known: {', '.join(known)})"
        )
    chains = open_chain_store(settings)
    may_add_links = chains.may_add_links()
    verdicts: dict[str, ChainVerdict] = {}
    try:
        for name in wanted:
            service = known[name](settings)
            try:
                keeper = ChainKeeper(service, chains)
                if extend_first and may_add_links:
                    keeper.extend_now()
                verdicts[service.name] = keeper.verify()
            finally:
                service.close()
    finally:
        chains.store.engine.dispose()
    return verdicts
