"""Schedules: validation, due-time arithmetic, the code sync, the scheduler tick, operator
actions and the reads the dashboard needs.

Exactly once per due time, however many schedulers run: a scheduler claims due time T of
a schedule by a compare-and-set in the database (``next_run_at`` moves from T to the next
due time only if it still is T) and writes the run (an outbox row) in the same
transaction; only the winner pushes the job, with a job id derived from (schedule, T)
and RQ's atomic unique enqueue, then marks the run pushed. A scheduler that dies between
the commit and the push leaves an unpushed run, which the next tick of any scheduler
pushes; the unique job id makes that push a no-op if it had in fact gone through.
"""

from __future__ import annotations

import json
import logging
import uuid
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from croniter import croniter
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import transaction
from django.db.models import F, Window
from django.db.models.functions import RowNumber
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rq.exceptions import DuplicateJobError

from .conf import setting
from .models import CatchUp, JobOrigin, JobRecord, Schedule, ScheduleRun, ScheduleSource
from .registry import schedulable_functions

log = logging.getLogger(__name__)

HEARTBEAT_KEY = "jobsite:scheduler:{}"
DEFINITION_FIELDS = ("func", "cron", "interval", "run_at", "timezone", "args", "kwargs", "queue", "catch_up")
_TRIGGER_FIELDS = ("cron", "interval", "run_at", "timezone")


class ScheduleActionError(Exception):
    """An operator action on a schedule that cannot be done; the message says why."""


class ScheduleNotFound(ScheduleActionError):
    pass


# --- validation -------------------------------------------------------------------------


def cron_error(expression: str) -> str | None:
    """Why ``expression`` is not a 5-field cron expression, or None when it is one."""
    fields = expression.split()
    if len(fields) != 5:
        return (
            f"{expression!r} is not a cron expression: it needs 5 fields (minute hour day-of-month month "
            f"day-of-week), not {len(fields)}, e.g. '*/15 * * * *' or '0 9 * * 1'"
        )
    try:
        croniter(expression)
    except (ValueError, KeyError) as exc:
        return f"{expression!r} is not a valid cron expression: {exc}"
    return None


def schedule_validate(schedule: Schedule) -> None:
    """Raise ValidationError (by field) for anything the scheduler could not run."""
    errors: dict[str, list[str]] = {}

    def add(name: str, message: str) -> None:
        errors.setdefault(name, []).append(message)

    triggers = [name for name, value in (("cron", schedule.cron), ("interval", schedule.interval),
                                          ("run_at", schedule.run_at)) if value not in (None, "")]  # fmt: skip
    if len(triggers) != 1:
        message = "give exactly one trigger: a cron expression, an interval in seconds, or a one-time run_at"
        add("__all__", message if not triggers else f"{message}, not {' and '.join(triggers)}")
    if schedule.cron and (problem := cron_error(schedule.cron)):
        add("cron", problem)
    if schedule.interval is not None and (not isinstance(schedule.interval, int) or schedule.interval < 1):
        add("interval", f"interval must be a whole number of seconds >= 1, not {schedule.interval!r}")
    if schedule.run_at is not None and timezone.is_naive(schedule.run_at):
        add("run_at", "run_at must carry a timezone")
    try:
        zoneinfo.ZoneInfo(schedule.timezone or "")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        add("timezone", f"unknown timezone {schedule.timezone!r}; use an IANA name like 'Europe/Berlin' or 'UTC'")
    functions = schedulable_functions()
    if schedule.func not in functions:
        known = ", ".join(functions) or "none registered"
        add("func", f"{schedule.func!r} is not a schedulable function (decorate it with @schedulable); known: {known}")
    if not isinstance(schedule.args, list):
        add("args", f'args must be a JSON list, e.g. [42, "weekly"], not {json.dumps(schedule.args)[:80]}')
    if not isinstance(schedule.kwargs, dict):
        add(
            "kwargs", f'kwargs must be a JSON object, e.g. {{"dry_run": false}}, not {json.dumps(schedule.kwargs)[:80]}'
        )
    if schedule.queue not in settings.RQ_QUEUES:
        add("queue", f"unknown queue {schedule.queue!r}; configured queues: {', '.join(settings.RQ_QUEUES)}")
    if schedule.catch_up not in CatchUp.values:
        add("catch_up", f"catch_up must be one of {', '.join(CatchUp.values)}, not {schedule.catch_up!r}")
    if errors:
        raise ValidationError(errors)


# --- due times ---------------------------------------------------------------------------


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


# --- the scheduler ----------------------------------------------------------------------


def run_job_id(schedule: Schedule, due: datetime | None) -> str:
    if due is None:
        return f"schedule-{schedule.pk}-now-{uuid.uuid4().hex[:12]}"
    return f"schedule-{schedule.pk}-{int(due.timestamp())}"


def _push(schedule: Schedule, run: ScheduleRun) -> None:
    from .api import job_enqueue

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
    on_time = (now - window.latest).total_seconds() <= setting("SCHEDULE_GRACE", 60)
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
        _push(schedule, run)
    return run


def schedules_fire_due(*, now: datetime, limit: int = 200) -> list[ScheduleRun]:
    """One scheduler tick: push runs a dead scheduler left unpushed, then fire what is due."""
    runs: list[ScheduleRun] = []
    run: ScheduleRun | None
    stale = now - timedelta(seconds=5)
    for run in ScheduleRun.objects.filter(enqueued=False, fired_at__lte=stale).select_related("schedule")[:limit]:
        log.warning("schedule %s: pushing run %s left unpushed by a scheduler", run.schedule.name, run.job_id)
        _push(run.schedule, run)
    due = Schedule.objects.filter(enabled=True, paused_at__isnull=True, next_run_at__lte=now).order_by("next_run_at")
    for schedule in due[:limit]:
        try:
            run = schedule_fire(schedule=schedule, now=now)
        except Exception:
            log.exception("schedule %s could not fire; will try again", schedule.name)
            continue
        if run is not None:
            runs.append(run)
    return runs


def scheduler_heartbeat(connection: Any, name: str, ttl: int = 10) -> None:
    connection.set(HEARTBEAT_KEY.format(name), timezone.now().isoformat(), ex=ttl)


def schedulers_alive(connection: Any = None) -> list[str]:
    """Names of the scheduler processes that reported in the last few seconds."""
    if connection is None:
        from .tracking import redis_connection

        connection = redis_connection()
    prefix = HEARTBEAT_KEY.format("")
    return sorted(key.decode()[len(prefix) :] for key in connection.scan_iter(match=prefix + "*", count=100))


# --- operator actions ------------------------------------------------------------------


def _locked(schedule_id: int) -> Schedule:
    schedule = Schedule.objects.select_for_update().filter(pk=schedule_id).first()
    if schedule is None:
        raise ScheduleNotFound(f"no schedule with id {schedule_id}")
    return schedule


def schedule_save(*, schedule: Schedule, now: datetime | None = None) -> Schedule:
    """Validate and save a schedule; a new or changed trigger gets a new next run."""
    now = now or timezone.now()
    schedule_validate(schedule)
    old = Schedule.objects.filter(pk=schedule.pk).first() if schedule.pk else None
    changed = old is None or any(getattr(old, f) != getattr(schedule, f) for f in (*_TRIGGER_FIELDS, "enabled"))
    if changed:
        schedule.next_run_at = first_run(schedule, now=now) if schedule.enabled else None
    schedule.save()
    return schedule


def schedule_pause(*, schedule_id: int, now: datetime | None = None) -> Schedule:
    with transaction.atomic():
        schedule = _locked(schedule_id)
        if schedule.paused_at is None:
            schedule.paused_at = now or timezone.now()
            schedule.save(update_fields=["paused_at", "updated_at"])
    return schedule


def schedule_resume(*, schedule_id: int, now: datetime | None = None) -> Schedule:
    """Resume from now on: due times that passed while paused are not caught up."""
    now = now or timezone.now()
    with transaction.atomic():
        schedule = _locked(schedule_id)
        if schedule.paused_at is None:
            return schedule
        schedule.paused_at = None
        if schedule.enabled and (schedule.next_run_at is None or schedule.next_run_at <= now):
            schedule.next_run_at = next_due(schedule, after=now) if (schedule.cron or schedule.interval) else None
        schedule.save(update_fields=["paused_at", "next_run_at", "updated_at"])
    return schedule


def schedule_run_now(*, schedule_id: int, now: datetime | None = None) -> ScheduleRun:
    """Run the schedule's job once, now, whether it is paused or not; its timing is unchanged."""
    now = now or timezone.now()
    with transaction.atomic():
        schedule = _locked(schedule_id)
        if schedule.func not in schedulable_functions():
            raise ScheduleActionError(f"{schedule.func!r} is no longer a schedulable function; fix the schedule")
        run = ScheduleRun.objects.create(schedule=schedule, job_id=run_job_id(schedule, None), fired_at=now)
        schedule.last_run_at, schedule.last_job_id = now, run.job_id
        schedule.save(update_fields=["last_run_at", "last_job_id", "updated_at"])
    _push(schedule, run)
    return run


# --- declared in code ----------------------------------------------------------------------


def _from_declaration(entry: Any) -> tuple[str, dict[str, Any]]:
    """One JOBSITE_SCHEDULES entry -> (name, model field values); ValueError when malformed."""
    if not isinstance(entry, dict):
        raise ValueError(f"each schedule must be a dict, not {entry!r}")
    known = {"name", "func", "cron", "interval", "at", "queue", "args", "kwargs", "timezone", "catch_up", "enabled"}
    if unknown := set(entry) - known:
        raise ValueError(f"unknown field(s) {sorted(unknown)}; allowed: {sorted(known)}")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError("every schedule needs a non-empty 'name'")
    values: dict[str, Any] = {
        "func": entry.get("func", ""),
        "cron": entry.get("cron") or "",
        "interval": entry.get("interval"),
        "run_at": None,
        "timezone": entry.get("timezone", "UTC"),
        "args": list(entry["args"]) if isinstance(entry.get("args"), (list, tuple)) else entry.get("args", []),
        "kwargs": entry.get("kwargs", {}),
        "queue": entry.get("queue", "default"),
        "catch_up": entry.get("catch_up", CatchUp.ONCE),
        "enabled": bool(entry.get("enabled", True)),
    }
    if entry.get("at") is not None:
        at = entry["at"] if isinstance(entry["at"], datetime) else parse_datetime(str(entry["at"]))
        if at is None:
            raise ValueError(f"'at' must be an ISO datetime like '2026-01-31T09:00:00+01:00', not {entry['at']!r}")
        if timezone.is_naive(at):
            try:
                at = at.replace(tzinfo=zoneinfo.ZoneInfo(values["timezone"]))
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                at = at.replace(tzinfo=UTC)  # the timezone error is reported by validation
        values["run_at"] = at
    return name.strip(), values


def declared_schedule_errors(declared: Iterable[Any]) -> list[str]:
    """Every problem of a JOBSITE_SCHEDULES list, one message per problem (empty when fine)."""
    problems: list[str] = []
    seen: set[str] = set()
    for index, entry in enumerate(declared):
        label = f"JOBSITE_SCHEDULES[{index}]"
        try:
            name, values = _from_declaration(entry)
        except ValueError as exc:
            problems.append(f"{label}: {exc}")
            continue
        label = f"{label} ({name!r})"
        if name in seen:
            problems.append(f"{label}: the name is declared twice")
        seen.add(name)
        try:
            schedule_validate(Schedule(name=name, **values))
        except ValidationError as exc:
            for field_name, messages in exc.message_dict.items():
                problems.extend(f"{label} {field_name}: {message}" for message in messages)
    return problems


@dataclass
class SyncResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)


def schedules_sync(*, declared: list[Any] | None = None, now: datetime | None = None) -> SyncResult:
    """Create or update the schedules declared in code (by name); disable vanished ones.

    Operator state (paused, last run, history) survives a sync; the definition is code's.
    """
    declared = list(settings.JOBSITE_SCHEDULES if declared is None else declared)
    if problems := declared_schedule_errors(declared):
        raise ImproperlyConfigured("invalid JOBSITE_SCHEDULES:\n  " + "\n  ".join(problems))
    now = now or timezone.now()
    result = SyncResult()
    names = []
    with transaction.atomic():
        for entry in declared:
            name, values = _from_declaration(entry)
            names.append(name)
            schedule = Schedule.objects.select_for_update().filter(name=name).first()
            if schedule is None:
                schedule = Schedule(name=name, source=ScheduleSource.CODE, **values)
                schedule_save(schedule=schedule, now=now)
                result.created.append(name)
                continue
            if schedule.source == ScheduleSource.CODE and all(getattr(schedule, k) == v for k, v in values.items()):
                continue
            for key, value in values.items():
                setattr(schedule, key, value)
            schedule.source = ScheduleSource.CODE
            schedule_save(schedule=schedule, now=now)
            result.updated.append(name)
        vanished = Schedule.objects.filter(source=ScheduleSource.CODE, enabled=True).exclude(name__in=names)
        result.disabled = list(vanished.values_list("name", flat=True))
        vanished.update(enabled=False, next_run_at=None, updated_at=now)
    return result


# --- reads ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunView:
    run: ScheduleRun
    record: JobRecord | None

    @property
    def outcome(self) -> str:
        if self.record is not None:
            return self.record.status
        return "queued" if self.run.enqueued else "claimed"


@dataclass(frozen=True)
class ScheduleView:
    schedule: Schedule
    recent: list[RunView]

    @property
    def last(self) -> RunView | None:
        return self.recent[0] if self.recent else None


def schedule_list(*, recent: int = 5) -> list[ScheduleView]:
    """Every schedule with its latest runs and their job records, in three queries."""
    schedules = list(Schedule.objects.all())
    ranked = ScheduleRun.objects.annotate(
        rank=Window(RowNumber(), partition_by=[F("schedule_id")], order_by=[F("fired_at").desc(), F("id").desc()])
    )
    runs = list(ranked.filter(rank__lte=recent).order_by("schedule_id", "-fired_at", "-id"))
    records = {r.job_id: r for r in JobRecord.objects.filter(job_id__in=[run.job_id for run in runs])}
    by_schedule: dict[int, list[RunView]] = {}
    for run in runs:
        by_schedule.setdefault(run.schedule_id, []).append(RunView(run, records.get(run.job_id)))
    return [ScheduleView(s, by_schedule.get(s.pk, [])) for s in schedules]
