"""Stream entries the recorder set aside (``recording/unapplied.py``), for the dashboard
and ``/metrics``: how many, and the newest with their reasons."""

from __future__ import annotations

from dataclasses import dataclass

from ..recording.unapplied import UnappliedEvent, set_aside_parse
from ..redis import HELD_KEY, UNAPPLIED_KEY
from ..redis import connection as redis_connection

# Characters of one field value a page shows (the list keeps up to events.max_event_bytes()).
VALUE_SHOWN = 20_000


@dataclass(frozen=True)
class UnappliedPage:
    events: list[UnappliedEvent]  # newest first
    total: int  # set aside in all
    held: int  # valid events waiting a while for their job's record


def unapplied_count() -> int:
    """How many stream entries are set aside now."""
    return int(redis_connection().llen(UNAPPLIED_KEY))


def unapplied_list(*, limit: int = 50) -> UnappliedPage:
    """The newest ``limit`` entries set aside, newest first, with the counts."""
    connection = redis_connection()
    with connection.pipeline(transaction=True) as pipe:
        pipe.lrange(UNAPPLIED_KEY, -limit, -1)
        pipe.llen(UNAPPLIED_KEY)
        pipe.zcard(HELD_KEY)
        newest, total, held = pipe.execute()
    shown = [set_aside_parse(raw, value_limit=VALUE_SHOWN) for raw in reversed(newest)]
    return UnappliedPage(events=shown, total=total, held=held)
