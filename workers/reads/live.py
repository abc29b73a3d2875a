"""What RQ holds right now, read from Redis: live workers, queues and their registries.

The one reader of these facts: the pages, ``/metrics`` and the alert rules all ask here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone
from rq.queue import Queue
from rq.suspension import is_suspended
from rq.worker import WorkerStatus

from .. import conf
from ..models import JobRecord
from ..redis import connection as redis_connection
from ..rq.job import TrackedJob
from ..rq.queue import TrackedQueue
from ..runtime.liveness import live_workers


@dataclass(frozen=True)
class WorkerInfo:
    name: str
    hostname: str
    pid: int | None
    queues: list[str]
    state: str
    current_job_id: str | None
    last_heartbeat: datetime | None
    birth: datetime | None
    successful: int
    failed: int
    working_seconds: float

    @property
    def is_busy(self) -> bool:
        return self.state == "busy"


def worker_list() -> list[WorkerInfo]:
    """Live RQ workers (workers.runtime.liveness), each busy, idle or suspended."""
    connection = redis_connection()
    suspended = is_suspended(connection)
    found: list[WorkerInfo] = []
    for worker in live_workers(connection, now=timezone.now(), job_class=TrackedJob, queue_class=TrackedQueue):
        raw = worker.get_state()
        state = raw.value if isinstance(raw, WorkerStatus) else str(raw)
        if state != "busy":
            state = "suspended" if suspended or state == "suspended" else "idle"
        found.append(
            WorkerInfo(
                name=worker.name,
                hostname=worker.hostname or "",
                pid=worker.pid,
                queues=worker.queue_names(),
                state=state,
                current_job_id=worker.get_current_job_id() if state == "busy" else None,
                last_heartbeat=worker.last_heartbeat,
                birth=worker.birth_date,
                successful=worker.successful_job_count,
                failed=worker.failed_job_count,
                working_seconds=float(worker.total_working_time),
            )
        )
    return sorted(found, key=lambda w: w.name)


def queue_names() -> list[str]:
    """The configured queues in priority order, then any other queue RQ knows of."""
    names = conf.queue_names()
    extra = {q.name for q in Queue.all(connection=redis_connection())} - set(names)
    return names + sorted(extra)


@dataclass(frozen=True)
class QueueLive:
    """A queue's length and the size of each of RQ's registries for it."""

    name: str
    queued: int = 0
    started: int = 0
    scheduled: int = 0
    deferred: int = 0
    failed: int = 0
    finished: int = 0


def queue_live_list(names: list[str] | None = None) -> list[QueueLive]:
    """Each queue's length and registry sizes, in one round trip (default: the configured queues)."""
    names = conf.queue_names() if names is None else names
    connection = redis_connection()
    registries = ("started_job_registry", "scheduled_job_registry", "deferred_job_registry",
                  "failed_job_registry", "finished_job_registry")  # fmt: skip
    with connection.pipeline(transaction=False) as pipe:
        for name in names:
            queue = TrackedQueue(name, connection=connection)
            pipe.llen(queue.key)
            for registry in registries:
                pipe.zcard(getattr(queue, registry).key)
        counts = pipe.execute()
    width = 1 + len(registries)
    return [QueueLive(name, *counts[i * width : (i + 1) * width]) for i, name in enumerate(names)]


def queue_oldest_wait(name: str, *, now: datetime) -> float:
    """Seconds the oldest job waiting in queue ``name`` has waited (0 when none waits)."""
    connection = redis_connection()
    queue = TrackedQueue(name, connection=connection)
    for job_id in queue.get_job_ids(0, 10):
        try:
            job = TrackedJob.fetch(job_id, connection=connection)
        except Exception:  # vanished or unreadable: look at the next one
            continue
        moment = job.enqueued_at or job.created_at
        if moment:
            return max((now - moment).total_seconds(), 0.0)
    return 0.0


@dataclass(frozen=True)
class Registry:
    name: str
    count: int
    items: list[tuple[str, JobRecord | None]]


def queue_registries_get(*, name: str, limit: int = 20) -> list[Registry]:
    """The jobs RQ holds for a queue right now: waiting in it, scheduled, running, deferred."""
    connection = redis_connection()
    queue = TrackedQueue(name, connection=connection)
    listing: list[tuple[str, int, list[str]]] = [
        ("queued", queue.count, queue.get_job_ids(0, limit - 1)),
    ]
    for label, registry in (
        # RQ keeps retries waiting for their backoff in its scheduled registry too.
        ("scheduled and retrying", queue.scheduled_job_registry),
        ("started", queue.started_job_registry),
        ("deferred", queue.deferred_job_registry),
    ):
        count = registry.get_job_count(cleanup=False)
        listing.append((label, count, registry.get_job_ids(0, limit - 1, cleanup=False)))
    ids = {job_id for _, _, job_ids in listing for job_id in job_ids}
    records = {r.job_id: r for r in JobRecord.objects.filter(job_id__in=ids)}
    return [Registry(label, count, [(i, records.get(i)) for i in job_ids]) for label, count, job_ids in listing]
