from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from alerts.selectors import alerts_in_sight_get

from .access import can_operate


def access(request: HttpRequest) -> dict[str, bool]:
    """``can_operate`` for templates: hide action buttons from read-only viewers."""
    user = getattr(request, "user", None)
    return {"can_operate": bool(user is not None and user.is_authenticated and can_operate(user))}


def alerts(request: HttpRequest) -> dict[str, Any]:
    """``alerts_in_sight`` for the banner every dashboard page shows while an incident
    fires; read only when a template shows it."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.is_staff:
        return {}
    return {"alerts_in_sight": SimpleLazyObject(alerts_in_sight_get)}
