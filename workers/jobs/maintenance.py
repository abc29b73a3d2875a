"""Housekeeping jobs the scheduler runs (see JOBSITE_SCHEDULES in settings)."""

from __future__ import annotations

from datetime import timedelta

from workers.conf import setting
from workers.registry import schedulable
from workers.services_retention import job_prune, metric_prune


@schedulable
def prune(older_than_days: int | None = None, include_dead: bool = False) -> str:
    """Apply the retention settings: old ended job records and roll-up minutes go."""
    days = older_than_days or setting("RETENTION_DAYS")
    result = job_prune(older_than=timedelta(days=days), include_dead=include_dead)
    minutes = metric_prune(older_than=timedelta(days=setting("METRIC_RETENTION_DAYS")))
    return (
        f"deleted {result.records} job records and {result.errors} errors older than {days} days "
        f"in {result.batches} batches; deleted {minutes} roll-up minutes"
    )
