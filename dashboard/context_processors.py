from __future__ import annotations

from django.http import HttpRequest

from .access import can_operate


def access(request: HttpRequest) -> dict[str, bool]:
    """``can_operate`` for templates: hide action buttons from read-only viewers."""
    user = getattr(request, "user", None)
    return {"can_operate": bool(user is not None and user.is_authenticated and can_operate(user))}
