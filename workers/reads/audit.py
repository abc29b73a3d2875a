"""Reads of the audit trail: the filtered, keyset-paginated list of operator actions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import Q

from ..models import AuditEntry


@dataclass(frozen=True)
class AuditFilter:
    actor: str = ""
    action: str = ""
    # A job id, queue name, schedule or alert id: the actions on it, bulk ones included.
    target: str = ""
    since: datetime | None = None
    until: datetime | None = None
    # The per-job entries of one bulk action.
    bulk: int | None = None


@dataclass(frozen=True)
class AuditPage:
    items: list[AuditEntry]
    next_cursor: str | None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _encode_cursor(entry: AuditEntry) -> str:
    # Whole microseconds, not a float: the next page starts exactly after this entry.
    return f"{(entry.at - _EPOCH) // _MICROSECOND}_{entry.pk}"


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        stamp, pk = cursor.split("_", 1)
        return _EPOCH + int(stamp) * _MICROSECOND, int(pk)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"malformed page cursor {cursor[:40]!r}") from exc


def audit_list(*, filters: AuditFilter, cursor: str | None = None, limit: int = 50) -> AuditPage:
    """Newest first, keyset-paginated on (at, id). Without a target or a bulk action to look
    into, a bulk action is one row (its jobs' entries are one click away)."""
    qs = AuditEntry.objects.all()
    if filters.bulk is not None:
        qs = qs.filter(parent_id=filters.bulk)
    elif filters.target:
        qs = qs.filter(target_id=filters.target)
    else:
        qs = qs.filter(parent__isnull=True)
    if filters.actor:
        qs = qs.filter(actor=filters.actor)
    if filters.action:
        qs = qs.filter(action=filters.action)
    if filters.since:
        qs = qs.filter(at__gte=filters.since)
    if filters.until:
        qs = qs.filter(at__lt=filters.until)
    if cursor:
        moment, pk = _decode_cursor(cursor)
        qs = qs.filter(Q(at__lt=moment) | Q(at=moment, pk__lt=pk))
    rows = list(qs.order_by("-at", "-pk")[: limit + 1])
    next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return AuditPage(items=rows[:limit], next_cursor=next_cursor)
