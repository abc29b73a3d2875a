"""Every jobsite setting and its default, read in one place.

Nothing else in the project reads ``settings.JOBSITE``, ``RQ_QUEUES``, ``JOBSITE_QUEUES``,
``JOBSITE_SERIALIZER`` or ``REDIS_URL``: they are asked for here, so a default lives once
and a setting that is missing takes it. ``jobsite/settings`` only fills them from the
environment.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

# Every key of the JOBSITE dict with its default; jobsite/settings sets only what it changes.
DEFAULTS: dict[str, Any] = {
    # Default retry policy: attempts in all (first run included) and exponential backoff
    # with jitter: delay(n) = min(cap, base * factor ** (n - 1)) * (1 ± jitter).
    "RETRY": {"max_attempts": 3, "base": 5.0, "factor": 2.0, "cap": 3600.0, "jitter": 0.2},
    # Per-queue overrides of any RETRY key, e.g. {"low": {"max_attempts": 5}}.
    "QUEUE_RETRY": {},
    # A worker that has not refreshed its liveness key for this long is dead; its started
    # jobs are failed ("worker died") and retried or dead-lettered.
    "WORKER_ALIVE_TTL": 10,
    "WATCHDOG_INTERVAL": 3,
    # How much of args, kwargs, results and messages is stored and shown.
    "REPR_LIMIT": 2000,
    "TRACEBACK_LIMIT": 20000,
    # Dead jobs keep their RQ payload in Redis this long, so they can be retried.
    "DEAD_JOB_TTL": 90 * 24 * 3600,
    # Finished jobs keep their RQ result this long (the record keeps its repr for good).
    "RESULT_TTL": 3600,
    "RECORDER_BATCH": 500,
    # A worker's recorder waits this long (seconds) after a small batch, so that events
    # gather into fewer, larger transactions: records lag the truth by about this much.
    "RECORDER_PAUSE": 0.2,
    # Ordered jobs (enqueue(..., key="post:42")): a key whose holder is lost (queued in no
    # queue, granted but never queued, no holder while jobs wait) for this long is
    # re-driven by the key watchdog. Per key class ("post" of "post:42"): "on_dead":
    # "release" (default: the next job runs) or "block" (wait for a retry or discard).
    "KEY_STALL_TIMEOUT": 30,
    "KEY_CLASSES": {},
    # Concurrency limits by name: enqueue(..., limit="smtp") runs at most N at once.
    "LIMITS": {},
    # How often `run_scheduler` looks for due schedules, and how late a due time may be
    # and still count as on time (catch_up="skip" drops runs later than this).
    "SCHEDULER_INTERVAL": 1.0,
    "SCHEDULE_GRACE": 60,
    # Log lines kept per job attempt (captured while the job runs; the rest are counted).
    "LOG_LINES_LIMIT": 200,
    # Seconds between a worker's RQ maintenance runs (RQ's default is 600): how soon a
    # live worker takes over the scheduler (delayed jobs, retries) of a dead one.
    "MAINTENANCE_INTERVAL": 30,
    # Retention (`manage.py prune_jobs`, run daily by the "prune job history" schedule):
    # ended job records older than this many days are deleted with their errors; dead
    # letters stay until an operator retries or discards them (or --include-dead).
    "RETENTION_DAYS": 30,
    # Per-minute roll-ups older than this are deleted; the all-time row per queue and
    # function the recorder keeps beside them stays, so /metrics totals never go down.
    "METRIC_RETENTION_DAYS": 30,
    "PRUNE_BATCH": 5000,
    # Job lists count what matches exactly up to this many; above it they show the
    # database's estimate ("about 1.2 M"): no COUNT(*) over a long history per page view.
    "EXACT_COUNT_LIMIT": 10_000,
    # /metrics: with a token, scrapers send `Authorization: Bearer <token>`; without one,
    # only requests from this machine (loopback) are answered.
    "METRICS_TOKEN": "",
}


def setting(name: str) -> Any:
    """``JOBSITE[name]``, or its default."""
    if name not in DEFAULTS:
        raise KeyError(f"JOBSITE has no setting {name!r}; known: {', '.join(sorted(DEFAULTS))}")
    return getattr(settings, "JOBSITE", {}).get(name, DEFAULTS[name])


def queue_names() -> list[str]:
    """The configured queues, in the priority order workers drain them.

    ``RQ_QUEUES`` says which queues exist (django-rq's connection settings), and
    ``JOBSITE_QUEUES`` their order; a queue in ``RQ_QUEUES`` but not in the order comes last.
    """
    configured = list(getattr(settings, "RQ_QUEUES", {}))
    ordered = [name for name in getattr(settings, "JOBSITE_QUEUES", configured) if name in configured]
    return ordered + [name for name in configured if name not in ordered]


def queue_is_configured(name: object) -> bool:
    return isinstance(name, str) and name in getattr(settings, "RQ_QUEUES", {})


def queue_config(name: str) -> dict[str, Any]:
    return dict(settings.RQ_QUEUES[name])


def serializer() -> str:
    """What job payloads are written and read with ("pickle", "json" or a dotted path)."""
    return getattr(settings, "JOBSITE_SERIALIZER", "pickle")


def redis_url() -> str:
    return str(getattr(settings, "REDIS_URL", "redis://127.0.0.1:6379/0"))


def declared_schedules() -> list[Any]:
    return list(getattr(settings, "JOBSITE_SCHEDULES", []))
