"""Personal data kept forgettable in an append-only log (crypto-shredding).

Each customer's personal data is stored in events only encrypted with that
customer's own key (``sealing``); the keys live in a table of their own in the
views' database (``key_store``), shared by the services of a process
(``shared_keys``). Deleting a key forgets the customer: the events stay, and
their personal fields read as ``domain.values.FORGOTTEN``."""
