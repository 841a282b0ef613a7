"""The audit side of the views: the audit index per service (``indexes``), its
queries (``queries``) and the hash chains over the logs (``chain``)."""
