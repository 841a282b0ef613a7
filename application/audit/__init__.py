"""Audit over the event logs: queries by who, what and when, time travel, and
verification of the hash chains (``service``, ``chain_verification``)."""
