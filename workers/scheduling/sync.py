"""Saving a schedule's definition, and the schedules declared in code (``JOBSITE_SCHEDULES``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from .. import conf
from ..models import Schedule, ScheduleSource
from .broken import NOT_BROKEN
from .due import first_run
from .validation import declarations_read, schedule_validate

DEFINITION_FIELDS = ("func", "cron", "interval", "run_at", "timezone", "args", "kwargs", "queue", "catch_up")
_TRIGGER_FIELDS = ("cron", "interval", "run_at", "timezone")


def schedule_save(*, schedule: Schedule, now: datetime | None = None) -> Schedule:
    """Validate and save a schedule; a new or changed trigger gets a new next run.

    A broken schedule that passes is mended: the scheduler tries it (and a run it could not
    push) again at its next tick.
    """
    now = now or timezone.now()
    schedule_validate(schedule)
    for name, value in NOT_BROKEN.items():
        setattr(schedule, name, value)
    old = Schedule.objects.filter(pk=schedule.pk).first() if schedule.pk else None
    changed = old is None or any(getattr(old, f) != getattr(schedule, f) for f in (*_TRIGGER_FIELDS, "enabled"))
    if changed:
        schedule.next_run_at = first_run(schedule, now=now) if schedule.enabled else None
    schedule.save()
    return schedule


@dataclass
class SyncResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)
    # The problems of entries that were skipped (a schedule of that name keeps its last
    # good definition): what `manage.py check` reports too.
    invalid: list[str] = field(default_factory=list)


def schedules_sync(*, declared: list[Any] | None = None, now: datetime | None = None) -> SyncResult:
    """Create or update the schedules declared in code (by name); disable vanished ones.

    Operator state (paused, last run, history) survives a sync; the definition is code's.
    An entry with mistakes is skipped and reported; the others are synced all the same.
    """
    declared = conf.declared_schedules() if declared is None else list(declared)
    declarations = declarations_read(declared)
    now = now or timezone.now()
    result = SyncResult(invalid=[problem for d in declarations for problem in d.problems])
    with transaction.atomic():
        for declaration in declarations:
            if declaration.problems or declaration.name is None:
                continue
            name, values = declaration.name, declaration.values
            schedule = Schedule.objects.select_for_update().filter(name=name).first()
            if schedule is None:
                schedule = Schedule(name=name, source=ScheduleSource.CODE, **values)
                schedule_save(schedule=schedule, now=now)
                result.created.append(name)
                continue
            if schedule.source == ScheduleSource.CODE and all(getattr(schedule, k) == v for k, v in values.items()):
                if schedule.is_broken:  # valid as declared (a queue is back, say): try it again now
                    Schedule.objects.filter(pk=schedule.pk).update(**NOT_BROKEN, updated_at=now)
                continue
            for key, value in values.items():
                setattr(schedule, key, value)
            schedule.source = ScheduleSource.CODE
            schedule_save(schedule=schedule, now=now)
            result.updated.append(name)
        # An entry without a readable name may be any of them: disable nothing until it has one.
        if all(d.name is not None for d in declarations):
            names = [d.name for d in declarations]
            vanished = Schedule.objects.filter(source=ScheduleSource.CODE, enabled=True).exclude(name__in=names)
            result.disabled = list(vanished.values_list("name", flat=True))
            vanished.update(enabled=False, next_run_at=None, updated_at=now, **NOT_BROKEN)
    return result
