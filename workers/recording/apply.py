"""Applying lifecycle events to the database: records, errors, log lines and roll-ups.

Applying is idempotent (upsert by job id and attempt, statuses only move forward within
an attempt), so an event applied twice changes nothing. ``consumer`` feeds it from the stream.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import InterfaceError, OperationalError, transaction
from django.db.models import F
from django.db.models.functions import Greatest

from .. import events
from ..models import (
    RUNTIME_BUCKET_FIELDS,
    JobError,
    JobLogLine,
    JobMetric,
    JobMetricTotal,
    JobRecord,
    runtime_bucket,
)
from ..rq.forkguard import FORK_GUARD
from ..statuses import ENDED, FAILURE_STATUSES, STATUS_RANK, WAITING, JobStatus

_RECORD_FIELDS = [
    "queue", "func", "args_repr", "kwargs_repr", "status", "attempts", "max_attempts", "enqueued_at",
    "scheduled_for", "started_at", "ended_at", "duration", "worker", "result_repr", "key", "progress",
    "progress_message", "origin", "parent_job_id", "timeout", "last_error", "last_fingerprint", "status_changed_at",
    "reconciled_at", "status_reason", "args_json",
]  # fmt: skip
_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<name>.+)$', re.MULTILINE)


def is_transient(exc: Exception) -> bool:
    """The database is away or busy (retry later), as opposed to an event it cannot take."""
    return isinstance(exc, (OperationalError, InterfaceError))


def _dt(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, tz=UTC) if epoch is not None else None


def fingerprint(exc_type: str, func: str, traceback_text: str) -> str:
    """Exception type + job function + the frame that raised: one failure group."""
    frames = _FRAME.findall(traceback_text or "")
    frame = f"{frames[-1][0]}:{frames[-1][2]}" if frames else ""
    return hashlib.sha1(f"{exc_type}|{func}|{frame}".encode()).hexdigest()[:16]


@dataclass
class _Metric:
    enqueued: int = 0
    started: int = 0
    finished: int = 0
    failed: int = 0
    dead: int = 0
    runtime_total: float = 0.0
    runtime_max: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * len(RUNTIME_BUCKET_FIELDS))


@dataclass
class _Batch:
    records: dict[str, JobRecord]
    changed: set[str] = field(default_factory=set)
    errors: list[JobError] = field(default_factory=list)
    log_lines: list[JobLogLine] = field(default_factory=list)
    metrics: dict[tuple[datetime, str, str], _Metric] = field(default_factory=lambda: defaultdict(_Metric))

    def metric(self, event: dict[str, Any], record: JobRecord) -> _Metric:
        moment = _dt(event.get("t")) or datetime.now(UTC)
        return self.metrics[(moment.replace(second=0, microsecond=0), record.queue, record.func)]


def _reconciled(event: dict[str, Any]) -> bool:
    return event.get(events.HOW) == events.RECONCILED


def _order(event: dict[str, Any]) -> tuple[int, int, int, float]:
    if event["e"] in (events.PROGRESS, events.LOG):
        return (int(event["a"]), 1, 0, float(event["t"]))
    # An observed event goes before a reconciled one of the same attempt and rank: it stands.
    return (int(event["a"]), STATUS_RANK[JobStatus(event["e"])], int(_reconciled(event)), float(event["t"]))


def _describe(record: JobRecord, event: dict[str, Any]) -> None:
    """Fill what an event knows of the job itself; first writer wins for the enqueue time."""
    for attr, name in (("queue", "q"), ("func", "f"), ("args_repr", "args"), ("kwargs_repr", "kwargs"),
                       ("key", "key"), ("origin", "origin"), ("parent_job_id", "parent")):  # fmt: skip
        value = event.get(name)
        if value:
            setattr(record, attr, value)
    # Only the shape a descriptor builds, within REPR_LIMIT, is stored (and indexed).
    if events.valid_json_arguments(event.get(events.ARGS_JSON)):
        record.args_json = event[events.ARGS_JSON]
    if event.get("max"):
        record.max_attempts = int(event["max"])
    if event.get("timeout") is not None:
        record.timeout = int(event["timeout"])
    if record.enqueued_at is None and event.get("enq"):
        record.enqueued_at = _dt(event["enq"])


def _log_lines(record: JobRecord, event: dict[str, Any]) -> list[JobLogLine]:
    return [
        JobLogLine(
            job=record,
            attempt=int(event["a"]),
            seq=int(seq),
            logged_at=_dt(float(created)) or datetime.now(UTC),
            level=str(level)[:16],
            logger=events.fitted(str(name), 255),
            message=events.bounded(str(message)),
        )
        for seq, created, level, name, message in event.get("lines") or []
    ]


def _apply_one(batch: _Batch, record: JobRecord, event: dict[str, Any]) -> None:
    attempt, kind = int(event["a"]), event["e"]
    if kind == events.LOG:
        batch.log_lines.extend(_log_lines(record, event))  # unique per (job, attempt, seq)
        return
    _describe(record, event)
    if kind == events.PROGRESS:
        if attempt >= record.attempts and record.status == JobStatus.STARTED:
            record.progress = max(0, min(100, int(event["p"])))
            record.progress_message = events.fitted(event.get("m") or "", 255)
        return
    status = JobStatus(kind)
    rank = STATUS_RANK[status]
    current = (record.attempts, STATUS_RANK[JobStatus(record.status)], record.status_changed_at)
    if event.get(events.LOST) and record.status_changed_at is not None:
        if current[0] > attempt or (current[0] == attempt and current[1] == ENDED):
            return  # that attempt's outcome is known (or the job moved on): nothing was lost
    moment = _dt(event["t"]) or datetime.now(UTC)
    first_seen = record.status_changed_at is None
    reconciled = _reconciled(event)
    if reconciled and not first_seen:
        if status == record.status and rank == WAITING:
            # Still waiting as recorded; reconciliation only says why.
            reason = event.get(events.REASON) or ""
            if reason != record.status_reason:
                record.status_reason = reason
                batch.changed.add(record.job_id)
            return
        if (attempt, rank) <= current[:2]:
            return  # what a worker observed (or an earlier pass read) stands
    is_failure = status in FAILURE_STATUSES
    if is_failure:
        failure_print = fingerprint(event.get("xt") or "", record.func, event.get("tb") or "")
        batch.errors.append(
            JobError(
                job=record,
                attempt=attempt,
                exc_type=event.get("xt") or "Exception",
                message=event.get("xm") or "",
                traceback=event.get("tb") or "",
                worker=event.get("w") or "",
                failed_at=moment,
                fingerprint=failure_print,
            )
        )
    if not first_seen and (attempt, rank, moment) <= (current[0], current[1], current[2]):
        return  # stale or repeated: statuses never move backwards within an attempt
    metric = batch.metric(event, record)
    if first_seen:
        metric.enqueued += 1
    record.status = status
    record.reconciled_at = datetime.now(UTC) if reconciled else None
    record.status_reason = event.get(events.REASON) or ""
    record.attempts = attempt if rank > 0 else max(record.attempts, attempt - 1)
    record.status_changed_at = moment
    if status == JobStatus.SCHEDULED:
        record.scheduled_for = _dt(event.get("next"))
    elif status == JobStatus.STARTED:
        metric.started += 1
        record.attempts = attempt
        record.worker = event.get("w") or record.worker
        record.started_at = _dt(event.get("start")) or moment
        record.ended_at = record.duration = None
        record.scheduled_for = None
        record.progress, record.progress_message = None, ""
        record.last_fingerprint = ""  # this attempt has not failed (last_error stays, to read)
    elif rank == ENDED:
        record.ended_at = _dt(event.get("end")) or moment
        if event.get("w"):
            record.worker = event["w"]
        started = _dt(event.get("start"))
        if started and record.ended_at:
            record.started_at = started
            record.duration = max((record.ended_at - started).total_seconds(), 0.0)
        runtime = record.duration or 0.0
        if status == JobStatus.FINISHED:
            metric.finished += 1
            record.result_repr = event.get("res") or ""
            record.progress = 100
        elif is_failure:
            metric.failed += 1
            record.last_error = events.bounded(f"{event.get('xt')}: {event.get('xm')}", 480)
            record.last_fingerprint = failure_print
            if status == JobStatus.DEAD:
                metric.dead += 1
            record.scheduled_for = _dt(event.get("next")) if status == JobStatus.RETRYING else None
        if status in (JobStatus.FINISHED, JobStatus.RETRYING, JobStatus.DEAD, JobStatus.STOPPED) and started:
            metric.runtime_total += runtime
            metric.runtime_max = max(metric.runtime_max, runtime)
            metric.buckets[runtime_bucket(runtime)] += 1
    batch.changed.add(record.job_id)


@dataclass(frozen=True)
class Applied:
    """What one ``apply_events`` call did: records changed, and the events it left alone
    because their job has no record and none of them says its queue and function."""

    changed: int
    unrecorded: list[dict[str, Any]]


def apply_events(batch_events: list[dict[str, Any]]) -> Applied:
    """Apply validated events (``events.validate``) in one transaction.

    An event never invents a record: a job that has none is created only by an event that
    describes it (``events.describes_job``); the others of such a job come back unapplied.
    """
    by_job: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in batch_events:
        by_job[event["id"]].append(event)
    if not by_job:
        return Applied(changed=0, unrecorded=[])
    job_ids = sorted(by_job)
    with FORK_GUARD, transaction.atomic():
        # Lock the rows in a fixed order (two recorders working on the same job serialize
        # here instead of overwriting each other), then make the missing ones exist and
        # lock them too. Most events are for jobs already recorded: no insert for them.
        records = _lock_records(job_ids)
        missing = [job_id for job_id in job_ids if job_id not in records]
        described = {job_id: next((e for e in by_job[job_id] if events.describes_job(e)), None) for job_id in missing}
        creatable = [(job_id, event) for job_id, event in described.items() if event is not None]
        if creatable:
            JobRecord.objects.bulk_create(
                [JobRecord(job_id=job_id, queue=event["q"], func=event["f"]) for job_id, event in creatable],
                ignore_conflicts=True,
            )
            records.update(_lock_records([job_id for job_id, _ in creatable]))
        unrecorded = [event for job_id in job_ids if job_id not in records for event in by_job[job_id]]
        batch = _Batch(records=records)
        for job_id in job_ids:
            record = records.get(job_id)
            if record is None:
                continue
            for event in sorted(by_job[job_id], key=_order):
                _apply_one(batch, record, event)
        progressed = {job_id for job_id in _progress_ids(by_job) if job_id in records}
        changed = [records[job_id] for job_id in sorted(batch.changed | progressed)]
        if changed:
            now_ = datetime.now(UTC)
            for record in changed:
                record.updated_at = now_
            _save_records(changed)
        if batch.errors:
            JobError.objects.bulk_create(batch.errors, ignore_conflicts=True)
        if batch.log_lines:
            JobLogLine.objects.bulk_create(batch.log_lines, ignore_conflicts=True)
        _write_metrics(batch.metrics)
    return Applied(changed=len(changed), unrecorded=unrecorded)


def _lock_records(job_ids: list[str]) -> dict[str, JobRecord]:
    return {r.job_id: r for r in JobRecord.objects.select_for_update().filter(job_id__in=job_ids).order_by("job_id")}


def _save_records(records: list[JobRecord]) -> None:
    """Write the changed records (already locked in this transaction) back in one statement.

    An upsert on the unique job id with plain parameters, not ``bulk_update``: its
    CASE-per-field-per-row SQL took ~18 ms per record to compile, which capped tracked
    throughput at a third of bare RQ's (bench/throughput.py).
    """
    JobRecord.objects.bulk_create(
        records,
        update_conflicts=True,
        unique_fields=["job_id"],
        update_fields=[*_RECORD_FIELDS, "updated_at"],
        batch_size=500,
    )


def _progress_ids(by_job: dict[str, list[dict[str, Any]]]) -> set[str]:
    return {job_id for job_id, evs in by_job.items() if any(e["e"] == events.PROGRESS for e in evs)}


def _write_metrics(metrics: dict[tuple[datetime, str, str], _Metric]) -> None:
    if not metrics:
        return
    JobMetric.objects.bulk_create(
        [JobMetric(minute=minute, queue=queue, func=func) for (minute, queue, func) in metrics],
        ignore_conflicts=True,
    )
    for (minute, queue, func), m in metrics.items():
        JobMetric.objects.filter(minute=minute, queue=queue, func=func).update(**_increments(m))
    _write_totals(metrics)


def _increments(m: _Metric) -> dict[str, Any]:
    return {
        "enqueued": F("enqueued") + m.enqueued,
        "started": F("started") + m.started,
        "finished": F("finished") + m.finished,
        "failed": F("failed") + m.failed,
        "dead": F("dead") + m.dead,
        "runtime_total": F("runtime_total") + m.runtime_total,
        "runtime_max": Greatest(F("runtime_max"), m.runtime_max),
        **{name: F(name) + n for name, n in zip(RUNTIME_BUCKET_FIELDS, m.buckets, strict=True) if n},
    }


def _write_totals(metrics: dict[tuple[datetime, str, str], _Metric]) -> None:
    """Add the batch's minutes to the all-time row of each queue and function."""
    totals: dict[tuple[str, str], _Metric] = defaultdict(_Metric)
    for (_minute, queue, func), m in metrics.items():
        t = totals[(queue, func)]
        t.enqueued, t.started, t.finished = t.enqueued + m.enqueued, t.started + m.started, t.finished + m.finished
        t.failed, t.dead, t.runtime_total = t.failed + m.failed, t.dead + m.dead, t.runtime_total + m.runtime_total
        t.runtime_max = max(t.runtime_max, m.runtime_max)
        t.buckets = [a + b for a, b in zip(t.buckets, m.buckets, strict=True)]
    JobMetricTotal.objects.bulk_create(
        [JobMetricTotal(queue=queue, func=func) for (queue, func) in totals], ignore_conflicts=True
    )
    for (queue, func), t in totals.items():
        JobMetricTotal.objects.filter(queue=queue, func=func).update(**_increments(t))
