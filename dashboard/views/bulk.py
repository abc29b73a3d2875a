"""A bulk operation's progress panel (polled on the list pages) and its Cancel."""

from __future__ import annotations

from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from workers.reads import bulk as bulk_reads
from workers.services import bulk as bulk_services
from workers.services.audit import Actor

from ..access import operator_required, viewer_required
from ..htmx import HtmxHttpRequest, action_answer


@require_GET
@viewer_required
def bulk_operation(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    operation = bulk_reads.bulk_operation_get(operation_id=pk)
    if operation is None:
        raise Http404("no such bulk operation")
    html = render(request, "dashboard/_bulk_operation.html", {"operation": operation}).content
    # Ended: answer 286 so htmx stops polling the panel.
    return HttpResponse(html) if operation.is_active else HttpResponseStopPolling(html)


@require_POST
@operator_required
def bulk_operation_cancel(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    if bulk_reads.bulk_operation_get(operation_id=pk) is None:
        raise Http404("no such bulk operation")
    ok, text = True, "Canceled: it stops after the batch under way."
    try:
        bulk_services.bulk_operation_cancel(operation_id=pk, actor=Actor.from_request(request))
    except bulk_services.BulkOperationError as exc:
        ok, text = False, str(exc)
    operation = bulk_reads.bulk_operation_get(operation_id=pk)
    return action_answer(
        request,
        ok=ok,
        text=text,
        url=reverse("dashboard:dead_letters" if operation and operation.filters.get("status") else "dashboard:jobs"),
        partial="dashboard/_bulk_operation.html",
        context=lambda: {"operation": operation},
    )
