"""``/dashboard/audit/``: the audit trail, who did what and how it went; read only."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from workers.reads import audit as audit_reads

from ..access import viewer_required
from ..forms import AuditFilterForm
from ..htmx import HtmxHttpRequest, partial_name

PAGE_SIZE = 50


@require_GET
@viewer_required
def audit(request: HtmxHttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET)
    page, errors = None, []
    if form.is_valid():
        try:
            page = audit_reads.audit_list(
                filters=form.to_filter(), cursor=form.cleaned_data.get("cursor") or None, limit=PAGE_SIZE
            )
        except ValueError as exc:  # a cursor that parses but points nowhere sensible
            errors.append(str(exc))
    else:
        errors = form.error_messages()
    context = {"form": form, "page": page, "filter_errors": errors, "filter_query": form.query_string()}
    return render(request, partial_name(request, "dashboard/audit.html", "audit-table"), context)
