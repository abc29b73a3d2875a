"""Reads of bulk operations: what the list pages show as progress bars."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from ..models import BulkOperation


def bulk_operation_get(*, operation_id: int) -> BulkOperation | None:
    return BulkOperation.objects.select_related("audit").filter(pk=operation_id).first()


def bulk_operations_shown(*, status: str = "", recent: timedelta = timedelta(minutes=10)) -> list[BulkOperation]:
    """Operations a list page shows: those under way, and those that ended in the last
    ``recent`` (their result stays in sight a while). ``status``: only the operations
    started on that list (``dead`` for the dead-letter page, "" for the job list)."""
    since = timezone.now() - recent
    ops = BulkOperation.objects.filter(
        Q(state__in=[BulkOperation.State.QUEUED, BulkOperation.State.RUNNING]) | Q(finished_at__gte=since)
    )
    ops = ops.filter(filters__status=status) if status else ops.exclude(filters__has_key="status")
    return list(ops.order_by("-created_at", "-id")[:5])
