"""The audit trail: who did what to which jobs, queues, schedules and alerts, and how it went.

Every service an operator triggers takes an ``actor`` (an ``Actor``, built from the request
by the view or the admin: never the request itself) and writes one ``AuditEntry`` through
``audited`` in the transaction of its effect. An action that is refused or fails rolls its
effect back and is written on its own, with the reason.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError, transaction
from django.utils import timezone

from ..conf import setting
from ..events import storable
from ..models import AuditAction, AuditEntry, AuditOutcome

log = logging.getLogger(__name__)

DETAIL_LIMIT = 2000


@dataclass(frozen=True)
class Actor:
    """Who acts, and from which address: what the audit trail keeps of a request."""

    username: str
    user_id: int | None = None
    address: str | None = None

    @classmethod
    def from_request(cls, request: Any) -> Actor:
        """The signed-in user of a Django request and the client's address."""
        address = client_address(request.META)
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return cls(username="anonymous", address=address)
        return cls(username=user.get_username(), user_id=user.pk, address=address)

    @classmethod
    def system(cls, name: str = "system") -> Actor:
        """Not a person: a command or a scheduled job acting on its own."""
        return cls(username=name)


def _ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


def client_address(meta: dict[str, Any]) -> str | None:
    """REMOTE_ADDR; with JOBSITE["TRUSTED_PROXY_COUNT"] = n > 0, the address the n-th
    proxy from this server saw (X-Forwarded-For's n-th entry from the right), since every
    entry left of what our own proxies appended may be written by the client."""
    remote = _ip(str(meta.get("REMOTE_ADDR") or ""))
    proxies = int(setting("TRUSTED_PROXY_COUNT") or 0)
    forwarded = [part for part in str(meta.get("HTTP_X_FORWARDED_FOR") or "").split(",") if part.strip()]
    if proxies <= 0 or not forwarded:
        return remote
    return _ip(forwarded[-min(proxies, len(forwarded))]) or remote


@dataclass
class AuditNote:
    """What ``audited`` writes; the service fills in what it learns while it acts."""

    actor: Actor
    action: str
    target_kind: str
    target_id: str = ""
    filters: dict[str, Any] = field(default_factory=dict)
    count: int = 1
    outcome: str = AuditOutcome.OK
    detail: str = ""
    parent: AuditEntry | None = None
    at: datetime | None = None

    def write(self) -> AuditEntry:
        return AuditEntry.objects.create(
            at=self.at or timezone.now(),
            # What a database can store, whatever was posted (PostgreSQL refuses NUL).
            actor=storable(self.actor.username)[:150],
            actor_id=self.actor.user_id,
            client_address=self.actor.address,
            action=self.action,
            target_kind=self.target_kind,
            target_id=storable(self.target_id)[:128],
            filters=self.filters,
            count=self.count,
            outcome=self.outcome,
            detail=storable(self.detail)[:DETAIL_LIMIT],
            parent=self.parent,
        )


@contextmanager
def audited(
    *,
    actor: Actor,
    action: str,
    target_kind: str,
    target_id: object = "",
    refusals: tuple[type[Exception], ...] = (),
    parent: AuditEntry | None = None,
) -> Iterator[AuditNote]:
    """Run the body in a transaction that also writes its audit entry.

    An exception in the body rolls the effect back; the entry is then written on its own,
    ``refused`` (one of ``refusals``: the message says why) or ``failed``, and the
    exception goes on to the caller.
    """
    # Stamped when the action begins: before anything it causes (a canceled job's record
    # says when RQ canceled it, a moment later).
    note = AuditNote(
        actor=actor,
        action=action,
        target_kind=target_kind,
        target_id=str(target_id),
        parent=parent,
        at=timezone.now(),
    )
    try:
        with transaction.atomic():
            yield note
            note.write()
    except Exception as exc:
        note.outcome = AuditOutcome.REFUSED if isinstance(exc, refusals) else AuditOutcome.FAILED
        note.count = 0
        note.detail = str(exc) if isinstance(exc, refusals) else f"{type(exc).__name__}: {exc}"
        _write_alone(note)
        raise


def _write_alone(note: AuditNote) -> AuditEntry | None:
    """Write ``note`` in a transaction of its own; a database that is away is logged, so
    that the action's own error (likely the same outage) is what the caller sees."""
    try:
        with transaction.atomic():
            return note.write()
    except DatabaseError:
        log.exception("audit: could not write %s by %s on %s", note.action, note.actor.username, note.target_id)
        return None


@dataclass
class BulkAudit:
    """A bulk action's entry: written before its jobs (each job's own entry points at it,
    committed with that job's effect) and completed with what was done."""

    entry: AuditEntry

    def complete(self, *, count: int, outcome: str, detail: str) -> None:
        detail = storable(detail)[:DETAIL_LIMIT]
        AuditEntry.objects.filter(pk=self.entry.pk).update(count=count, outcome=outcome, detail=detail)


def bulk_audit_start(*, actor: Actor, action: AuditAction, filters: dict[str, Any] | None) -> BulkAudit:
    note = AuditNote(
        actor=actor,
        action=action,
        target_kind="job",
        filters=dict(filters or {}),
        count=0,
        outcome=AuditOutcome.INCOMPLETE,
    )
    return BulkAudit(entry=note.write())


def bulk_audit_refused(*, actor: Actor, action: AuditAction, filters: dict[str, Any] | None, detail: str) -> None:
    """A bulk action refused before it touched any job."""
    _write_alone(
        AuditNote(
            actor=actor,
            action=action,
            target_kind="job",
            filters=dict(filters or {}),
            count=0,
            outcome=AuditOutcome.REFUSED,
            detail=detail,
        )
    )


def audit_prune(*, older_than: timedelta, now: datetime | None = None, batch_size: int = 5000) -> int:
    """Delete entries older than ``now - older_than`` (a bulk action with its jobs' entries);
    returns how many went."""
    cutoff = (now or timezone.now()) - older_than
    old = AuditEntry.objects.filter(at__lt=cutoff, parent__isnull=True)
    deleted = 0
    while ids := list(old.order_by("pk").values_list("pk", flat=True)[:batch_size]):
        deleted += AuditEntry.objects.filter(pk__in=ids).delete()[0]
    return deleted
