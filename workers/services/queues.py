"""Operator actions on queues: pause and resume (workers/rq/pausing.py)."""

from __future__ import annotations

from django.utils import timezone

from .. import conf
from ..reads.live import queue_names
from ..redis import PAUSED_KEY
from ..redis import connection as redis_connection
from .jobs import JobActionError


class QueueNotFound(JobActionError):
    pass


def _known_queue(name: str) -> str:
    if conf.queue_is_configured(name) or name in queue_names():
        return name
    raise QueueNotFound(f"no queue named {str(name)[:100]!r}")


def queue_pause(*, name: str) -> bool:
    """Stop jobsite workers taking jobs from ``name``; its jobs wait. True if newly paused."""
    _known_queue(name)
    return bool(redis_connection().hsetnx(PAUSED_KEY, name, timezone.now().timestamp()))


def queue_resume(*, name: str) -> bool:
    """Let workers take jobs from ``name`` again. True if it was paused."""
    _known_queue(name)
    return bool(redis_connection().hdel(PAUSED_KEY, name))
