"""``/dashboard/dead-letters/``: jobs whose attempts ran out, grouped by failure; retry or discard."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse, QueryDict
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from workers.models import JobStatus
from workers.reads import dead_letters as dead_letter_reads

from ..access import operator_required, viewer_required
from ..htmx import HtmxHttpRequest, partial_name
from .jobs import bulk_answer, job_list_context


def _dead_letters_context(params: QueryDict) -> dict[str, Any]:
    context = job_list_context(params, fixed_status=JobStatus.DEAD)
    context["groups"] = dead_letter_reads.dead_letter_groups()
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
