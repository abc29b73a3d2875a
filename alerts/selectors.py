from __future__ import annotations

from django.db.models import QuerySet

from .models import Alert


def alert_list(*, open_only: bool = False, limit: int = 200) -> QuerySet[Alert]:
    """Newest incidents first; the open ones only when asked."""
    alerts = Alert.objects.order_by("-opened_at", "-id")
    if open_only:
        alerts = alerts.filter(resolved_at__isnull=True)
    return alerts[:limit]
