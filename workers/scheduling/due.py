"""Due-time arithmetic of schedules: cron (in the schedule's timezone), interval, one-time."""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from croniter import croniter

from ..models import Schedule


def _zone(schedule: Schedule) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(schedule.timezone or "UTC")


def _whole(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def next_due(schedule: Schedule, *, after: datetime) -> datetime | None:
    """The first due time strictly after ``after`` (UTC), or None when there is none."""
    if schedule.cron:
        local = after.astimezone(_zone(schedule))
        return croniter(schedule.cron, local).get_next(datetime).astimezone(UTC)
    if schedule.interval:
        return _whole(after) + timedelta(seconds=schedule.interval)
    if schedule.run_at:
        return schedule.run_at.astimezone(UTC) if schedule.run_at > after else None
    return None


def first_run(schedule: Schedule, *, now: datetime) -> datetime | None:
    """When a new, changed or resumed schedule is next due."""
    if schedule.run_at and not schedule.cron and not schedule.interval:
        return schedule.run_at.astimezone(UTC)  # a past one-time run follows its catch_up rule
    return next_due(schedule, after=now)


@dataclass(frozen=True)
class DueWindow:
    latest: datetime  # the latest due time <= now
    missed: int  # due times before it, also <= now
    following: datetime | None  # the first due time after now


def due_window(schedule: Schedule, *, due: datetime, now: datetime) -> DueWindow:
    """Everything that fell due from ``due`` (a due time <= now) up to ``now``."""
    if schedule.interval and not schedule.cron:
        passed = int((now - due).total_seconds() // schedule.interval)
        latest = due + timedelta(seconds=passed * schedule.interval)
        return DueWindow(latest, passed, latest + timedelta(seconds=schedule.interval))
    if schedule.cron:
        following = next_due(schedule, after=now)
        assert following is not None
        latest = croniter(schedule.cron, following.astimezone(_zone(schedule))).get_prev(datetime).astimezone(UTC)
        missed, it = 0, croniter(schedule.cron, due.astimezone(_zone(schedule)))
        while missed < 10_000 and it.get_next(datetime).astimezone(UTC) < latest:
            missed += 1
        return DueWindow(max(latest, due), missed, following)
    return DueWindow(due, 0, None)
