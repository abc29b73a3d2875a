"""Every jobsite setting and its default, read in one place.

Nothing else in the project reads ``settings.JOBSITE``, ``RQ_QUEUES``, ``JOBSITE_QUEUES``,
``JOBSITE_SERIALIZER``, ``REDIS_URL`` or the ``REDIS_SENTINEL*`` settings: they are asked
for here, so a default lives once and a setting that is missing takes it.
``jobsite/settings`` only fills them from the environment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# Every key of the JOBSITE dict with its default; jobsite/settings sets only what it changes.
DEFAULTS: dict[str, Any] = {
    # Default retry policy: attempts in all (first run included) and exponential backoff
    # with jitter: delay(n) = min(cap, base * factor ** (n - 1)) * (1 ± jitter).
    "RETRY": {"max_attempts": 3, "base": 5.0, "factor": 2.0, "cap": 3600.0, "jitter": 0.2},
    # Per-queue overrides of any RETRY key, e.g. {"low": {"max_attempts": 5}}.
    "QUEUE_RETRY": {},
    # Jobs enqueued by plain RQ or django-rq clients (no jobsite meta) that carry no RQ
    # `Retry` of their own: "rq" (default) fails them on their first failure, as bare RQ
    # does, so a job that is not idempotent never runs more often than RQ would run it;
    # "policy" gives them the retry policy above on every queue; a list of queue names
    # gives it to those queues only. A job's own `Retry` is always honoured as RQ does.
    "PLAIN_RQ_RETRY": "rq",
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
    # An event for a job that has no record and does not describe it (progress, log lines)
    # may only be early: the event that creates the record can be in another recorder's
    # batch still being committed. It is held and tried again for this long (seconds),
    # then set aside with the reason (jobsite:events:unapplied).
    "RECORDER_HOLD": 60,
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
    # A schedule whose run cannot be pushed is marked broken and tried again after
    # SCHEDULE_RETRY_BASE seconds, doubling up to SCHEDULE_RETRY_CAP, until it goes out.
    "SCHEDULE_RETRY_BASE": 5.0,
    "SCHEDULE_RETRY_CAP": 600.0,
    # Log lines kept per job attempt (captured while the job runs; the rest are counted).
    "LOG_LINES_LIMIT": 200,
    # Reconciliation with RQ (a worker companion's pass, one at a time across workers):
    # every RECONCILE_INTERVAL seconds, a window of RECONCILE_BATCH job ids from each of
    # RQ's queues and registries, and as many stale unfinished records, are compared; what
    # a jobsite worker did not observe (jobs run by a bare `rq worker`, plain-RQ jobs
    # never seen) is recorded from what RQ kept. Facts younger than RECONCILE_GRACE
    # seconds are left to the recorder, which may not have applied them yet. 0 disables.
    "RECONCILE_INTERVAL": 10,
    "RECONCILE_BATCH": 100,
    "RECONCILE_GRACE": 5,
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
    # Secrets masked ("[redacted]") in everything stored, shown or logged of a job: its
    # arguments, result, exception message and traceback, log lines and progress messages
    # (workers/redaction.py). The job itself gets its real arguments.
    # - "names": regexes, case-insensitive, searched in keyword-argument names, positional
    #   parameter names, dict keys at any depth, and `name=value` / `name: value` in text.
    # - "patterns": regexes over text; a group named "value" marks the part to mask (else
    #   the whole match).
    # - "card_numbers": mask Luhn-valid card numbers (13-19 digits, spaces or dashes).
    # - "functions": per function, by dotted path: "all" (every argument and the result),
    #   or {"args": [0, 2] or "all", "kwargs": ["pin"] or "all", "result": True,
    #   "patterns": [...]}.
    # A JOBSITE["REDACT"] in settings adds its "names" and "patterns" to these unless it
    # says "defaults": False; its other keys replace these.
    "REDACT": {
        "names": [
            r"passw(or)?d",
            r"passphrase",
            r"secret",
            r"token",
            r"authorization",
            r"api[-_]?key",
            r"private[-_]?key",
            r"credential",
            r"card[-_]?number",
            r"(?<![a-z])cv[vc](?![a-z])",
        ],
        "patterns": [
            r"(?i)\b(?:bearer|basic)\s+(?P<value>[A-Za-z0-9._~+/=-]{8,})",  # Authorization headers
            r"(?i)\b[a-z][a-z0-9+.-]*://[^\s:/@]+:(?P<value>[^\s@/]+)@",  # passwords in URLs
            r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+",  # JSON web tokens
            r"\b(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{10,}",  # Stripe keys
            r"\bgh[pousr]_[A-Za-z0-9]{30,}",  # GitHub tokens
            r"\bxox[abprs]-[A-Za-z0-9-]{10,}",  # Slack tokens
            r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",  # AWS access key ids
        ],
        "card_numbers": True,
        "functions": {},
    },
    # --- audit trail (workers.services.audit) ---
    # Operator actions are kept this many days (the retention job deletes older ones);
    # 0 keeps them for good.
    "AUDIT_RETENTION_DAYS": 365,
    # Reverse proxies in front of the web server that append the client's address to
    # X-Forwarded-For. 0: the audit trail records REMOTE_ADDR and ignores the header (a
    # client can write anything in it); n: the address the n-th proxy from the server saw.
    "TRUSTED_PROXY_COUNT": 0,
    # Asynchronous replication: a job the master acknowledged can be lost if the master
    # dies before a replica has it (README, "Redis Sentinel"). {"replicas": 1,
    # "timeout_ms": 100} makes enqueue() wait (Redis WAIT) until that many replicas have
    # the job, and raise QueueUnavailable when they do not within the timeout. None: off.
    "ENQUEUE_WAIT": None,
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


@dataclass(frozen=True)
class RedisSettings:
    """Where Redis is: ``url``, or the master named ``master`` that ``sentinels`` know."""

    url: str = ""
    sentinels: tuple[tuple[str, int], ...] = ()
    master: str = ""
    password: str = ""
    sentinel_password: str = ""
    db: int = 0


def redis_settings() -> RedisSettings:
    """``REDIS_SENTINELS`` (+ ``REDIS_SENTINEL_MASTER``, passwords, ``REDIS_DB``) when set,
    else ``REDIS_URL``. A malformed value raises ImproperlyConfigured saying what to fix."""
    sentinels = getattr(settings, "REDIS_SENTINELS", None) or ()
    if not sentinels:
        return RedisSettings(url=str(getattr(settings, "REDIS_URL", "") or "redis://127.0.0.1:6379/0"))
    pairs = []
    for item in sentinels:
        if not (
            isinstance(item, (tuple, list))
            and len(item) == 2
            and isinstance(item[0], str)
            and item[0]
            and isinstance(item[1], int)
            and 0 < item[1] < 65536
        ):
            raise ImproperlyConfigured(
                f"REDIS_SENTINELS: {item!r} is not a (host, port) pair, e.g. [('10.0.0.1', 26379), ...]"
            )
        pairs.append((item[0], item[1]))
    master = getattr(settings, "REDIS_SENTINEL_MASTER", "")
    if not master or not isinstance(master, str):
        raise ImproperlyConfigured("REDIS_SENTINELS is set: REDIS_SENTINEL_MASTER must name the master they monitor")
    db = getattr(settings, "REDIS_DB", 0)
    if not isinstance(db, int) or db < 0:
        raise ImproperlyConfigured(f"REDIS_DB must be a database number like 0, not {db!r}")
    return RedisSettings(
        sentinels=tuple(pairs),
        master=master,
        password=str(getattr(settings, "REDIS_PASSWORD", "") or ""),
        sentinel_password=str(getattr(settings, "REDIS_SENTINEL_PASSWORD", "") or ""),
        db=db,
    )


def enqueue_wait() -> tuple[int, int] | None:
    """``(replicas, timeout_ms)`` that enqueue waits for, or None (JOBSITE["ENQUEUE_WAIT"])."""
    value = setting("ENQUEUE_WAIT")
    if value is None:
        return None
    replicas = value.get("replicas") if isinstance(value, dict) else None
    timeout_ms = value.get("timeout_ms") if isinstance(value, dict) else None
    valid = isinstance(value, dict) and set(value) == {"replicas", "timeout_ms"}
    for number in (replicas, timeout_ms):
        valid = valid and isinstance(number, int) and not isinstance(number, bool) and number >= 1
    if not valid:
        raise ImproperlyConfigured(
            f'JOBSITE["ENQUEUE_WAIT"] must be None or {{"replicas": <n >= 1>, "timeout_ms": <ms >= 1>}}, not {value!r}'
        )
    return replicas, timeout_ms  # type: ignore[return-value]


def declared_schedules() -> list[Any]:
    return list(getattr(settings, "JOBSITE_SCHEDULES", []))


# --- checking them ---------------------------------------------------------------------------
# `manage.py check` reports these (workers/apps.py) and jobsite's commands refuse to start
# with one (workers/management/base.py): one line each, saying what to fix.


def one_line(exc: BaseException) -> str:
    """An exception as a short line: its type and its message's words."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:300]


def redacted(url: str) -> str:
    """``url`` without its password, for an error message."""
    return re.sub(r"//[^/@]*@", "//***@", url)


def redis_url_problem(url: str) -> str | None:
    from redis.connection import parse_url

    try:
        parse_url(url)
    except ValueError as exc:
        return f"REDIS_URL {redacted(url)!r} is not a Redis URL ({one_line(exc)}); e.g. redis://127.0.0.1:6379/0"
    return None


def serializer_problem(name: str, *, what: str = "JOBSITE_SERIALIZER") -> str | None:
    from rq.serializers import resolve_serializer

    try:
        resolve_serializer(name)
    except Exception as exc:  # importing a dotted path can raise anything
        return f"{what} {name!r} is not a serializer ({one_line(exc)}); use pickle, json or a dotted path"
    return None


def redis_description() -> str:
    """Where jobsite's Redis is, for a message (passwords hidden)."""
    try:
        where = redis_settings()
    except ImproperlyConfigured:
        return "the Redis settings (malformed)"
    if where.url:
        return redacted(where.url)
    sentinels = ", ".join(f"{host}:{port}" for host, port in where.sentinels)
    return f"master {where.master!r} of the sentinels {sentinels}"


def settings_problems() -> list[str]:
    """What is wrong with the settings jobsite reads here, one line each."""
    problems = [serializer_problem(serializer())]
    for read in (redis_settings, enqueue_wait):
        try:
            read()
        except ImproperlyConfigured as exc:
            problems.append(str(exc))
    if not problems[1:]:
        url = redis_settings().url
        problems.append(redis_url_problem(url) if url else None)
    if not queue_names():
        problems.append("no queue is configured: set JOBSITE_QUEUES (e.g. high,default,low)")
    return [problem for problem in problems if problem]
