"""The relay: a service's stored log, published in log order to a NATS
JetStream stream, so that services in other databases can follow it through
the broker (see ``relay.py``; the message format is ``messages.py``)."""
