"""How a batch of events reaches a read model's tables: handlers record row
changes (``changes``), folded per key, then written set-based (``flush``)."""
