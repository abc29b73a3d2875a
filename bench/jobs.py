"""Job functions the benchmarks enqueue (importable by worker processes)."""

from __future__ import annotations

import time

from django.conf import settings
from redis import Redis

_redis: Redis | None = None


def noop() -> None:
    return None


def step(key: str, seq: int, work: float = 0.0) -> None:
    """One job of a key: notes if another job of the same key runs at the same time, and
    appends ``seq`` to the key's list (the order the key's jobs really ran in)."""
    global _redis
    if _redis is None:
        _redis = Redis.from_url(settings.REDIS_URL)
    if _redis.incr(f"bench:running:{key}") > 1:
        _redis.incr("bench:overlaps")
    try:
        if work:
            time.sleep(work)
    finally:
        with _redis.pipeline() as pipe:
            pipe.decr(f"bench:running:{key}")
            pipe.rpush(f"bench:order:{key}", seq)
            pipe.incr("bench:done")
            pipe.execute()


def fail() -> None:
    raise RuntimeError("bench: this job fails on purpose")
