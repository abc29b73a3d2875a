"""Paused queues: RQ has no per-queue pause, so jobsite keeps one in Redis.

A hash of queue name -> epoch when it was paused. jobsite workers skip paused queues
when they dequeue (``TrackedQueue.dequeue_any``); the jobs wait in the queue, and the
next dequeue after a resume takes them again. Producers are not affected.
"""

from __future__ import annotations

from datetime import UTC, datetime

from redis import Redis

from ..redis import PAUSED_KEY

# A blocking dequeue wakes this often to notice a pause or a resume.
PAUSE_POLL_SECONDS = 2


def paused_queues(connection: Redis) -> dict[str, datetime]:
    """Every paused queue with the time it was paused."""
    raw = connection.hgetall(PAUSED_KEY)
    return {name.decode(): datetime.fromtimestamp(float(since), tz=UTC) for name, since in raw.items()}


def is_paused(connection: Redis, name: str) -> bool:
    return bool(connection.hexists(PAUSED_KEY, name))
