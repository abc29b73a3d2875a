"""Operator actions on the stream entries the recorder set aside: delete one, delete all."""

from __future__ import annotations

from ..recording.unapplied import ref_of
from ..redis import UNAPPLIED_KEY
from ..redis import connection as redis_connection

_CHUNK = 200


def unapplied_delete(*, ref: str) -> bool:
    """Delete the set-aside entry named ``ref`` (``UnappliedEvent.ref``); False if it is gone."""
    connection = redis_connection()
    start = 0
    while chunk := connection.lrange(UNAPPLIED_KEY, start, start + _CHUNK - 1):
        for raw in chunk:
            if ref_of(raw) == ref:
                # By value: entries pushed or deleted meanwhile cannot make it the wrong one.
                return bool(connection.lrem(UNAPPLIED_KEY, 1, raw))
        start += _CHUNK
    return False


def unapplied_delete_all() -> int:
    """Delete every set-aside entry; returns how many there were."""
    with redis_connection().pipeline(transaction=True) as pipe:
        pipe.llen(UNAPPLIED_KEY)
        pipe.delete(UNAPPLIED_KEY)
        count, _ = pipe.execute()
    return int(count)
