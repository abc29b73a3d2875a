"""Job functions the benchmarks enqueue (importable by worker processes)."""

from __future__ import annotations

import time

from django.conf import settings
from redis import Redis

_redis: Redis | None = None


def noop() -> None:
    return None


def step(key: str, seq: int, work: float = 0.0) -> None:
    """Append ``seq`` to the key's list: the order jobs of one key really ran in."""
    global _redis
    if _redis is None:
        _redis = Redis.from_url(settings.REDIS_URL)
    if work:
        time.sleep(work)
    with _redis.pipeline() as pipe:
        pipe.rpush(f"bench:order:{key}", seq)
        pipe.incr("bench:done")
        pipe.execute()
