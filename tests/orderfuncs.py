"""Job functions for ordering, limit and priority tests: they record what ran, and when
runs overlapped, in Redis, where the test reads it back."""

from __future__ import annotations

import os
import time

from django.conf import settings
from redis import Redis

# Raise a counter and remember its highest value, in one step.
_ENTER = """
local n = redis.call('INCR', KEYS[1])
local top = tonumber(redis.call('GET', KEYS[2]) or '0')
if n > top then redis.call('SET', KEYS[2], n) end
return n
"""


def _redis() -> Redis:
    return Redis.from_url(settings.REDIS_URL)


def _enter(r: Redis, name: str) -> None:
    r.eval(_ENTER, 2, f"test:running:{name}", f"test:max:{name}")


def step(key: str, seq: int, seconds: float = 0.0) -> int:
    """One step of an ordered sequence: records its position and any overlap, per key and overall."""
    r = _redis()
    _enter(r, key)
    _enter(r, "all")
    try:
        r.rpush(f"test:order:{key}", seq)
        if seconds:
            time.sleep(seconds)
    finally:
        r.decr(f"test:running:{key}")
        r.decr("test:running:all")
    return seq


def hang_once(key: str, seq: int, seconds: float = 60) -> int:
    """First call publishes its pid and hangs (to be killed); later calls run like ``step``."""
    r = _redis()
    if r.incr(f"test:calls:{key}:{seq}") == 1:
        r.set(f"test:pid:{key}:{seq}", os.getpid())
        time.sleep(seconds)
    return step(key, seq)


def fail_step(key: str, seq: int) -> None:
    """Records its attempt in the key's order list, then fails."""
    r = _redis()
    r.rpush(f"test:order:{key}", f"{seq}!")
    raise RuntimeError(f"step {seq} of {key} failed")


def fail_once_step(key: str, seq: int) -> int:
    """Fails its first call (recorded as "N!"), then runs like ``step``."""
    r = _redis()
    if r.incr(f"test:calls:{key}:{seq}") == 1:
        r.rpush(f"test:order:{key}", f"{seq}!")
        raise ConnectionError(f"transient failure of step {seq} of {key}")
    return step(key, seq)


def record(name: str, item: str) -> str:
    _redis().rpush(f"test:order:{name}", item)
    return item
