"""``/dashboard/jobs/<job_id>/``: one job's details, timeline, errors and logs, live while it
runs; and the actions on it (retry, retry now, cancel or stop, run again)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from workers.models import JobStatus
from workers.reads import jobs as job_reads
from workers.services import jobs as job_services
from workers.services.audit import Actor

from ..access import operator_required, viewer_required
from ..htmx import HtmxHttpRequest, action_answer


def _job_context(job_id: str) -> dict[str, Any]:
    record = job_reads.job_get(job_id=job_id)
    if record is None:
        raise Http404(f"no job with id {job_id!r}")
    errors = job_reads.job_errors(job_id=job_id)
    return {
        "job": record,
        "settled": job_reads.job_is_settled(record=record),
        "errors": errors,
        "attempt_text": job_reads.job_attempt_text(record=record),
        "timeline": job_reads.job_timeline_get(record=record, errors=errors),
        "log_lines": job_reads.job_log_lines(job_id=job_id),
    }


@require_GET
@viewer_required
def job_detail(request: HtmxHttpRequest, job_id: str) -> HttpResponse:
    context = _job_context(job_id)
    if not request.htmx:
        return render(request, "dashboard/job_detail.html", context)
    # The polled live panel: once the job has ended, answer 286 so htmx stops polling.
    html = render_to_string("dashboard/job_detail.html#job-live", context, request=request)
    if context["settled"]:
        return HttpResponseStopPolling(html)
    return HttpResponse(html)


def _job_action(request: HtmxHttpRequest, job_id: str, act: Callable[[], str]) -> HttpResponse:
    try:
        ok, text = True, act()
    except job_services.JobNotFound as exc:
        raise Http404(str(exc)) from exc
    except job_services.JobActionError as exc:
        ok, text = False, str(exc)
    return action_answer(
        request,
        ok=ok,
        text=text,
        url=reverse("dashboard:job_detail", args=[job_id]),
        partial="dashboard/job_detail.html#job-live",
        context=lambda: _job_context(job_id),
    )


@require_POST
@operator_required
def job_retry(request: HtmxHttpRequest, job_id: str) -> HttpResponse:
    def act() -> str:
        job_services.job_retry(job_id=job_id, actor=Actor.from_request(request))
        return "Retried: the job is queued for another attempt."

    return _job_action(request, job_id, act)


@require_POST
@operator_required
def job_retry_now(request: HtmxHttpRequest, job_id: str) -> HttpResponse:
    """A job waiting for its backoff runs its next attempt now."""

    def act() -> str:
        job_services.job_retry_now(job_id=job_id, actor=Actor.from_request(request))
        return "Queued now: the next attempt runs without waiting for the backoff."

    return _job_action(request, job_id, act)


@require_POST
@operator_required
def job_cancel(request: HtmxHttpRequest, job_id: str) -> HttpResponse:
    def act() -> str:
        record = job_services.job_cancel(job_id=job_id, actor=Actor.from_request(request))
        if record.status == JobStatus.STARTED:
            return "Stop requested: the worker is terminating the job."
        return "Canceled: the job will not run."

    return _job_action(request, job_id, act)


@require_POST
@operator_required
def job_run_again(request: HtmxHttpRequest, job_id: str) -> HttpResponse:
    def act() -> str:
        new_id = job_services.job_run_again(job_id=job_id, actor=Actor.from_request(request))
        return f"Enqueued a copy of this job as {new_id}."

    return _job_action(request, job_id, act)
