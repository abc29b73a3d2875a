"""Ordered (keyed) jobs and concurrency limits.

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

import logging
import time
from typing import Any

from redis import Redis
from rq.job import Job
from rq.queue import Queue
from rq.rate_limit import RateLimit
from rq.utils import now, utcformat

from .. import events
from ..conf import setting
from ..redis import (
    HASH_NEXT_ATTEMPT,
    KEY_HOLDER_KEY,
    KEY_WAITING_KEY,
    KEYS_SUSPECT_HASH,
    KEYS_ZSET,
    META_KEY,
    STREAM_KEY,
)
from ..statuses import JobStatus

log = logging.getLogger(__name__)

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
        local event = %(promoted_event)s
        redis.call('XADD', KEYS[4], '*', 'd', cjson.encode(event))
        return nxt
    end
end
"""

# Put the holder back on its queue if it is still the holder, still in the state the
# watchdog saw, (when "queued") really in no queue or intermediate list, and no other
# watchdog put it back a moment ago (the job's requeue guard, which lost_jobs_requeue and a
# worker's put-back take too: a job popped again meanwhile, between LPOP and "started",
# looks lost here once more, and two put-backs ran it twice).
# KEYS: holder, keys zset, event stream, job hash, queue list, intermediate list, suspect
# hash, the job's requeue guard
# ARGV: job id, key, now (epoch), enqueued_at (RQ text), expected status, guard seconds
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
if not redis.call('SET', KEYS[8], 1, 'NX', 'EX', tonumber(ARGV[6])) then
    return 0
end
redis.call('HDEL', KEYS[7], ARGV[2])
redis.call('HSET', KEYS[4], 'status', 'queued', 'enqueued_at', ARGV[4])
redis.call('RPUSH', KEYS[5], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
local event = %(redriven_event)s
redis.call('XADD', KEYS[3], '*', 'd', cjson.encode(event))
return 1
"""


class OrderingError(ValueError):
    """A keyed or limited enqueue that cannot be done as asked."""


def holder_key(key: str) -> str:
    return KEY_HOLDER_KEY.format(key)


def waiting_key(key: str) -> str:
    return KEY_WAITING_KEY.format(key)


def key_class(key: str) -> str:
    """``post:42`` -> ``post``: the part of a key that per-class settings are keyed by."""
    return key.split(":", 1)[0]


def blocks_on_dead(key: str) -> bool:
    """Does a dead-lettered job keep its key blocked (until retried or discarded)?"""
    options = setting("KEY_CLASSES").get(key_class(key), {})
    return options.get("on_dead", "release") == "block"


def rate_limit_for(limit: str | tuple[str, int] | list[Any] | None) -> RateLimit | None:
    """``"smtp"`` (declared in JOBSITE["LIMITS"]) or ``("smtp", 3)`` -> RQ's RateLimit."""
    if limit is None:
        return None
    declared = setting("LIMITS")
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


# The events the scripts write take their field names from workers.events.
_RELEASE = _RELEASE.replace(
    "%(promoted_event)s",
    events.lua_queued_event(job_id="nxt", attempt="tonumber(f[3]) or 1", moment="tonumber(ARGV[3])", queue="f[2]"),
)
_REDRIVE = _REDRIVE.replace(
    "%(redriven_event)s",
    events.lua_queued_event(job_id="ARGV[1]", attempt="tonumber(f[3]) or 1", moment="tonumber(ARGV[3])", queue="f[2]"),
)
_SCRIPTS = {"enqueue": _ENQUEUE, "release": _RELEASE, "redrive": _REDRIVE}


def _event(job: Any, status: str) -> str:
    return events.encode(job.waiting_event(status))["d"]


def key_enqueue(queue: Queue, job: Any, *, at_front: bool = False) -> Any:
    """Enqueue a keyed job: onto its queue if it gets the key, else into the key's line.

    The job is saved and placed in one MULTI, so a releaser never finds a waiting id
    without its job, and nothing is half-enqueued if this process dies.
    """
    key = job.meta[META_KEY]
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
        pipe.hset(job.key, HASH_NEXT_ATTEMPT, job.attempt + 1)
        script(
            keys=[holder_key(key), waiting_key(key), KEYS_ZSET, job.key, queue.key, STREAM_KEY],
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
        keys=[holder_key(key), waiting_key(key), KEYS_ZSET, STREAM_KEY, KEYS_SUSPECT_HASH],
        args=[job_id, key, time.time(), utcformat(now()), Job.redis_job_namespace_prefix, QUEUE_PREFIX, if_status],
    )
    if result is None:
        return False, None
    promoted = result.decode() if isinstance(result, bytes) else str(result)
    return True, promoted or None


def key_job_ended(job: Job, *, status: str) -> None:
    """Called by a jobsite worker once a keyed job's outcome is committed."""
    key = job.meta.get(META_KEY)
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
