"""Who may see the dashboard and who may act on it.

- Viewers: any active staff user. Pages and polled fragments use ``viewer_required``.
- Operators: staff with the ``workers.operate_jobs`` permission (superusers have it; the
  "Dashboard operators" group grants it). Every POST action uses ``operator_required``;
  staff without it (e.g. the "Dashboard viewers" group) can look but get 403 on actions.
Anonymous and non-staff users are sent to the login page (``settings.LOGIN_URL``: the
dashboard's own, ``/login/``), as Django's admin does.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import user_passes_test
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

OPERATE_PERMISSION = "workers.operate_jobs"
VIEWERS_GROUP = "Dashboard viewers"
OPERATORS_GROUP = "Dashboard operators"

View = Callable[..., HttpResponse]


def can_operate(user: Any) -> bool:
    return bool(user.is_active and user.is_staff and user.has_perm(OPERATE_PERMISSION))


def _staff_only(view: View) -> View:
    # What the admin's staff_member_required checks, sending others to settings.LOGIN_URL
    # (read per request) rather than to the admin's own login page.
    return user_passes_test(lambda user: user.is_active and user.is_staff)(view)


def viewer_required(view: View) -> View:
    """Staff only; others go to the login page."""
    return _staff_only(view)


def operator_required(view: View) -> View:
    """Staff with ``workers.operate_jobs``; staff without it get 403, others the login page."""

    @wraps(view)
    def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not can_operate(request.user):
            raise PermissionDenied("Your account can view the dashboard but not act on jobs.")
        return view(request, *args, **kwargs)

    return _staff_only(checked)
