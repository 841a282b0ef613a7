"""``eventshop demo``: a workload of concurrent customers over every path of
the checkout saga, and the invariants checked once it has settled."""
