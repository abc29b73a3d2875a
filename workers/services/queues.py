"""Operator actions on queues: pause and resume (workers/rq/pausing.py)."""

from __future__ import annotations

from contextlib import AbstractContextManager

from django.utils import timezone

from .. import conf
from ..models import AuditAction
from ..reads.live import queue_names
from ..redis import PAUSED_KEY
from ..redis import connection as redis_connection
from .audit import Actor, AuditNote, audited
from .jobs import JobActionError


class QueueNotFound(JobActionError):
    pass


def _known_queue(name: str) -> str:
    if conf.queue_is_configured(name) or name in queue_names():
        return name
    raise QueueNotFound(f"no queue named {str(name)[:100]!r}")


def _audited_queue(actor: Actor, action: AuditAction, name: str) -> AbstractContextManager[AuditNote]:
    return audited(actor=actor, action=action, target_kind="queue", target_id=name, refusals=(JobActionError,))


def queue_pause(*, name: str, actor: Actor) -> bool:
    """Stop jobsite workers taking jobs from ``name``; its jobs wait. True if newly paused."""
    with _audited_queue(actor, AuditAction.QUEUE_PAUSE, name) as note:
        _known_queue(name)
        changed = bool(redis_connection().hsetnx(PAUSED_KEY, name, timezone.now().timestamp()))
        note.detail = "paused" if changed else "was already paused"
    return changed


def queue_resume(*, name: str, actor: Actor) -> bool:
    """Let workers take jobs from ``name`` again. True if it was paused."""
    with _audited_queue(actor, AuditAction.QUEUE_RESUME, name) as note:
        _known_queue(name)
        changed = bool(redis_connection().hdel(PAUSED_KEY, name))
        note.detail = "resumed" if changed else "was not paused"
    return changed
