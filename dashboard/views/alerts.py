"""``/dashboard/alerts/``: incidents (open or all) and the configured rules."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from alerts.rules import configured_rules
from alerts.selectors import alert_list

from ..access import viewer_required


@require_GET
@viewer_required
def alerts(request: HttpRequest) -> HttpResponse:
    open_only = request.GET.get("open") == "1"
    return render(
        request,
        "dashboard/alerts.html",
        {"alerts": alert_list(open_only=open_only), "open_only": open_only, "rules": configured_rules()},
    )
