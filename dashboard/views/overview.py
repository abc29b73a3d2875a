"""``/dashboard/``: per queue its live length and workers, throughput and failure rates."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from workers.reads import queues as queue_reads

from ..access import viewer_required
from ..charts import throughput_chart
from ..htmx import HtmxHttpRequest, partial_name


@require_GET
@viewer_required
def overview(request: HtmxHttpRequest) -> HttpResponse:
    overview = queue_reads.overview_get()
    context = {
        "overview": overview,
        "hour_chart": throughput_chart(overview.hour.series, title="Last hour, per minute", fmt="%H:%M"),
        "day_chart": throughput_chart(overview.day.series, title="Last 24 hours, per hour", fmt="%H:00"),
    }
    return render(request, partial_name(request, "dashboard/overview.html", "panels"), context)
