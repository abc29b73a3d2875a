from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet
from django.utils import timezone

from .models import Alert


def alert_list(*, open_only: bool = False, limit: int = 200) -> QuerySet[Alert]:
    """Newest incidents first; the open ones only when asked."""
    alerts = Alert.objects.order_by("-opened_at", "-id")
    if open_only:
        alerts = alerts.filter(resolved_at__isnull=True)
    return alerts[:limit]


@dataclass(frozen=True)
class AlertsInSight:
    """What every dashboard page shows of the alerts: how many incidents are open, and the
    ones nobody has acknowledged or muted (the banner)."""

    firing: int
    unattended: list[Alert]


def alerts_in_sight_get(*, now: datetime | None = None) -> AlertsInSight:
    now = now or timezone.now()
    open_alerts = list(Alert.objects.filter(resolved_at__isnull=True).order_by("-opened_at", "-id")[:100])
    unattended = [a for a in open_alerts if a.acknowledged_at is None and not (a.muted_until and a.muted_until > now)]
    return AlertsInSight(firing=len(open_alerts), unattended=unattended)
