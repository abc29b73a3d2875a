"""The one Redis connection factory, and the name of every Redis key jobsite owns.

RQ names its own keys (``Job.key_for``, each registry's ``key``); every other key any
part of jobsite reads or writes is spelled here, once.
"""

from __future__ import annotations

import os
import threading

from redis import Redis

from .conf import redis_url

# --- keys ------------------------------------------------------------------------------
# Lifecycle events: one stream, read by the recorders as one consumer group.
STREAM_KEY = "jobsite:events"
STREAM_GROUP = "jobsite-recorder"
# Stream entries the recorder could not apply, with the reason: set aside, never dropped.
UNAPPLIED_KEY = "jobsite:events:unapplied"
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
REQUEUE_GUARD_KEY = "jobsite:requeue:{}"
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


# --- connections -------------------------------------------------------------------------
_lock = threading.Lock()
_cached: tuple[tuple[int, str], Redis] | None = None


def new_connection() -> Redis:
    """A client of its own (a thread that blocks on Redis, say), with jobsite's timeouts."""
    return Redis.from_url(redis_url(), socket_timeout=30, socket_connect_timeout=5, health_check_interval=30)


def connection() -> Redis:
    """This process's client of the configured Redis, made once per process.

    A forked child (a work horse) makes its own: it never shares a socket with its parent.
    """
    global _cached
    owner = (os.getpid(), redis_url())  # settings changed (tests): a new client too
    cached = _cached
    if cached is not None and cached[0] == owner:
        return cached[1]
    with _lock:
        if _cached is None or _cached[0] != owner:
            _cached = (owner, new_connection())
        return _cached[1]


def connection_reset() -> None:
    """Forget the cached client (tests that point REDIS_URL elsewhere)."""
    global _cached
    with _lock:
        _cached = None
