"""Job functions jobsite itself ships; importing this registers the schedulable ones."""

from . import maintenance  # noqa: F401
