"""The public page-view demo and the examples' staff panel (campaigns, ETL runs, page views)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from dashboard.access import operator_required, viewer_required
from dashboard.htmx import HtmxHttpRequest, action_answer

from . import selectors, services
from .models import Article, EtlPage, EtlRun


@require_GET
def article_list(request: HttpRequest) -> HttpResponse:
    return render(request, "examples/article_list.html", {"articles": selectors.article_views_list(limit=50)})


@require_GET
def article_detail(request: HttpRequest, pk: int) -> HttpResponse:
    article = get_object_or_404(Article, pk=pk)
    services.article_view_record(article_id=article.pk)
    return render(request, "examples/article_detail.html", {"views": selectors.article_views_get(article=article)})


def _panels_context() -> dict[str, object]:
    return {
        "articles": selectors.article_views_list(limit=10),
        "last_flush": selectors.page_views_last_flush(),
        "page_views_mode": selectors.page_views_mode(),
        "campaigns": selectors.campaign_progress_list(limit=5),
        "runs": selectors.etl_run_list(limit=3),
        "facts": selectors.order_fact_count(),
    }


@require_GET
@viewer_required
def examples_dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "examples/dashboard.html", _panels_context())


@require_GET
@viewer_required
def examples_panels(request: HttpRequest) -> HttpResponse:
    return render(request, "examples/dashboard.html#panels", _panels_context())


def _done(request: HtmxHttpRequest, text: str) -> HttpResponse:
    return action_answer(
        request,
        ok=True,
        text=text,
        url=reverse("examples:dashboard"),
        partial="examples/dashboard.html#panels",
        context=_panels_context,
    )


@require_POST
@operator_required
def campaign_send(request: HtmxHttpRequest) -> HttpResponse:
    now = timezone.now()
    campaign = services.campaign_start(
        key=f"manual-{now:%Y%m%d-%H%M%S-%f}",
        subject=f"Announcement of {now:%Y-%m-%d %H:%M}",
        body="A campaign started by hand from the dashboard.",
    )
    return _done(request, f"Campaign “{campaign.subject}” is being sent.")


@require_POST
@operator_required
def etl_start(request: HtmxHttpRequest) -> HttpResponse:
    services.etl_run_request()
    return _done(request, "An ETL run was requested.")


@require_POST
@operator_required
def etl_run_rerun(request: HtmxHttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(EtlRun, pk=run_id)
    services.etl_run_rerun(run_id=run.pk)
    return _done(request, f"Every page of ETL run {run.pk} is queued again.")


@require_POST
@operator_required
def etl_page_rerun(request: HtmxHttpRequest, page_id: int) -> HttpResponse:
    page = get_object_or_404(EtlPage, pk=page_id)
    services.etl_page_rerun(page_id=page.pk)
    return _done(request, f"Page [{page.lo}, {page.hi}) of run {page.run_id} is queued again.")
