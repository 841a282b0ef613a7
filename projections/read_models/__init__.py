"""The shop's read models: each one's tables and handlers (one module per
read model), the catalog of all of them, and the queries that read them."""
