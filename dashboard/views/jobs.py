"""``/dashboard/jobs/``: the filtered, keyset-paginated job list and its bulk actions.

The dead-letter list is the same list with its status fixed, so it uses
``job_list_context``, ``bulk_answer`` and ``new_rows`` from here.

The list is not refreshed under the operator's eyes (rows would jump while they read or
tick them): a small polled bar above its first page says "N new jobs — show" instead, and
its link reloads the list (``jobs_new``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpResponse, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from workers.reads import bulk as bulk_reads
from workers.reads import jobs as job_reads
from workers.services import bulk as bulk_services
from workers.services import jobs as job_services
from workers.services.audit import Actor

from ..access import operator_required, viewer_required
from ..forms import BulkActionForm, JobFilterForm
from ..htmx import HtmxHttpRequest, action_answer, partial_name

PAGE_SIZE = 50
# The "N new" bar counts no further ("1000+ new jobs").
NEW_ROWS_CAP = 1000


def job_list_context(params: QueryDict, *, fixed_status: str = "") -> dict[str, Any]:
    """One page of the list ``params`` filter, or the filter's errors."""
    form = JobFilterForm(params, fixed_status=fixed_status)
    page, errors, match_count = None, [], 0
    if form.is_valid():
        try:
            page = job_reads.job_list(
                filters=form.to_filter(), cursor=form.cleaned_data.get("cursor") or None, limit=PAGE_SIZE, count=True
            )
        except ValueError as exc:  # a cursor that parses but points nowhere sensible
            errors.append(str(exc))
        # What "all matching" would act on, said before it is chosen (and confirmed).
        match_count = job_reads.job_count_capped(filters=form.to_filter(), cap=job_services.BULK_LIMIT + 1)
    else:
        errors = form.error_messages(search=False)
    return {
        "form": form,
        "page": page,
        "filter_errors": errors,
        "search_error": form.search_error_parts(),
        "filter_query": form.query_string(),
        "is_first_page": not (form.is_valid() and form.cleaned_data.get("cursor")),
        "match_count": match_count,
        "bulk_limit": job_services.BULK_LIMIT,
        "bulk_operations": bulk_reads.bulk_operations_shown(status=fixed_status),
    }


def new_rows(
    request: HtmxHttpRequest, *, count: int, list_url: str, target: str, noun: str, poll_url: str
) -> HttpResponse:
    """The polled "N new" bar (``_new_rows.html``): how many rows arrived above a list's
    first page, and a link that reloads the list (``target``) to show them."""
    context = {
        "new_count": count,
        "new_more": count >= NEW_ROWS_CAP,
        "new_rows_url": poll_url,
        "new_rows_list_url": list_url,
        "new_rows_target": target,
        "new_rows_noun": noun,
    }
    return render(request, "dashboard/_new_rows.html", context)


def _jobs_context(params: QueryDict) -> dict[str, Any]:
    """The list's page, and on its first page where the "N new" bar polls."""
    context = job_list_context(params)
    if context["page"] is not None and context["is_first_page"]:
        query = QueryDict(context["filter_query"], mutable=True)
        if context["page"].first_cursor:
            query["first"] = context["page"].first_cursor
        context["new_rows_url"] = f"{reverse('dashboard:jobs_new')}?{query.urlencode()}"
        context["new_rows_list_url"] = reverse("dashboard:jobs") + (
            f"?{context['filter_query']}" if context["filter_query"] else ""
        )
        context["new_rows_target"], context["new_rows_noun"] = "#job-table", "job"
    return context


def bulk_answer(
    request: HtmxHttpRequest,
    *,
    fixed_status: str,
    url_name: str,
    partial: str,
    list_context: Callable[[QueryDict], dict[str, Any]],
) -> HttpResponse:
    """Retry or discard a selection, or everything the posted filter matches; answer with
    the list (``url_name``) refreshed from its first page.

    "All matching" when more than BULK_LIMIT match (and the operator confirmed more than
    that) starts a bulk operation, a job of its own that the list shows with a progress
    bar; up to BULK_LIMIT are acted on in the request, as before, answering at once."""
    form = BulkActionForm(request.POST)
    filter_form = JobFilterForm(request.POST, fixed_status=fixed_status)
    ok, text = False, ""
    if not form.is_valid():
        text = " ".join(str(m) for errs in form.errors.values() for m in errs)
    elif form.cleaned_data["all"] and not filter_form.is_valid():
        text = "The filter is not valid: " + " ".join(filter_form.error_messages())
    else:
        started = _bulk_operation_started(request, form, filter_form, fixed_status)
        if started is not None:
            ok, text = started
        else:
            job_ids, filters, expected = form.job_ids, None, None
            if form.cleaned_data["all"]:
                job_ids = job_reads.job_ids_get(filters=filter_form.to_filter(), limit=job_services.BULK_LIMIT + 1)
                filters = _posted_filters(filter_form, fixed_status)
                expected = form.cleaned_data["expected"]
            act, verb = (
                (job_services.job_retry_many, "Retried")
                if form.cleaned_data["action"] == "retry"
                else (job_services.dead_letter_discard_many, "Discarded")
            )
            outcome = act(job_ids=job_ids, actor=Actor.from_request(request), filters=filters, expected=expected)
            ok, text = outcome.ok, outcome.summary(verb)
    query = filter_form.query_string() if filter_form.is_valid() else ""

    def refreshed() -> dict[str, Any]:
        params = request.POST.copy()
        params.pop("cursor", None)
        return list_context(params)

    return action_answer(
        request,
        ok=ok,
        text=text,
        url=reverse(url_name) + (f"?{query}" if query else ""),
        partial=partial,
        context=refreshed,
    )


def _posted_filters(filter_form: JobFilterForm, fixed_status: str) -> dict[str, Any]:
    return {**({"status": fixed_status} if fixed_status else {}), **dict(filter_form.items())}


def _bulk_operation_started(
    request: HtmxHttpRequest, form: BulkActionForm, filter_form: JobFilterForm, fixed_status: str
) -> tuple[bool, str] | None:
    """With "all matching" confirmed for more than BULK_LIMIT jobs, and more than that
    still matching: start a bulk operation and say so. None: act in this request."""
    limit = job_services.BULK_LIMIT
    if not form.cleaned_data["all"] or (form.cleaned_data["expected"] or 0) <= limit:
        return None
    matching = job_reads.job_queryset(filters=filter_form.to_filter()).count()  # the once-only count it runs against
    if matching <= limit:
        return None  # fewer than confirmed: the request path refuses, saying how many match now
    action = form.cleaned_data["action"]
    try:
        bulk_services.bulk_operation_start(
            action=action,
            filters=_posted_filters(filter_form, fixed_status),
            expected=matching,
            actor=Actor.from_request(request),
        )
    except bulk_services.BulkOperationError as exc:
        return False, str(exc)
    verb = "Retrying" if action == "retry" else "Discarding"
    return True, f"{verb} all {matching:,} matching jobs in the background, {bulk_services.BATCH_SIZE} at a time."


@require_GET
@viewer_required
def jobs(request: HtmxHttpRequest) -> HttpResponse:
    context = _jobs_context(request.GET)
    return render(request, partial_name(request, "dashboard/jobs.html", "job-table"), context)


@require_POST
@operator_required
def jobs_bulk(request: HtmxHttpRequest) -> HttpResponse:
    return bulk_answer(
        request,
        fixed_status="",
        url_name="dashboard:jobs",
        partial="dashboard/jobs.html#job-table",
        list_context=_jobs_context,
    )


@require_GET
@viewer_required
def jobs_new(request: HtmxHttpRequest) -> HttpResponse:
    """How many jobs matching the list's filter arrived above its first row (``first``)."""
    form = JobFilterForm(request.GET)
    count = 0
    if form.is_valid():
        try:
            count = job_reads.job_count_newer(
                filters=form.to_filter(), cursor=request.GET.get("first") or None, cap=NEW_ROWS_CAP
            )
        except (ValueError, OverflowError, OSError):  # not a row's place: nothing to count from
            count = 0
    query = form.query_string() if form.is_valid() else ""
    return new_rows(
        request,
        count=count,
        list_url=reverse("dashboard:jobs") + (f"?{query}" if query else ""),
        target="#job-table",
        noun="job",
        poll_url=request.get_full_path(),
    )
