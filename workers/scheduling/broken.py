"""Broken schedules: one whose run cannot be pushed is set aside with the reason and tried
again after a backoff, so that it never holds up the others. A push that goes through,
or an operator who saves, syncs or resumes it, makes it whole again."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction

from ..conf import setting
from ..events import bounded
from ..models import Schedule

log = logging.getLogger(__name__)

# A schedule that is not broken; assign these fields to mend one.
NOT_BROKEN: dict[str, Any] = {"broken_reason": "", "broken_since": None, "retry_at": None, "push_failures": 0}


def retry_delay(failures: int) -> timedelta:
    """How long a schedule waits after its ``failures``-th failed push in a row."""
    base, cap = float(setting("SCHEDULE_RETRY_BASE")), float(setting("SCHEDULE_RETRY_CAP"))
    return timedelta(seconds=min(cap, base * 2 ** min(max(failures - 1, 0), 32)))


def schedule_mark_broken(*, schedule_id: int, reason: str, now: datetime, transient: bool = False) -> datetime | None:
    """Set the schedule aside with ``reason`` until its next try; returns when that is.

    ``transient``: Redis was away (the schedule itself is fine): it is tried again after the
    base delay, not a backoff that grows through the outage, so it fires soon after Redis
    is back. Reads only the fields it needs: the rest of the row may be what cannot be read.
    """
    with transaction.atomic():
        row = (
            Schedule.objects.select_for_update()
            .filter(pk=schedule_id)
            .values("name", "broken_since", "retry_at", "push_failures")
            .first()
        )
        if row is None:
            return None
        if row["retry_at"] is not None and row["retry_at"] > now:
            return row["retry_at"]  # another scheduler set it aside a moment ago: one failure, one backoff
        failures = row["push_failures"] + 1
        retry_at = now + retry_delay(1 if transient else failures)
        Schedule.objects.filter(pk=schedule_id).update(
            broken_reason=bounded(reason),
            broken_since=row["broken_since"] or now,
            retry_at=retry_at,
            push_failures=failures,
            updated_at=now,
        )
    log.warning(
        "schedule %s is broken (%d failed push(es) in a row), tried again at %s: %s",
        row["name"],
        failures,
        retry_at.isoformat(),
        reason,
    )
    return retry_at


def schedule_mend(*, schedule: Schedule) -> None:
    """A run of a broken schedule went out: it is whole again."""
    if schedule.is_broken:
        Schedule.objects.filter(pk=schedule.pk).update(**NOT_BROKEN)
        for name, value in NOT_BROKEN.items():
            setattr(schedule, name, value)
        log.info("schedule %s pushed a run again: no longer broken", schedule.name)
