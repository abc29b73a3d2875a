"""Operator actions on schedules: pause, resume, run now. Each is audited."""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime

from django.utils import timezone

from ..models import AuditAction, Schedule, ScheduleRun
from ..scheduling.broken import NOT_BROKEN
from ..scheduling.due import next_due
from ..scheduling.tick import run_job_id, schedule_push
from ..scheduling.validation import schedule_problem
from .audit import Actor, AuditNote, audited


class ScheduleActionError(Exception):
    """An operator action on a schedule that cannot be done; the message says why."""


class ScheduleNotFound(ScheduleActionError):
    pass


def _locked(schedule_id: int) -> Schedule:
    schedule = Schedule.objects.select_for_update().filter(pk=schedule_id).first()
    if schedule is None:
        raise ScheduleNotFound(f"no schedule with id {schedule_id}")
    return schedule


def _audited_schedule(actor: Actor, action: AuditAction, schedule_id: int) -> AbstractContextManager[AuditNote]:
    return audited(
        actor=actor, action=action, target_kind="schedule", target_id=schedule_id, refusals=(ScheduleActionError,)
    )


def schedule_pause(*, schedule_id: int, actor: Actor, now: datetime | None = None) -> Schedule:
    with _audited_schedule(actor, AuditAction.SCHEDULE_PAUSE, schedule_id) as note:
        schedule = _locked(schedule_id)
        note.detail = f"{schedule.name}: paused"
        if schedule.paused_at is None:
            schedule.paused_at = now or timezone.now()
            schedule.save(update_fields=["paused_at", "updated_at"])
        else:
            note.detail = f"{schedule.name}: was already paused"
    return schedule


def schedule_resume(*, schedule_id: int, actor: Actor, now: datetime | None = None) -> Schedule:
    """Resume from now on: due times that passed while paused are not caught up.

    A broken schedule (paused or not) is tried again at the next tick, without its backoff.
    """
    now = now or timezone.now()
    with _audited_schedule(actor, AuditAction.SCHEDULE_RESUME, schedule_id) as note:
        schedule = _locked(schedule_id)
        note.detail = f"{schedule.name}: resumed"
        if schedule.paused_at is None and not schedule.is_broken:
            note.detail = f"{schedule.name}: was not paused"
            return schedule
        for name, value in NOT_BROKEN.items():
            setattr(schedule, name, value)
        if schedule.paused_at is not None:
            schedule.paused_at = None
            if schedule.enabled and (schedule.next_run_at is None or schedule.next_run_at <= now):
                schedule.next_run_at = next_due(schedule, after=now) if (schedule.cron or schedule.interval) else None
        schedule.save(update_fields=["paused_at", "next_run_at", *NOT_BROKEN, "updated_at"])
    return schedule


def schedule_run_now(*, schedule_id: int, actor: Actor, now: datetime | None = None) -> ScheduleRun:
    """Run the schedule's job once, now, whether it is paused or not; its timing is unchanged."""
    now = now or timezone.now()
    with _audited_schedule(actor, AuditAction.SCHEDULE_RUN_NOW, schedule_id) as note:
        schedule = _locked(schedule_id)
        if problem := schedule_problem(schedule):
            raise ScheduleActionError(f"{schedule.name} cannot run: {problem}; fix the schedule")
        run = ScheduleRun.objects.create(schedule=schedule, job_id=run_job_id(schedule, None), fired_at=now)
        schedule.last_run_at, schedule.last_job_id = now, run.job_id
        schedule.save(update_fields=["last_run_at", "last_job_id", "updated_at"])
        note.detail = f"{schedule.name}: job {run.job_id}"
    if not schedule_push(schedule, run, now=now):
        schedule.refresh_from_db()
        again = f" from {schedule.retry_at:%H:%M:%S} UTC" if schedule.retry_at else ""
        raise ScheduleActionError(
            f"{schedule.name}: the run could not be pushed: {schedule.broken_reason}; it is tried again{again}"
        )
    return run
