"""How large a demo run may be: ``run_demo`` refuses more, and ``eventshop
demo``'s options say so, which is why they live apart from the demo (its
parser must not load the shop)."""

from __future__ import annotations

MAX_CUSTOMERS = 100_000
MAX_THREADS = 64
