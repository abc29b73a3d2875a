"""The one Redis connection factory, and the name of every Redis key jobsite owns.

RQ names its own keys (``Job.key_for``, each registry's ``key``); every other key any
part of jobsite reads or writes is spelled here, once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time

from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MasterDownError, NoScriptError, ReadOnlyError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry
from redis.sentinel import Sentinel

from .conf import RedisSettings, redis_settings

log = logging.getLogger(__name__)

# --- keys ------------------------------------------------------------------------------
# Lifecycle events: one stream, read by the recorders as one consumer group.
STREAM_KEY = "jobsite:events"
STREAM_GROUP = "jobsite-recorder"
# Stream entries the recorder could not apply, with the reason: set aside, never dropped.
UNAPPLIED_KEY = "jobsite:events:unapplied"
# Valid events for a job with no record yet, held a while before being set aside
# (a sorted set scored by when each was first held; see recording/unapplied.py).
HELD_KEY = "jobsite:events:held"
# Liveness: every jobsite worker's name, and a short-lived key per live worker.
WORKERS_SET = "jobsite:workers"
ALIVE_KEY = "jobsite:alive:{}"
# Queue name -> epoch when an operator paused it.
PAUSED_KEY = "jobsite:paused-queues"
# A `run_scheduler` process that reported in lately.
SCHEDULER_HEARTBEAT_KEY = "jobsite:scheduler:{}"
# Watchdog guards: one watchdog acts on an orphan; a job seen lost once, then again.
WATCHDOG_ORPHAN_KEY = "jobsite:watchdog:{}:{}"  # job id, attempt
LOST_KEY = "jobsite:lost:{}"
# A job whose RQ hash vanished (Redis came back without it): one watchdog records it lost.
VANISHED_KEY = "jobsite:vanished:{}"
REQUEUE_GUARD_KEY = "jobsite:requeue:{}"
# One put-back of a job that looks lost per this many seconds, whoever does it (a worker,
# the lost-jobs watchdog, the key watchdog): the job popped again meanwhile looks lost too.
REQUEUE_GUARD_SECONDS = 60
# Job id -> the execution that may write the outcome of its attempt (workers/rq/claims.py).
CLAIM_KEY = "jobsite:claim:{}"
RUN_AGAIN_GUARD_KEY = "jobsite:run-again:{}"
# Reconciliation: one pass at a time across workers, and where each window stopped
# (field "<queue>:<list or registry>" -> an offset; "records" -> a keyset of the records).
RECONCILE_LOCK_KEY = "jobsite:reconcile:lock"
RECONCILE_CURSORS_KEY = "jobsite:reconcile:cursors"
# Ordered jobs: key -> epoch of its last progress; keys seen stuck; the watchdog's lock;
# each key's holder and its waiting line.
KEYS_ZSET = "jobsite:keys"
KEYS_SUSPECT_HASH = "jobsite:keys:suspect"
KEYS_WATCHDOG_LOCK = "jobsite:keys:watchdog"
KEY_HOLDER_KEY = "jobsite:key:{}:holder"
KEY_WAITING_KEY = "jobsite:key:{}:waiting"

# Fields jobsite owns in RQ's job hash: keys of job.meta, and one field of the hash itself
# (the attempt an ordering promotion's queued event belongs to, read by the Lua scripts).
META_ATTEMPT = "jobsite_attempt"
META_MAX_ATTEMPTS = "jobsite_max_attempts"
META_RETRY = "jobsite_retry"
META_KEY = "jobsite_key"
META_ORIGIN = "jobsite_origin"
META_PARENT = "jobsite_parent"
# Attempts the job had made before its current run: a `Repeat` run starts a new count.
META_RUN_BASE = "jobsite_run_base"
HASH_NEXT_ATTEMPT = "jobsite_a"


# A write whose only purpose is to be replicated: WAIT on the same connection then
# confirms everything written before it (see ``replicas_wait``).
REPLICATION_PROBE_KEY = "jobsite:replication-probe"


# --- connections -------------------------------------------------------------------------
# Short commands (producers, views, the scheduler) give up soon when Redis hangs; a client
# that blocks on Redis (the recorder's XREADGROUP BLOCK, a worker's dequeue) waits longer.
CONNECT_TIMEOUT = 2
COMMAND_TIMEOUT = 5
BLOCKING_TIMEOUT = 30
# Asking a sentinel is quick or it is down: then the next one is asked.
SENTINEL_TIMEOUT = 0.5
# With Sentinel, a client that works for a worker (new_connection) rides out a fail-over:
# a command that finds no master retries, asking the sentinels again each time, for about
# 10 s (0.5 + 1 + 2 + 2 + 2 + 2), which covers a fail-over with down-after-milliseconds
# of 5000 (README). Producers and views (connection) fail at once instead: QueueUnavailable,
# a 503 with Retry-After.
FAILOVER_RETRY = Retry(ExponentialBackoff(cap=2, base=0.25), retries=6)

_lock = threading.Lock()
_cached: tuple[tuple[int, RedisSettings], Redis] | None = None


def _client(where: RedisSettings, *, socket_timeout: float, ride_out_failover: bool = False) -> Redis:
    if not where.sentinels:
        return Redis.from_url(
            where.url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=CONNECT_TIMEOUT,
            health_check_interval=30,
        )
    sentinel = Sentinel(
        list(where.sentinels),
        sentinel_kwargs={
            "password": where.sentinel_password or None,
            "socket_timeout": SENTINEL_TIMEOUT,
            "socket_connect_timeout": SENTINEL_TIMEOUT,
        },
    )
    # Each new connection asks the sentinels where the master is, so after a fail-over a
    # client reconnects to the new master by itself: a connection to the old one fails
    # (or, if it came back as a replica, answers READONLY and is dropped), and the retry
    # (ours, or the caller's loop's) lands on the new master.
    return sentinel.master_for(
        where.master,
        db=where.db,
        password=where.password or None,
        socket_timeout=socket_timeout,
        socket_connect_timeout=CONNECT_TIMEOUT,
        health_check_interval=30,
        **({"retry": FAILOVER_RETRY} if ride_out_failover else {}),
    )


def new_connection() -> Redis:
    """A client of its own (a thread that blocks on Redis, a worker), with jobsite's timeouts.

    From ``REDIS_URL``, or with ``REDIS_SENTINELS`` a client of whichever server the
    sentinels say is the master now, that waits out a fail-over (FAILOVER_RETRY).
    """
    return _client(redis_settings(), socket_timeout=BLOCKING_TIMEOUT, ride_out_failover=True)


def connection() -> Redis:
    """This process's client of the configured Redis, made once per process.

    A forked child (a work horse) makes its own: it never shares a socket with its parent.
    """
    global _cached
    owner = (os.getpid(), redis_settings())  # settings changed (tests): a new client too
    cached = _cached
    if cached is not None and cached[0] == owner:
        return cached[1]
    with _lock:
        if _cached is None or _cached[0] != owner:
            _cached = (owner, _client(owner[1], socket_timeout=COMMAND_TIMEOUT))
        return _cached[1]


def connection_reset() -> None:
    """Forget the cached client (tests that point REDIS_URL elsewhere)."""
    global _cached
    with _lock:
        _cached = None


def replicas_wait(client: Redis, *, replicas: int, timeout_ms: int) -> int:
    """How many replicas have everything written before this call, waiting at most
    ``timeout_ms`` for ``replicas`` of them (Redis WAIT).

    WAIT only covers writes made on its own connection, and a pooled client may have
    written on another: a probe write on WAIT's connection comes after all of them in the
    replication stream, so a replica that has the probe has them too.
    """
    with client.pipeline(transaction=False) as pipe:
        pipe.set(REPLICATION_PROBE_KEY, os.getpid())
        pipe.wait(replicas, timeout_ms)
        return int(pipe.execute()[1])


# --- outages -----------------------------------------------------------------------------
# What Redis answers while it restarts, fails over or is cut off: wait and try again. (A
# replica not yet promoted refuses writes; one loading its data answers LOADING, which
# redis-py raises as a ConnectionError.) Any other error is a bug or bad input, not an outage.
REDIS_DOWN: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError, ReadOnlyError, MasterDownError)


class LuaScript:
    """A Lua script sent by its SHA1 (EVALSHA), and in full (EVAL, which also loads it) only
    when Redis does not know it yet: after a restart, a fail-over, or on first use.

    For calls on a connection. In a transaction keep ``eval``: a NOSCRIPT there cannot be
    answered by sending the script again, and redis-py's own ``Script`` makes a pipeline
    ask SCRIPT EXISTS first, a round trip more."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def __call__(self, connection: Redis, keys: list[str], args: list[str]) -> object:
        try:
            return connection.evalsha(self.sha, len(keys), *keys, *args)  # type: ignore[no-untyped-call]
        except NoScriptError:
            return connection.eval(self.source, len(keys), *keys, *args)  # type: ignore[no-untyped-call]


def raise_if_failing_over(exc: ResponseError) -> None:
    """A server turned replica in a fail-over cuts its blocking commands (BLPOP, XREADGROUP
    BLOCK) short with UNBLOCKED: that is Redis being away too, not a bad command."""
    if str(exc).startswith("UNBLOCKED"):
        raise RedisConnectionError(f"Redis is failing over: {exc}") from exc


def backoff(failures: int) -> float:
    """Seconds to wait after the ``failures``-th failure in a row: 0.5 s doubling to 10 s at most."""
    return min(0.5 * 2 ** max(failures - 1, 0), 10.0)


class RedisOutage:
    """What a process knows of Redis being away, shared by its loops and threads.

    Each loop that meets a Redis error calls ``began`` and waits ``backoff(n)`` before it
    tries again; the first to get through calls ``ended``. So an outage is logged once when
    it begins and once when it is over, however many loops retry meanwhile.
    """

    def __init__(self, who: str) -> None:
        self.who = who
        self.count = 0  # outages begun so far
        self.ended_at: float | None = None  # time.monotonic() when the last one was over
        self._since: float | None = None
        self._lock = threading.Lock()

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    def began(self, exc: BaseException) -> None:
        with self._lock:
            if self._since is not None:
                return
            self._since = time.monotonic()
            self.count += 1
        log.warning("%s: Redis is unavailable (%s: %s); waiting for it", self.who, type(exc).__name__, exc)

    def ended(self) -> None:
        if self._since is None:
            return
        with self._lock:
            since, self._since = self._since, None
            if since is None:
                return
            self.ended_at = time.monotonic()
        log.info("%s: Redis answers again after %.1f s; going on", self.who, self.ended_at - since)
