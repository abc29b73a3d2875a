"""``/dashboard/dead-letters/``: jobs whose attempts ran out, grouped by failure; retry or discard.

Live without moving what the operator reads: a polled bar says "N new dead letters — show"
(``dead_letters_new``) and its link reloads the groups and the list.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.http import HttpResponse, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from workers.models import JobStatus
from workers.reads import dead_letters as dead_letter_reads

from ..access import operator_required, viewer_required
from ..forms import JobFilterForm
from ..htmx import HtmxHttpRequest, partial_name
from .jobs import NEW_ROWS_CAP, bulk_answer, job_list_context, new_rows


def _list_url(filter_query: str) -> str:
    return reverse("dashboard:dead_letters") + (f"?{filter_query}" if filter_query else "")


def _dead_letters_context(params: QueryDict) -> dict[str, Any]:
    # Taken before the list is read: a job that dies meanwhile is counted as new, not missed.
    shown_at = timezone.now()
    context = job_list_context(params, fixed_status=JobStatus.DEAD)
    context["groups"] = dead_letter_reads.dead_letter_groups()
    if context["page"] is not None and context["is_first_page"]:
        query = QueryDict(context["filter_query"], mutable=True)
        query["shown"] = f"{shown_at.timestamp():.6f}"
        context["new_rows_url"] = f"{reverse('dashboard:dead_letters_new')}?{query.urlencode()}"
        context["new_rows_list_url"] = _list_url(context["filter_query"])
        context["new_rows_target"], context["new_rows_noun"] = "#dead-letters", "dead letter"
    return context


@require_GET
@viewer_required
def dead_letters(request: HtmxHttpRequest) -> HttpResponse:
    template = partial_name(request, "dashboard/dead_letters.html", "dead-letters")
    return render(request, template, _dead_letters_context(request.GET))


@require_POST
@operator_required
def dead_letters_bulk(request: HtmxHttpRequest) -> HttpResponse:
    return bulk_answer(
        request,
        fixed_status=JobStatus.DEAD,
        url_name="dashboard:dead_letters",
        partial="dashboard/dead_letters.html#dead-letters",
        list_context=_dead_letters_context,
    )


@require_GET
@viewer_required
def dead_letters_new(request: HtmxHttpRequest) -> HttpResponse:
    """How many dead letters matching the list's filter died since it was shown (``shown``)."""
    form = JobFilterForm(request.GET, fixed_status=JobStatus.DEAD)
    count = 0
    try:
        since = datetime.fromtimestamp(float(request.GET.get("shown", "")), tz=UTC)
    except (ValueError, OverflowError, OSError):  # not a time: nothing to count from
        since = None
    if form.is_valid() and since is not None:
        count = dead_letter_reads.dead_letter_count_since(filters=form.to_filter(), since=since, cap=NEW_ROWS_CAP)
    return new_rows(
        request,
        count=count,
        list_url=_list_url(form.query_string() if form.is_valid() else ""),
        target="#dead-letters",
        noun="dead letter",
        poll_url=request.get_full_path(),
    )
