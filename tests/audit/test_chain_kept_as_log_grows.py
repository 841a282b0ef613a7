"""An embedded shop keeps each log's hash chain as the log grows."""

from __future__ import annotations

from application import Settings, Shop
from projections.audit.chain import ChainStore
from tests.projections.runner_testing import eventually


def test_the_chain_follows_the_log_without_anyone_verifying(settings: Settings) -> None:
    with Shop(settings=settings) as shop:
        shop.register_product("TEA-1", "Tea", "1.00")
        shop.receive_stock("TEA-1", 3)
        chains = ChainStore(shop.views)

        def chained_to_head() -> bool:
            head = chains.head("Inventory")
            return head is not None and head.position == shop.inventory.log_head()

        eventually(chained_to_head, 30, "the chain to reach the head of the log")
