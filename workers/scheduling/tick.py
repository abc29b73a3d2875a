"""The scheduler tick: fire what is due, exactly once per due time however many schedulers run.

A scheduler claims due time T of a schedule by a compare-and-set in the database
(``next_run_at`` moves from T to the next due time only if it still is T) and writes the
run (an outbox row) in the same transaction; only the winner pushes the job, with a job
id derived from (schedule, T) and RQ's atomic unique enqueue, then marks the run pushed.
A scheduler that dies between the commit and the push leaves an unpushed run, which the
next tick of any scheduler pushes; the unique job id makes that push a no-op if it had in
fact gone through.

Each schedule is on its own within a tick. One that cannot fire (its definition is no
longer valid, its push raises) is marked broken with the reason (``broken.py``) and
tried again after a backoff, its unpushed run with it; the tick goes on with the others.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from rq.exceptions import DuplicateJobError

from ..api import EnqueueError, QueueUnavailable, job_enqueue
from ..conf import setting
from ..models import CatchUp, JobOrigin, Schedule, ScheduleRun
from ..redis import REDIS_DOWN, SCHEDULER_HEARTBEAT_KEY
from .broken import schedule_mark_broken, schedule_mend
from .due import due_window
from .validation import schedule_problem

log = logging.getLogger(__name__)
# Redis is away: raised by Redis itself, or by the enqueue that met it.
REDIS_AWAY: tuple[type[Exception], ...] = (QueueUnavailable, *REDIS_DOWN)


def run_job_id(schedule: Schedule, due: datetime | None) -> str:
    if due is None:
        return f"schedule-{schedule.pk}-now-{uuid.uuid4().hex[:12]}"
    return f"schedule-{schedule.pk}-{int(due.timestamp())}"


def schedule_push(schedule: Schedule, run: ScheduleRun, *, now: datetime | None = None) -> bool:
    """Push a claimed run to Redis (once: its job id is unique), then mark it pushed.

    False when it cannot go: the schedule is then marked broken with the reason, and the
    run waits, unpushed, for the schedule's next try (``schedules_fire_due``).
    """
    now = now or timezone.now()
    reason = schedule_problem(schedule)  # as it is now: a deploy may have removed its queue since
    transient = False
    if reason is None:
        try:
            job_enqueue(
                schedule.func,
                args=schedule.args,
                kwargs=schedule.kwargs,
                queue=schedule.queue,
                origin=JobOrigin.SCHEDULE,
                job_id=run.job_id,
                unique=True,
            )
        except DuplicateJobError:
            pass  # pushed before (by a scheduler that died before marking it): once is enough
        except EnqueueError as exc:
            reason = str(exc)
        except QueueUnavailable as exc:  # Redis away or not replicated: not the schedule's fault
            reason, transient = f"the job could not be pushed: {exc}", True
        except Exception as exc:  # Redis away, a serializer that refuses...: tried again after the backoff
            reason = f"the job could not be pushed: {type(exc).__name__}: {exc}"
    if reason is not None:
        schedule_mark_broken(schedule_id=schedule.pk, reason=reason, now=now, transient=transient)
        if transient:
            # Redis is away for every schedule: end the tick, the caller waits for Redis.
            raise QueueUnavailable(reason)
        return False
    ScheduleRun.objects.filter(pk=run.pk).update(enqueued=True)
    schedule_mend(schedule=schedule)
    return True


def schedule_fire(*, schedule: Schedule, now: datetime) -> ScheduleRun | None:
    """Fire what is due of ``schedule`` at ``now``; None when another scheduler got there
    first, or when it cannot fire (it is then marked broken)."""
    due = schedule.next_run_at
    if due is None or due > now:
        return None
    if (reason := schedule_problem(schedule)) is not None:
        # Nothing is claimed: once it is mended, the due times it missed follow its catch_up.
        schedule_mark_broken(schedule_id=schedule.pk, reason=reason, now=now)
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
    if run is not None and not schedule_push(schedule, run, now=now):
        return None
    return run


def _set_aside(schedule_id: int, exc: Exception, now: datetime) -> None:
    """A schedule whose turn raised is marked broken, so the next ticks try it only after
    the backoff; if even that fails (the database is away), the next tick tries again."""
    log.exception("schedule %s could not fire", schedule_id)
    try:
        schedule_mark_broken(schedule_id=schedule_id, reason=f"{type(exc).__name__}: {exc}", now=now)
    except Exception:
        log.exception("schedule %s could not be marked broken", schedule_id)


def schedules_fire_due(*, now: datetime, limit: int = 200) -> list[ScheduleRun]:
    """One scheduler tick: push runs left unpushed, then fire what is due.

    Redis being away ends the tick (``QueueUnavailable``, the schedule that met it marked
    for a retry at the base delay): ``run_scheduler`` waits for Redis, and the run claimed
    but not pushed goes out with the first tick after the outage.

    A broken schedule is left alone until its ``retry_at``, and a disabled or paused one
    altogether. Rows are read one at a time, so one that cannot even be read is set aside
    like any other broken schedule.
    """
    runs: list[ScheduleRun] = []
    active = Q(schedule__enabled=True, schedule__paused_at__isnull=True)
    # A run is left unpushed by a scheduler that died between its claim and its push (give
    # it a few seconds), or by a push that failed: then the schedule's backoff says when.
    left = Q(schedule__retry_at__isnull=True, fired_at__lte=now - timedelta(seconds=5)) | Q(schedule__retry_at__lte=now)
    unpushed = ScheduleRun.objects.filter(active, left, enqueued=False).order_by("fired_at", "pk")
    failed: set[int] = set()
    for run_pk, schedule_id in unpushed.values_list("pk", "schedule_id")[:limit]:
        if schedule_id in failed:
            continue  # its first run failed again: the rest wait for the next try too
        try:
            left_run = ScheduleRun.objects.select_related("schedule").get(pk=run_pk)
            log.warning("schedule %s: pushing run %s left unpushed", left_run.schedule.name, left_run.job_id)
            pushed = schedule_push(left_run.schedule, left_run, now=now)
        except REDIS_AWAY:
            raise
        except Exception as exc:
            _set_aside(schedule_id, exc, now)
            pushed = False
        if not pushed:
            failed.add(schedule_id)
    ready = Q(retry_at__isnull=True) | Q(retry_at__lte=now)
    due = Schedule.objects.filter(ready, enabled=True, paused_at__isnull=True, next_run_at__lte=now)
    for schedule_id in due.order_by("next_run_at", "pk").values_list("pk", flat=True)[:limit]:
        if schedule_id in failed:
            continue
        try:
            run = schedule_fire(schedule=Schedule.objects.get(pk=schedule_id), now=now)
        except REDIS_AWAY:
            raise  # not this schedule's fault: the caller waits for Redis (it is marked for a retry)
        except Exception as exc:
            _set_aside(schedule_id, exc, now)
            continue
        if run is not None:
            runs.append(run)
    return runs


def scheduler_heartbeat(connection: Any, name: str, ttl: int = 10) -> None:
    connection.set(SCHEDULER_HEARTBEAT_KEY.format(name), timezone.now().isoformat(), ex=ttl)
