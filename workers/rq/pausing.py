"""Paused queues: RQ has no per-queue pause, so jobsite keeps one in Redis.

A hash of queue name -> epoch when it was paused. jobsite workers skip paused queues
when they dequeue (``TrackedQueue.dequeue_any``); the jobs wait in the queue, and the
next dequeue after a resume takes them again. Producers are not affected.

A worker checks the pause in the same step as it pops (``pop_unpaused``, one Lua call in
place of RQ's LMOVE or LPOP): no extra round trip per job, and no moment between the check
and the pop in which a pause could slip. Only the field names count there, so an entry
whose value is not a time (written by hand, or by another tool) still pauses its queue
and stops no worker.
"""

from __future__ import annotations

from datetime import UTC, datetime

from redis import Redis

from ..redis import PAUSED_KEY, LuaScript

# A blocking dequeue wakes this often to notice a pause or a resume.
PAUSE_POLL_SECONDS = 2

# KEYS: the paused-queues hash, each queue's key in the worker's order, then (LMOVE mode,
# RQ's way with one queue) its intermediate list. ARGV: each queue's name, in that order.
# Returns {queue key, job id} of the first job of the first queue not paused, or nil.
_POP_UNPAUSED = LuaScript("""
local queues = #ARGV
local intermediate = KEYS[queues + 2]
for i = 1, queues do
  if redis.call('hexists', KEYS[1], ARGV[i]) == 0 then
    local job_id
    if intermediate then
      job_id = redis.call('lmove', KEYS[i + 1], intermediate, 'LEFT', 'RIGHT')
    else
      job_id = redis.call('lpop', KEYS[i + 1])
    end
    if job_id then return {KEYS[i + 1], job_id} end
  end
end
return false
""")


def paused_queues(connection: Redis) -> dict[str, datetime | None]:
    """Every paused queue with the time it was paused, or None when its entry does not
    hold a time (written by hand or by another tool): the queue is paused all the same,
    as workers see it (``pop_unpaused`` reads only the names)."""
    return {name.decode(errors="replace"): _since(value) for name, value in connection.hgetall(PAUSED_KEY).items()}


def _since(value: bytes) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(value), tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def paused_names(connection: Redis) -> set[str]:
    """Every paused queue (whatever its entry's value says)."""
    return {name.decode(errors="replace") for name in connection.hkeys(PAUSED_KEY)}


def is_paused(connection: Redis, name: str) -> bool:
    return bool(connection.hexists(PAUSED_KEY, name))


def pop_unpaused(
    connection: Redis, queues: list[tuple[str, str]], *, intermediate: str | None
) -> tuple[str, str] | None:
    """Pop the first job of the first of ``queues`` ((name, key) in order) that is not
    paused, in one atomic step: (queue key, job id), or None when none has a job ready.

    ``intermediate``: RQ's intermediate list of a worker's one queue, which the job moves
    to (LMOVE) as RQ's own dequeue does; None pops (LPOP) as RQ does from several queues."""
    keys = [PAUSED_KEY, *(key for _name, key in queues), *([intermediate] if intermediate else [])]
    popped: list[bytes] | None = _POP_UNPAUSED(connection, keys, [name for name, _key in queues])  # type: ignore[assignment]
    if not popped:
        return None
    queue_key, job_id = popped
    return queue_key.decode(), job_id.decode()
