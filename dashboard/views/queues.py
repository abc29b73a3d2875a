"""``/dashboard/queues/``: every queue with its figures; ``/dashboard/queues/<name>/``: one
queue's counts, RQ registries and recent jobs; pause and resume it."""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from workers.reads import jobs as job_reads
from workers.reads import live as live_reads
from workers.reads import queues as queue_reads
from workers.services import queues as queue_services
from workers.services.audit import Actor

from ..access import operator_required, viewer_required
from ..htmx import HtmxHttpRequest, action_answer, partial_name


@require_GET
@viewer_required
def queues(request: HtmxHttpRequest) -> HttpResponse:
    """Every queue RQ knows (the configured ones first) with its live and rolled-up figures."""
    context = {"queues": queue_reads.queue_stats_get(names=live_reads.queue_names())}
    return render(request, partial_name(request, "dashboard/queues.html", "queues-panel"), context)


def _queue_context(name: str) -> dict[str, Any]:
    names = live_reads.queue_names()
    if name not in names:
        raise Http404(f"no queue named {name!r}")
    return {
        "queue": queue_reads.queue_stats_get(names=[name])[0],
        "queue_names": names,
        "registries": live_reads.queue_registries_get(name=name),
        "recent_page": job_reads.job_list(filters=job_reads.JobFilter(queue=name), limit=20),
    }


@require_GET
@viewer_required
def queue_detail(request: HtmxHttpRequest, name: str) -> HttpResponse:
    return render(request, partial_name(request, "dashboard/queue.html", "queue-panel"), _queue_context(name))


def _queue_action(request: HtmxHttpRequest, name: str, *, pause: bool) -> HttpResponse:
    try:
        act = queue_services.queue_pause if pause else queue_services.queue_resume
        changed = act(name=name, actor=Actor.from_request(request))
    except queue_services.QueueNotFound as exc:
        raise Http404(str(exc)) from exc
    if pause:
        text = "Paused: workers leave its jobs waiting." if changed else "The queue was already paused."
    else:
        text = "Resumed: workers take its jobs again." if changed else "The queue was not paused."
    return action_answer(
        request,
        ok=True,
        text=text,
        url=reverse("dashboard:queue_detail", args=[name]),
        partial="dashboard/queue.html#queue-panel",
        context=lambda: _queue_context(name),
    )


@require_POST
@operator_required
def queue_pause(request: HtmxHttpRequest, name: str) -> HttpResponse:
    return _queue_action(request, name, pause=True)


@require_POST
@operator_required
def queue_resume(request: HtmxHttpRequest, name: str) -> HttpResponse:
    return _queue_action(request, name, pause=False)
