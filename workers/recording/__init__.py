"""Lifecycle events -> database: the stream consumer (``consumer``) and what applying an
event does to the records, errors, log lines and roll-ups (``apply``)."""
