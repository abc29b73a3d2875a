"""Housekeeping jobs the scheduler runs (see JOBSITE_SCHEDULES in settings)."""

from __future__ import annotations

from workers.registry import schedulable
from workers.services.retention import retention_apply


@schedulable
def prune(older_than_days: int | None = None, include_dead: bool = False) -> str:
    """Apply the retention settings: old ended job records and roll-up minutes go."""
    age = f"{older_than_days} days" if older_than_days else None
    return retention_apply(older_than=age, include_dead=include_dead).summary()
