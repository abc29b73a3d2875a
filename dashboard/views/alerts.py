"""``/dashboard/alerts/``: incidents (open or all) and the configured rules; acknowledge or
mute an incident (from this page or the banner every page shows while one fires)."""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from alerts import services as alert_services
from alerts.rules import configured_rules
from alerts.selectors import alert_list
from workers.services.audit import Actor

from ..access import operator_required, viewer_required
from ..htmx import HtmxHttpRequest, action_answer, partial_name

BANNER = "dashboard/_alert_banner.html"


def _alerts_context(open_only: bool) -> dict[str, Any]:
    return {
        "alerts": alert_list(open_only=open_only),
        "open_only": open_only,
        "rules": configured_rules(),
        "mute_choices": alert_services.MUTE_CHOICES,
    }


@require_GET
@viewer_required
def alerts(request: HtmxHttpRequest) -> HttpResponse:
    context = _alerts_context(request.GET.get("open") == "1")
    return render(request, partial_name(request, "dashboard/alerts.html", "alert-table"), context)


@require_GET
@viewer_required
def alerts_banner(request: HtmxHttpRequest) -> HttpResponse:
    """The banner alone: every page polls it, so an incident shows without a reload."""
    return render(request, BANNER)


def _alert_action(request: HtmxHttpRequest, pk: int, act: Any) -> HttpResponse:
    try:
        ok, text = True, act()
    except alert_services.AlertNotFound as exc:
        raise Http404(str(exc)) from exc
    except alert_services.AlertActionError as exc:
        ok, text = False, str(exc)
    # Answer the part of the page the button was in: the banner, or the incidents table.
    from_banner = request.POST.get("from") == "banner"
    return action_answer(
        request,
        ok=ok,
        text=text,
        url=reverse("dashboard:alerts"),
        partial=BANNER if from_banner else "dashboard/alerts.html#alert-table",
        context=(lambda: {}) if from_banner else (lambda: _alerts_context(False)),
    )


@require_POST
@operator_required
def alert_acknowledge(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    def act() -> str:
        alert = alert_services.alert_acknowledge(alert_id=pk, actor=Actor.from_request(request))
        return f"{alert}: acknowledged by {alert.acknowledged_by}."

    return _alert_action(request, pk, act)


@require_POST
@operator_required
def alert_mute(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    posted = request.POST.get("minutes", "")
    # A length the page does not offer is refused (and audited) by the service.
    minutes = int(posted) if posted.isdigit() and len(posted) < 6 else 0

    def act() -> str:
        alert = alert_services.alert_mute(alert_id=pk, actor=Actor.from_request(request), minutes=minutes)
        return f"{alert}: muted until {alert.muted_until:%H:%M %Z}."

    return _alert_action(request, pk, act)
