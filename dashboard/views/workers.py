"""``/dashboard/workers/``: the workers RQ knows, live from Redis."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from workers.reads import live as live_reads

from ..access import viewer_required
from ..htmx import HtmxHttpRequest, partial_name


@require_GET
@viewer_required
def workers(request: HtmxHttpRequest) -> HttpResponse:
    context = {"workers": live_reads.worker_list()}
    return render(request, partial_name(request, "dashboard/workers.html", "worker-table"), context)
