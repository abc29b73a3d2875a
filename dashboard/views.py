"""The operator's pages and actions: parse, call one selector or service, render.

Pages answer their live part (a django-template-partials partial) to htmx requests, so
the same URL serves the page and its polled fragment. Actions are POSTs that answer the
refreshed fragment to htmx and a redirect (with a message) to everyone else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import connection
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponsePermanentRedirect,
    HttpResponseRedirect,
    JsonResponse,
)
from django.shortcuts import render
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from workers import selectors, services
from workers.models import JobStatus
from workers.tracking import redis_connection

from .access import operator_required, viewer_required
from .charts import throughput_chart
from .forms import BulkActionForm, JobFilterForm
from .htmx import HtmxHttpRequest, action_answer, partial_name

PAGE_SIZE = 50


# --- overview ---------------------------------------------------------------------------


@require_GET
@viewer_required
def overview(request: HtmxHttpRequest) -> HttpResponse:
    overview = selectors.overview_get()
    context = {
        "overview": overview,
        "hour_chart": throughput_chart(overview.hour.series, title="Last hour, per minute", fmt="%H:%M"),
        "day_chart": throughput_chart(overview.day.series, title="Last 24 hours, per hour", fmt="%H:00"),
    }
    return render(request, partial_name(request, "dashboard/overview.html", "panels"), context)


# --- jobs -------------------------------------------------------------------------------


def _job_list_context(request: HtmxHttpRequest, params: Any, *, fixed_status: str = "") -> dict[str, Any]:
    form = JobFilterForm(params, fixed_status=fixed_status)
    page, errors = None, []
    if form.is_valid():
        try:
            page = selectors.job_list(
                filters=form.to_filter(), cursor=form.cleaned_data.get("cursor") or None, limit=PAGE_SIZE
            )
        except ValueError as exc:  # a cursor that parses but points nowhere sensible
            errors.append(str(exc))
    else:
        errors = form.error_messages()
    return {
        "form": form,
        "page": page,
        "filter_errors": errors,
        "filter_query": form.query_string(),
        "is_first_page": not (form.is_valid() and form.cleaned_data.get("cursor")),
    }


@require_GET
@viewer_required
def jobs(request: HtmxHttpRequest) -> HttpResponse:
    context = _job_list_context(request, request.GET)
    context["functions"] = selectors.function_names()
    return render(request, partial_name(request, "dashboard/jobs.html", "job-table"), context)


def _bulk(request: HtmxHttpRequest, *, dead_letters: bool) -> HttpResponse:
    form = BulkActionForm(request.POST)
    filter_form = JobFilterForm(request.POST, fixed_status=JobStatus.DEAD if dead_letters else "")
    ok, text = False, ""
    if not form.is_valid():
        text = " ".join(str(m) for errs in form.errors.values() for m in errs)
    elif form.cleaned_data["all"] and not filter_form.is_valid():
        text = "The filter is not valid: " + " ".join(filter_form.error_messages())
    else:
        job_ids = form.job_ids
        if form.cleaned_data["all"]:
            job_ids = selectors.job_ids_get(filters=filter_form.to_filter(), limit=services.BULK_LIMIT + 1)
        if form.cleaned_data["action"] == "retry":
            outcome = services.job_retry_many(job_ids=job_ids)
            text = outcome.summary("Retried")
        else:
            outcome = services.dead_letter_discard_many(job_ids=job_ids)
            text = outcome.summary("Discarded")
        ok = bool(outcome.done) or not outcome.skipped
    query = filter_form.query_string() if filter_form.is_valid() else ""

    def context() -> dict[str, Any]:
        params = request.POST.copy()
        params.pop("cursor", None)
        refreshed = _job_list_context(request, params, fixed_status=JobStatus.DEAD if dead_letters else "")
        if dead_letters:
            refreshed["groups"] = selectors.dead_letter_groups()
        return refreshed

    return action_answer(
        request,
        ok=ok,
        text=text,
        url=reverse("dashboard:dead_letters" if dead_letters else "dashboard:jobs") + (f"?{query}" if query else ""),
        partial="dashboard/dead_letters.html#dead-letters" if dead_letters else "dashboard/jobs.html#job-table",
        context=context,
    )


@require_POST
@operator_required
def jobs_bulk(request: HtmxHttpRequest) -> HttpResponse:
    return _bulk(request, dead_letters=False)


# --- one job ----------------------------------------------------------------------------


def _job_context(job_id: str) -> dict[str, Any]:
    record = selectors.job_get(job_id=job_id)
    if record is None:
        raise Http404(f"no job with id {job_id!r}")
    errors = selectors.job_errors(job_id=job_id)
    return {
        "job": record,
        "settled": selectors.job_is_settled(record=record),
        "errors": errors,
        "timeline": selectors.job_timeline_get(record=record, errors=errors),
        "log_lines": selectors.job_log_lines(job_id=job_id),
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
    except services.JobNotFound as exc:
        raise Http404(str(exc)) from exc
    except services.JobActionError as exc:
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
        services.job_retry(job_id=job_id)
        return "Retried: the job is queued for another attempt."

    return _job_action(request, job_id, act)


@require_POST
@operator_required
def job_cancel(request: HtmxHttpRequest, job_id: str) -> HttpResponse:
    def act() -> str:
        record = services.job_cancel(job_id=job_id)
        if record.status == JobStatus.STARTED:
            return "Stop requested: the worker is terminating the job."
        return "Canceled: the job will not run."

    return _job_action(request, job_id, act)


@require_POST
@operator_required
def job_run_again(request: HtmxHttpRequest, job_id: str) -> HttpResponse:
    def act() -> str:
        new_id = services.job_run_again(job_id=job_id)
        return f"Enqueued a copy of this job as {new_id}."

    return _job_action(request, job_id, act)


# --- dead letters -----------------------------------------------------------------------


@require_GET
@viewer_required
def dead_letters(request: HtmxHttpRequest) -> HttpResponse:
    context = _job_list_context(request, request.GET, fixed_status=JobStatus.DEAD)
    context["groups"] = selectors.dead_letter_groups()
    return render(request, partial_name(request, "dashboard/dead_letters.html", "dead-letters"), context)


@require_POST
@operator_required
def dead_letters_bulk(request: HtmxHttpRequest) -> HttpResponse:
    return _bulk(request, dead_letters=True)


# --- workers and queues -----------------------------------------------------------------


@require_GET
@viewer_required
def workers(request: HtmxHttpRequest) -> HttpResponse:
    context = {"workers": selectors.worker_list()}
    return render(request, partial_name(request, "dashboard/workers.html", "worker-table"), context)


@require_GET
@viewer_required
def queues(request: HtmxHttpRequest) -> HttpResponse:
    """The Queues link: the first queue's page (it lists the others)."""
    return HttpResponseRedirect(reverse("dashboard:queue_detail", args=[selectors.queue_names()[0]]))


def _queue_context(name: str) -> dict[str, Any]:
    names = selectors.queue_names()
    if name not in names:
        raise Http404(f"no queue named {name!r}")
    return {
        "queue": selectors.queue_stats_get(names=[name])[0],
        "queue_names": names,
        "registries": selectors.queue_registries_get(name=name),
        "recent_page": selectors.job_list(filters=selectors.JobFilter(queue=name), limit=20),
    }


@require_GET
@viewer_required
def queue_detail(request: HtmxHttpRequest, name: str) -> HttpResponse:
    return render(request, partial_name(request, "dashboard/queue.html", "queue-panel"), _queue_context(name))


def _queue_action(request: HtmxHttpRequest, name: str, *, pause: bool) -> HttpResponse:
    try:
        changed = (services.queue_pause if pause else services.queue_resume)(name=name)
    except services.QueueNotFound as exc:
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


# --- health -----------------------------------------------------------------------------


@require_GET
def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico on every site, the admin's pages too."""
    return HttpResponsePermanentRedirect(static("dashboard/favicon.svg"))


@require_GET
def healthz(request: HtmxHttpRequest) -> HttpResponse:
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        redis_connection().ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {type(exc).__name__}"
    healthy = all(value == "ok" for value in checks.values())
    return JsonResponse({"status": "ok" if healthy else "error", **checks}, status=200 if healthy else 503)
