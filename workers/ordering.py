"""Ordered (keyed) jobs, concurrency limits and the stuck-key watchdog.

Ordering: each key has a *holder* (the one job allowed onto an RQ queue) and a FIFO
*waiting* list. Enqueueing a keyed job and handing the key to the next job are each one
Lua script, so the decision, the status write, the queue push and the tracking event are
atomic: a key is never held by two jobs and never handed on twice. The holder keeps the
key while it is retried (a retry re-enters RQ as the holder), and gives it up when it
finishes, is canceled, or is dead-lettered (unless its key class says "block").

Limits: ``limit=("smtp", 3)`` uses RQ 3.0's own ``RateLimit``, which is right for "at
most N at once" but not for ordering: it orders waiting jobs by whole-second timestamps
(ties by random job id) and frees the slot while a failed job waits for its retry.

The watchdog (run by every worker's companion thread, one pass at a time across workers)
re-drives keys that made no progress: a holder that ended without handing the key on
(its worker died right after the job), a holder that is "queued" but in no queue (a
worker died between popping it and starting it), a key with waiting jobs and no holder.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from redis import Redis
from rq.job import Job
from rq.queue import Queue
from rq.rate_limit import RateLimit, RateLimitRegistry
from rq.utils import now, utcformat

from . import events
from .conf import setting
from .models import JobStatus

log = logging.getLogger(__name__)

KEYS_ZSET = "jobsite:keys"  # key -> epoch seconds of its last progress (acquired or handed on)
SUSPECT_HASH = "jobsite:keys:suspect"  # key -> JSON {holder, state, since}: seen stuck, not yet re-driven
WATCHDOG_LOCK = "jobsite:keys:watchdog"
META_ATTEMPT_NEXT = "jobsite_a"  # job hash field: the attempt a promotion's queued event belongs to
QUEUE_PREFIX = Queue.redis_queue_namespace_prefix

# KEYS: holder, waiting, keys zset, job hash, queue list, event stream
# ARGV: job id, key, now (epoch), enqueued_at (RQ text), queued event, deferred event
_ENQUEUE = """
local holder = redis.call('GET', KEYS[1])
if not holder or holder == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[1])
    redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
    redis.call('HSET', KEYS[4], 'status', 'queued', 'enqueued_at', ARGV[4])
    redis.call('RPUSH', KEYS[5], ARGV[1])
    redis.call('XADD', KEYS[6], '*', 'd', ARGV[5])
    return 1
end
redis.call('HSET', KEYS[4], 'status', 'deferred')
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], 'NX', ARGV[3], ARGV[2])
redis.call('XADD', KEYS[6], '*', 'd', ARGV[6])
return 0
"""

# Hand the key from ARGV[1] (or from whoever holds it, when ARGV[1] is '') to the oldest
# waiting job that still waits (canceled or deleted ones are dropped on the way).
# The watchdog passes the holder statuses it saw (ARGV[7], comma-separated; 'missing' for
# no job): the key is only handed on if the holder is still in one of them.
# KEYS: holder, waiting, keys zset, event stream, suspect hash
# ARGV: job id or '', key, now (epoch), enqueued_at (RQ text), job key prefix, queue key prefix, statuses
# Returns the promoted job id, '' when the key is now free, false when ARGV[1] is not the holder.
_RELEASE = """
local holder = redis.call('GET', KEYS[1])
if ARGV[1] ~= '' and holder ~= ARGV[1] then
    return false
end
if ARGV[7] ~= '' and holder then
    local status = redis.call('HGET', ARGV[5] .. holder, 'status') or 'missing'
    if not string.find(',' .. ARGV[7] .. ',', ',' .. status .. ',', 1, true) then
        return false
    end
end
redis.call('HDEL', KEYS[5], ARGV[2])
while true do
    local nxt = redis.call('LPOP', KEYS[2])
    if not nxt then
        redis.call('DEL', KEYS[1])
        redis.call('ZREM', KEYS[3], ARGV[2])
        return ''
    end
    local job_key = ARGV[5] .. nxt
    local f = redis.call('HMGET', job_key, 'status', 'origin', 'jobsite_a')
    if f[1] == 'deferred' and f[2] then
        redis.call('SET', KEYS[1], nxt)
        redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
        redis.call('HSET', job_key, 'status', 'queued', 'enqueued_at', ARGV[4])
        redis.call('RPUSH', ARGV[6] .. f[2], nxt)
        local event = {e = 'queued', id = nxt, a = tonumber(f[3]) or 1, t = tonumber(ARGV[3]), q = f[2]}
        redis.call('XADD', KEYS[4], '*', 'd', cjson.encode(event))
        return nxt
    end
end
"""

# Put the holder back on its queue if it is still the holder, still in the state the
# watchdog saw, and (when "queued") really in no queue or intermediate list.
# KEYS: holder, keys zset, event stream, job hash, queue list, intermediate list, suspect hash
# ARGV: job id, key, now (epoch), enqueued_at (RQ text), expected status
_REDRIVE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
    return 0
end
local f = redis.call('HMGET', KEYS[4], 'status', 'origin', 'jobsite_a')
if f[1] ~= ARGV[5] or not f[2] then
    return 0
end
if f[1] == 'queued' and (redis.call('LPOS', KEYS[5], ARGV[1]) or redis.call('LPOS', KEYS[6], ARGV[1])) then
    return 0
end
redis.call('HDEL', KEYS[7], ARGV[2])
redis.call('HSET', KEYS[4], 'status', 'queued', 'enqueued_at', ARGV[4])
redis.call('RPUSH', KEYS[5], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
local event = {e = 'queued', id = ARGV[1], a = tonumber(f[3]) or 1, t = tonumber(ARGV[3]), q = f[2]}
redis.call('XADD', KEYS[3], '*', 'd', cjson.encode(event))
return 1
"""


class OrderingError(ValueError):
    """A keyed or limited enqueue that cannot be done as asked."""


def holder_key(key: str) -> str:
    return f"jobsite:key:{key}:holder"


def waiting_key(key: str) -> str:
    return f"jobsite:key:{key}:waiting"


def key_class(key: str) -> str:
    """``post:42`` -> ``post``: the part of a key that per-class settings are keyed by."""
    return key.split(":", 1)[0]


def blocks_on_dead(key: str) -> bool:
    """Does a dead-lettered job keep its key blocked (until retried or discarded)?"""
    options = setting("KEY_CLASSES", {}).get(key_class(key), {})
    return options.get("on_dead", "release") == "block"


def rate_limit_for(limit: str | tuple[str, int] | list[Any] | None) -> RateLimit | None:
    """``"smtp"`` (declared in JOBSITE["LIMITS"]) or ``("smtp", 3)`` -> RQ's RateLimit."""
    if limit is None:
        return None
    declared = setting("LIMITS", {})
    if isinstance(limit, str):
        if limit not in declared:
            known = ", ".join(sorted(declared)) or "none declared"
            raise OrderingError(f"unknown limit {limit!r}: declare it in JOBSITE['LIMITS'] ({known}) or pass (name, n)")
        name, concurrency = limit, declared[limit]
    elif isinstance(limit, (tuple, list)) and len(limit) == 2:
        name, concurrency = limit
    else:
        raise OrderingError(f"limit must be a declared name or a (name, n) pair, not {limit!r}")
    if not isinstance(name, str) or not name or not isinstance(concurrency, int) or concurrency < 1:
        raise OrderingError(f"limit needs a non-empty name and a whole number >= 1, not {limit!r}")
    return RateLimit(name, concurrency)


def _scripts(connection: Redis) -> dict[str, Any]:
    cached = getattr(connection, "_jobsite_ordering_scripts", None)
    if cached is None:
        cached = {name: connection.register_script(src) for name, src in _SCRIPTS.items()}
        connection._jobsite_ordering_scripts = cached  # type: ignore[attr-defined]
    return cached


_SCRIPTS = {"enqueue": _ENQUEUE, "release": _RELEASE, "redrive": _REDRIVE}


def _event(job: Any, status: str) -> str:
    return events.encode({"e": status, "id": job.id, "a": job.attempt + 1, **job.descriptor()})["d"]


def key_enqueue(queue: Queue, job: Any, *, at_front: bool = False) -> Any:
    """Enqueue a keyed job: onto its queue if it gets the key, else into the key's line.

    The job is saved and placed in one MULTI, so a releaser never finds a waiting id
    without its job, and nothing is half-enqueued if this process dies.
    """
    key = job.meta["jobsite_key"]
    if job.has_rate_limit:
        raise OrderingError("a job cannot have both key= and limit=: a key already runs one job at a time")
    connection = queue.connection
    queue._prepare_for_queue(job)  # origin, timeout, enqueued_at as RQ's own enqueue sets them
    moment = now()
    job._status = JobStatus.DEFERRED
    script = _scripts(connection)["enqueue"]
    with connection.pipeline() as pipe:
        pipe.sadd(queue.redis_queues_keys, queue.key)
        job.save(pipeline=pipe)
        job.cleanup(ttl=job.ttl, pipeline=pipe)
        pipe.hset(job.key, META_ATTEMPT_NEXT, job.attempt + 1)
        script(
            keys=[holder_key(key), waiting_key(key), KEYS_ZSET, job.key, queue.key, events.STREAM_KEY],
            args=[job.id, key, time.time(), utcformat(moment), _event(job, "queued"), _event(job, "deferred")],
            client=pipe,
        )
        granted = pipe.execute()[-1]
    if granted:
        job._status = JobStatus.QUEUED
        job.enqueued_at = moment
    return job


def key_release(connection: Redis, key: str, job_id: str = "", *, if_status: str = "") -> tuple[bool, str | None]:
    """Give the key up (``job_id`` must hold it; ``""`` forces; ``if_status``: only if the
    holder's status is still this one).

    Returns (released, promoted job id or None when the key is now free); released is
    False when ``job_id`` did not hold the key (someone already handed it on).
    """
    result = _scripts(connection)["release"](
        keys=[holder_key(key), waiting_key(key), KEYS_ZSET, events.STREAM_KEY, SUSPECT_HASH],
        args=[job_id, key, time.time(), utcformat(now()), Job.redis_job_namespace_prefix, QUEUE_PREFIX, if_status],
    )
    if result is None:
        return False, None
    promoted = result.decode() if isinstance(result, bytes) else str(result)
    return True, promoted or None


def key_job_ended(job: Job, *, status: str) -> None:
    """Called by a jobsite worker once a keyed job's outcome is committed."""
    key = job.meta.get("jobsite_key")
    if not key or status == JobStatus.RETRYING:
        return  # a retrying job keeps its key: the next attempt comes before later jobs
    if status in (JobStatus.DEAD, JobStatus.STOPPED) and blocks_on_dead(key):
        log.warning("key %s stays blocked: job %s is %s and key class %r blocks", key, job.id, status, key_class(key))
        return
    try:
        key_release(job.connection, key, job.id)
    except Exception:
        # The watchdog hands the key on when it sees the ended holder.
        log.exception("could not hand on key %s after job %s; the key watchdog will", key, job.id)


@dataclass(frozen=True)
class KeyState:
    key: str
    holder: str
    holder_status: str
    waiting: int
    idle_seconds: float
    state: str  # running | queued | retrying | limited | blocked | stalled | free
    note: str

    @property
    def is_stalled(self) -> bool:
        return self.state in ("stalled", "blocked")


_HEALTHY = {
    "started": ("running", ""),
    "scheduled": ("retrying", "waiting for its next attempt"),
    "rate_limited": ("limited", "waiting for a slot of its limit"),
}


# LPOS is linear in the queue's length: look for at most this many queued holders per
# pass, and only for keys idle longer than the stall timeout.
MAX_QUEUE_SCANS = 100


def _inspect(connection: Redis, entries: list[tuple[str, float]], moment: float) -> list[tuple[KeyState, str]]:
    """Each key's state plus the action the watchdog would take: '', release, redrive, orphan."""
    stall_timeout = float(setting("KEY_STALL_TIMEOUT", 30))
    scans = 0
    with connection.pipeline(transaction=False) as pipe:
        for key, _score in entries:
            pipe.get(holder_key(key))
            pipe.llen(waiting_key(key))
        raw = pipe.execute()
    holders = [h.decode() if h else "" for h in raw[0::2]]
    waiting = [int(n) for n in raw[1::2]]
    with connection.pipeline(transaction=False) as pipe:
        for holder in holders:
            pipe.hmget(Job.key_for(holder) if holder else "jobsite:none", "status", "origin")
        fields = pipe.execute()
    out: list[tuple[KeyState, str]] = []
    for (key, score), holder, count, (status_raw, origin_raw) in zip(entries, holders, waiting, fields, strict=True):
        status = status_raw.decode() if status_raw else ""
        origin = origin_raw.decode() if origin_raw else ""
        idle = max(moment - score, 0.0)
        action = ""
        if not holder:
            state, note = ("stalled", "jobs wait but no job holds the key") if count else ("free", "")
            action = "orphan" if count else "forget"
        elif not status:
            state, note, action = "stalled", "its holder job no longer exists", "release"
        elif status in ("finished", "canceled"):
            state, note, action = "stalled", f"its holder is {status} but did not hand the key on", "release"
        elif status in ("failed", "stopped"):
            if blocks_on_dead(key):
                state, note = "blocked", f"holder is {'dead' if status == 'failed' else status}: retry or discard it"
            else:
                state, note, action = "stalled", f"its holder is {status} but did not hand the key on", "release"
        elif status == "queued" and (idle < stall_timeout or scans >= MAX_QUEUE_SCANS):
            state, note = "queued", ""
        elif status == "queued":
            scans += 1
            in_queue = connection.lpos(QUEUE_PREFIX + origin, holder) is not None
            in_flight = connection.lpos(f"{QUEUE_PREFIX}{origin}:intermediate", holder) is not None
            if in_queue or in_flight:
                state, note = "queued", ""
            else:
                state, note, action = "stalled", "its holder is queued but in no queue (lost by a worker)", "redrive"
        elif status == "deferred":
            state, note, action = "stalled", "its holder was granted the key but never queued", "redrive"
        else:
            state, note = _HEALTHY.get(status, ("running", status))
        out.append((KeyState(key, holder, status, count, idle, state, note), action))
    return out


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _keys_by_age(connection: Redis, count: int) -> list[tuple[str, float]]:
    """Keys with work, longest without progress first, with the epoch of their last progress."""
    entries: Any = connection.zrange(KEYS_ZSET, 0, count - 1, withscores=True)
    return [(_text(key), float(score)) for key, score in entries]


def key_states(*, limit: int = 200, connection: Redis | None = None) -> list[KeyState]:
    """Keys with work (held or waiting), stalled ones first, then the longest idle."""
    from .tracking import redis_connection

    connection = connection or redis_connection()
    entries = _keys_by_age(connection, limit)
    states = [state for state, _action in _inspect(connection, entries, time.time()) if state.state != "free"]
    return sorted(states, key=lambda s: (not s.is_stalled, -s.idle_seconds))


def keys_watchdog(connection: Redis, *, moment: float | None = None, exclusive: bool = True) -> int:
    """One watchdog pass; returns how many keys it moved on.

    ``exclusive``: skip the pass when another worker ran one within the interval (every
    worker's companion calls this; one pass per interval is enough).
    """
    interval = float(setting("WATCHDOG_INTERVAL", 3))
    if exclusive and not connection.set(WATCHDOG_LOCK, 1, nx=True, px=max(int(interval * 900), 100)):
        return 0
    moment = time.time() if moment is None else moment
    for registry in RateLimitRegistry.all(connection):
        registry.cleanup()  # frees slots of jobs that died or were dead-lettered by our watchdog
    timeout = float(setting("KEY_STALL_TIMEOUT", 30))
    entries = _keys_by_age(connection, 1000)
    raw_suspects: Any = connection.hgetall(SUSPECT_HASH)
    suspects: dict[str, dict[str, Any]] = {_text(k): json.loads(v) for k, v in raw_suspects.items()}
    moved = 0
    for state, action in _inspect(connection, entries, moment):
        if action == "forget":
            connection.zrem(KEYS_ZSET, state.key)
        elif action == "release":
            # The holder is over: hand the key on now (a late release by its worker is a no-op).
            ended = state.holder_status or "missing"
            released, _promoted = key_release(connection, state.key, state.holder, if_status=ended)
            if released:
                log.warning("key watchdog: key %s moved on (%s)", state.key, state.note)
                moved += 1
        elif action in ("redrive", "orphan"):
            seen = suspects.get(state.key)
            if not seen or seen["holder"] != state.holder or seen["status"] != state.holder_status:
                seen = {"holder": state.holder, "status": state.holder_status, "since": moment}
                connection.hset(SUSPECT_HASH, state.key, json.dumps(seen))
            elif moment - seen["since"] >= timeout:
                if _redrive(connection, state, action):
                    log.warning("key watchdog: key %s re-driven after %.0f s (%s)", state.key, timeout, state.note)
                    moved += 1
        elif state.key in suspects:
            connection.hdel(SUSPECT_HASH, state.key)
    return moved


def _redrive(connection: Redis, state: KeyState, action: str) -> bool:
    if action == "orphan":
        return key_release(connection, state.key, "")[0]
    origin = _text(connection.hget(Job.key_for(state.holder), "origin") or b"")
    queue_key = QUEUE_PREFIX + origin
    return bool(
        _scripts(connection)["redrive"](
            keys=[
                holder_key(state.key),
                KEYS_ZSET,
                events.STREAM_KEY,
                Job.key_for(state.holder),
                queue_key,
                f"{queue_key}:intermediate",
                SUSPECT_HASH,
            ],
            args=[state.holder, state.key, time.time(), utcformat(now()), state.holder_status],
        )
    )
