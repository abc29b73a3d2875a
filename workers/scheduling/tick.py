"""The scheduler tick: fire what is due, exactly once per due time however many schedulers run.

A scheduler claims due time T of a schedule by a compare-and-set in the database
(``next_run_at`` moves from T to the next due time only if it still is T) and writes the
run (an outbox row) in the same transaction; only the winner pushes the job, with a job
id derived from (schedule, T) and RQ's atomic unique enqueue, then marks the run pushed.
A scheduler that dies between the commit and the push leaves an unpushed run, which the
next tick of any scheduler pushes; the unique job id makes that push a no-op if it had in
fact gone through.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone
from rq.exceptions import DuplicateJobError

from ..api import QueueUnavailable, job_enqueue
from ..conf import setting
from ..models import CatchUp, JobOrigin, Schedule, ScheduleRun
from ..redis import REDIS_DOWN, SCHEDULER_HEARTBEAT_KEY
from .due import due_window

log = logging.getLogger(__name__)
# Redis is away: raised by Redis itself, or by the enqueue that met it.
REDIS_AWAY: tuple[type[Exception], ...] = (QueueUnavailable, *REDIS_DOWN)


def run_job_id(schedule: Schedule, due: datetime | None) -> str:
    if due is None:
        return f"schedule-{schedule.pk}-now-{uuid.uuid4().hex[:12]}"
    return f"schedule-{schedule.pk}-{int(due.timestamp())}"


def schedule_push(schedule: Schedule, run: ScheduleRun) -> None:
    """Push a claimed run to Redis (once: its job id is unique), then mark it pushed."""
    try:
        job_enqueue(
            schedule.func,
            args=list(schedule.args),
            kwargs=dict(schedule.kwargs),
            queue=schedule.queue,
            origin=JobOrigin.SCHEDULE,
            job_id=run.job_id,
            unique=True,
        )
    except DuplicateJobError:
        pass  # pushed before (by a scheduler that died before marking it): once is enough
    ScheduleRun.objects.filter(pk=run.pk).update(enqueued=True)


def schedule_fire(*, schedule: Schedule, now: datetime) -> ScheduleRun | None:
    """Fire what is due of ``schedule`` at ``now``; None when another scheduler got there first."""
    due = schedule.next_run_at
    if due is None or due > now:
        return None
    window = due_window(schedule, due=due, now=now)
    on_time = (now - window.latest).total_seconds() <= setting("SCHEDULE_GRACE")
    fire = schedule.catch_up == CatchUp.ONCE or on_time
    missed = window.missed + (0 if fire else 1)
    run = None
    with transaction.atomic():
        changes: dict[str, Any] = {"next_run_at": window.following, "missed_runs": F("missed_runs") + missed}
        if fire:
            changes.update(last_run_at=now, last_job_id=run_job_id(schedule, window.latest))
        # The claim: only the scheduler that moves next_run_at off `due` fires it.
        if not Schedule.objects.filter(pk=schedule.pk, next_run_at=due).update(**changes, updated_at=now):
            return None
        if fire:
            run = ScheduleRun.objects.create(
                schedule=schedule, job_id=changes["last_job_id"], due_at=window.latest, fired_at=now
            )
    if missed:
        log.warning(
            "schedule %s: %d missed due time(s) skipped (catch_up=%s)", schedule.name, missed, schedule.catch_up
        )
    if run is not None:
        schedule_push(schedule, run)
    return run


def schedules_fire_due(*, now: datetime, limit: int = 200) -> list[ScheduleRun]:
    """One scheduler tick: push runs a dead scheduler left unpushed, then fire what is due.

    Redis being away ends the tick (``QueueUnavailable``): a run claimed but not pushed
    is pushed by the first tick after the outage.
    """
    runs: list[ScheduleRun] = []
    run: ScheduleRun | None
    stale = now - timedelta(seconds=5)
    for run in ScheduleRun.objects.filter(enqueued=False, fired_at__lte=stale).select_related("schedule")[:limit]:
        log.warning("schedule %s: pushing run %s left unpushed by a scheduler", run.schedule.name, run.job_id)
        schedule_push(run.schedule, run)
    due = Schedule.objects.filter(enabled=True, paused_at__isnull=True, next_run_at__lte=now).order_by("next_run_at")
    for schedule in due[:limit]:
        try:
            run = schedule_fire(schedule=schedule, now=now)
        except REDIS_AWAY:
            raise  # not this schedule's fault: the caller waits for Redis
        except Exception:
            log.exception("schedule %s could not fire; will try again", schedule.name)
            continue
        if run is not None:
            runs.append(run)
    return runs


def scheduler_heartbeat(connection: Any, name: str, ttl: int = 10) -> None:
    connection.set(SCHEDULER_HEARTBEAT_KEY.format(name), timezone.now().isoformat(), ex=ttl)
