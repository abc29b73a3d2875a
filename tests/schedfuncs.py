"""Schedulable job functions for schedule tests (registered when this module is imported)."""

from __future__ import annotations

from django.conf import settings
from redis import Redis

from workers.registry import schedulable


@schedulable
def tick(label: str = "tick") -> str:
    Redis.from_url(settings.REDIS_URL).rpush("test:ticks", label)
    return label


@schedulable
def report(*args: object, **kwargs: object) -> str:
    return f"{args!r} {kwargs!r}"
