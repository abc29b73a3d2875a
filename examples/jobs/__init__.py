"""The examples' job functions. Importing the package registers the schedulable ones."""

from . import campaigns, demo, etl, pageviews

__all__ = ["campaigns", "demo", "etl", "pageviews"]
