"""The producer side: enqueue jobs with jobsite's options, report progress from inside one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue, get_current_job
from rq.job import Job

from . import conf, events, redaction
from .conf import setting
from .models import JobOrigin
from .ordering.keys import OrderingError, rate_limit_for
from .redis import META_ATTEMPT, META_KEY, META_MAX_ATTEMPTS, META_ORIGIN, META_PARENT, META_RETRY, replicas_wait
from .redis import connection as redis_connection
from .rq.job import TrackedJob
from .rq.retry import RetryPolicy, policy_for

# The queue object and default attempts per queue, per process, rebuilt when settings
# change. Its client is the process's one (workers.redis.connection(): REDIS_URL or
# Sentinel), not one django-rq would build per call: a new connection for every enqueue
# cost 5x bare RQ's latency (bench/enqueue.py). redis-py pools are thread-safe and reset
# themselves in a forked child.
_PRODUCERS: dict[str, tuple[Any, Queue, int]] = {}
_ORIGINS = frozenset(JobOrigin.values)


def _producer(queue: str) -> tuple[Queue, int]:
    import django_rq

    # Keyed by the settings' values, not their identity: a queue's config edited in place
    # (another serializer, a new default timeout) must give a new producer.
    config = tuple(sorted((key, repr(value)) for key, value in conf.queue_config(queue).items()))
    jobsite = (repr(setting("RETRY")), repr(setting("QUEUE_RETRY")))
    state = (config, jobsite, conf.serializer())
    client = redis_connection()
    cached = _PRODUCERS.get(queue)
    if cached is None or cached[0] != state or cached[1].connection is not client:
        rq_queue = django_rq.get_queue(queue, job_class=TrackedJob, connection=client)
        cached = _PRODUCERS[queue] = (state, rq_queue, policy_for(queue).max_attempts)
    return cached[1], cached[2]


class EnqueueError(ValueError):
    """Bad input to ``enqueue``: nothing was enqueued."""


class QueueUnavailable(RuntimeError):
    """Redis did not answer: nothing was enqueued. Safe to retry once Redis is back.

    Web views that enqueue need not catch it: ``dashboard.middleware`` answers 503.
    """


class EnqueueNotReplicated(QueueUnavailable):
    """The master took the job but too few replicas confirmed it in time
    (``JOBSITE["ENQUEUE_WAIT"]``): a fail-over now would lose it, so it is not acknowledged.

    The job may still run (the master has it). Enqueueing again may run it twice: that is
    the at-least-once promise every job is written for.
    """


def _resolve(func: Callable[..., Any] | str) -> Callable[..., Any] | str:
    if callable(func):
        return func
    if not isinstance(func, str) or "." not in func:
        raise EnqueueError(f"func must be a callable or a dotted path like 'app.jobs.name', not {func!r}")
    try:
        target = import_string(func)
    except ImportError as exc:
        raise EnqueueError(f"cannot import job function {func!r}: {exc}") from exc
    if not callable(target):
        raise EnqueueError(f"{func!r} is not callable")
    return func


def enqueue(
    func: Callable[..., Any] | str,
    *args: Any,
    queue: str = "default",
    key: str | None = None,
    max_attempts: int | None = None,
    at: datetime | None = None,
    delay: timedelta | None = None,
    timeout: int | None = None,
    retry_policy: RetryPolicy | None = None,
    limit: str | tuple[str, int] | None = None,
    **job_kwargs: Any,
) -> Job:
    """Enqueue ``func(*args, **job_kwargs)``; returns the RQ job (``job.id`` is the record's id).

    Inside a database transaction the job is pushed to Redis when it commits, so a job
    never runs against rows that do not exist yet; the returned job already has its id.
    ``key="post:42"`` runs jobs with that key one at a time in enqueue order;
    ``limit="smtp"`` (declared in JOBSITE["LIMITS"]) or ``limit=("smtp", 3)`` caps how many
    jobs of that class run at once across all workers.
    """
    return job_enqueue(
        func,
        args=args,
        kwargs=job_kwargs,
        queue=queue,
        key=key,
        max_attempts=max_attempts,
        at=at,
        delay=delay,
        timeout=timeout,
        retry_policy=retry_policy,
        limit=limit,
    )


def job_enqueue(
    func: Callable[..., Any] | str,
    *,
    args: tuple[Any, ...] | list[Any] = (),
    kwargs: dict[str, Any] | None = None,
    queue: str = "default",
    key: str | None = None,
    max_attempts: int | None = None,
    at: datetime | None = None,
    delay: timedelta | None = None,
    timeout: int | None = None,
    retry_policy: RetryPolicy | None = None,
    limit: str | tuple[str, int] | None = None,
    origin: str = JobOrigin.EVENT,
    parent_job_id: str = "",
    job_id: str | None = None,
    unique: bool = False,
) -> Job:
    """``enqueue`` with every option spelled out, for schedules, fan-outs and retries.

    ``unique=True`` (with a ``job_id``) enqueues only if no job with that id exists in
    Redis, atomically; otherwise the push raises ``rq.exceptions.DuplicateJobError``.
    """
    if not conf.queue_is_configured(queue):
        raise EnqueueError(f"unknown queue {queue!r}; configured queues: {', '.join(conf.queue_names())}")
    if max_attempts is not None and (not isinstance(max_attempts, int) or max_attempts < 1):
        raise EnqueueError(f"max_attempts must be a whole number >= 1, not {max_attempts!r}")
    if timeout is not None and (not isinstance(timeout, int) or timeout < 1):
        raise EnqueueError(f"timeout must be a whole number of seconds >= 1, not {timeout!r}")
    if at is not None and delay is not None:
        raise EnqueueError("give at= or delay=, not both")
    if at is not None and timezone.is_naive(at):
        raise EnqueueError("at= must be a timezone-aware datetime")
    if delay is not None and delay.total_seconds() < 0:
        raise EnqueueError("delay= must not be negative")
    if origin not in _ORIGINS:
        raise EnqueueError(f"unknown origin {origin!r}")
    if key and (at is not None or delay is not None):
        raise EnqueueError("key= cannot be combined with at= or delay=: it takes its place in line when enqueued")
    if key and limit is not None:
        raise EnqueueError("key= and limit= cannot be combined: a key already runs one job at a time")
    try:
        rate_limit = rate_limit_for(limit)
    except OrderingError as exc:
        raise EnqueueError(str(exc)) from exc
    target = _resolve(func)
    rq_queue, default_attempts = _producer(queue)
    meta: dict[str, Any] = {
        META_MAX_ATTEMPTS: max_attempts or (retry_policy.max_attempts if retry_policy else default_attempts),
    }
    if origin != JobOrigin.EVENT:  # the default: the smaller the meta, the quicker the enqueue
        meta[META_ORIGIN] = origin
    if retry_policy is not None:
        meta[META_RETRY] = retry_policy.as_meta()
    if key:
        meta[META_KEY] = events.fitted(str(key), 255)
    if parent_job_id:
        meta[META_PARENT] = parent_job_id
    job = rq_queue.create_job(
        target,  # type: ignore[type-var]
        args=tuple(args),
        kwargs=dict(kwargs or {}),
        timeout=timeout,
        meta=meta,
        job_id=job_id,
        result_ttl=setting("RESULT_TTL"),
        failure_ttl=setting("DEAD_JOB_TTL"),
        rate_limit=rate_limit,
    )
    try:
        _ = job.data  # serialize now: an argument the serializer refuses is the producer's error
    except Exception as exc:
        raise EnqueueError(
            f"the job's arguments cannot be serialized with {conf.serializer()!r}: {type(exc).__name__}: {exc}"
        ) from exc
    when = at if at is not None else (timezone.now() + delay if delay is not None else None)

    wait = conf.enqueue_wait()

    def push() -> None:
        try:
            if when is not None and when > timezone.now():
                rq_queue.schedule_job(job, when)
            else:
                rq_queue.enqueue_job(job, unique=unique)
            if wait is not None:
                replicas, timeout_ms = wait
                acknowledged = replicas_wait(rq_queue.connection, replicas=replicas, timeout_ms=timeout_ms)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise QueueUnavailable(f"Redis is unavailable, job {job.id} was not enqueued: {exc}") from exc
        if wait is not None and acknowledged < wait[0]:
            raise EnqueueNotReplicated(
                f"job {job.id} reached the Redis master but {acknowledged} of the {wait[0]} replica(s) "
                f'JOBSITE["ENQUEUE_WAIT"] asks for confirmed it within {wait[1]} ms: not acknowledged'
            )

    transaction.on_commit(push)  # runs at once outside a transaction
    return job


def progress(done: float, total: float, message: str | None = None) -> None:
    """Report from inside a job how far it is: ``progress(3, 10, "rendering")``."""
    job = get_current_job()
    if job is None:
        raise RuntimeError("progress() can only be called from inside a running job")
    if total <= 0 or done < 0:
        raise ValueError(f"progress needs total > 0 and done >= 0, not done={done!r} total={total!r}")
    percent = max(0, min(100, int(done * 100 / total)))
    text = events.fitted(redaction.call_of(job).text(message or ""), 255)
    last = getattr(job, "_jobsite_last_progress", None)
    if last == (percent, text):
        return  # nothing new to show: spare the stream
    job._jobsite_last_progress = (percent, text)  # type: ignore[attr-defined]
    attempt = int(job.meta.get(META_ATTEMPT, 1))
    events.append(job.connection, events.progress(job_id=job.id, attempt=attempt, percent=percent, message=text))
