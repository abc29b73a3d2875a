"""Operator actions on the stream entries the recorder set aside: delete one, delete all.
Both are audited."""

from __future__ import annotations

from ..models import AuditAction
from ..recording.unapplied import ref_of
from ..redis import UNAPPLIED_KEY
from ..redis import connection as redis_connection
from .audit import Actor, audited

_CHUNK = 200


def unapplied_delete(*, ref: str, actor: Actor) -> bool:
    """Delete the set-aside entry named ``ref`` (``UnappliedEvent.ref``); False if it is gone."""
    with audited(actor=actor, action=AuditAction.UNAPPLIED_DELETE, target_kind="event", target_id=ref) as note:
        note.count = 0
        note.detail = "no such entry (deleted meanwhile?)"
        connection = redis_connection()
        start = 0
        while chunk := connection.lrange(UNAPPLIED_KEY, start, start + _CHUNK - 1):
            for raw in chunk:
                if ref_of(raw) == ref:
                    # By value: entries pushed or deleted meanwhile cannot make it the wrong one.
                    note.count = int(connection.lrem(UNAPPLIED_KEY, 1, raw))
                    note.detail = "" if note.count else note.detail
                    return bool(note.count)
            start += _CHUNK
    return False


def unapplied_delete_all(*, actor: Actor) -> int:
    """Delete every set-aside entry; returns how many there were."""
    with audited(actor=actor, action=AuditAction.UNAPPLIED_DELETE, target_kind="event", target_id="all") as note:
        with redis_connection().pipeline(transaction=True) as pipe:
            pipe.llen(UNAPPLIED_KEY)
            pipe.delete(UNAPPLIED_KEY)
            count, _ = pipe.execute()
        note.count = int(count)
    return int(count)
