"""One Redis connection pool per process for the examples' hot paths (a visit, a fault check)."""

from __future__ import annotations

import functools

from django.conf import settings
from redis import Redis


@functools.cache
def _redis_for(url: str) -> Redis:
    # redis-py's pool notices a fork and reconnects in the child, so caching is fork-safe.
    return Redis.from_url(url, socket_timeout=30, socket_connect_timeout=5, health_check_interval=30)


def get_redis() -> Redis:
    return _redis_for(settings.REDIS_URL)
