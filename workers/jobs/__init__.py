"""Job functions jobsite itself ships; importing this registers the schedulable ones."""

from . import bulk, maintenance  # noqa: F401
