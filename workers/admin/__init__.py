"""Django admin for the tracking models; its actions call the same services as the dashboard."""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.views.main import ORDER_VAR
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone

from ..conf import queue_names
from ..models import AuditEntry, JobError, JobLogLine, JobMetric, JobRecord
from ..reads.jobs import Total, job_total, newest_first, search_parse
from ..reads.search import SearchError
from ..reads.search_sql import search_q
from ..services.audit import Actor
from ..services.jobs import BulkOutcome, dead_letter_discard_many, job_retry_many
from . import schedules  # noqa: F401  (registers the Schedule admin)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records are written by the recorder, never by hand."""

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class JobErrorInline(admin.StackedInline):
    model = JobError
    extra = 0
    can_delete = False
    fields = ("attempt", "exc_type", "message", "traceback", "worker", "failed_at", "fingerprint")
    readonly_fields = fields
    ordering = ("attempt",)

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


def _report(modeladmin: admin.ModelAdmin, request: HttpRequest, outcome: BulkOutcome, verb: str) -> None:
    level = messages.SUCCESS if outcome.ok else messages.WARNING
    modeladmin.message_user(request, outcome.summary(verb), level)


def _confirmation(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[JobRecord], *, question: str
) -> TemplateResponse | None:
    """The page that asks first (as Django's own "delete selected" does), or None once the
    operator has said yes."""
    if request.POST.get("post") == "yes":
        return None
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": "Are you sure?",
        "question": question,
        "records": queryset[:50],
        "count": queryset.count(),
        "opts": modeladmin.model._meta,
        "action": request.POST.get("action", ""),
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
    }
    return TemplateResponse(request, "admin/workers/confirm_action.html", context)


@admin.action(description="Retry selected jobs (dead, canceled or stopped)")
def retry_jobs(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[JobRecord]
) -> TemplateResponse | None:
    count = queryset.count()
    asked = _confirmation(modeladmin, request, queryset, question=f"Retry {count} job{'s' if count != 1 else ''}?")
    if asked is not None:
        return asked
    job_ids = list(queryset.values_list("job_id", flat=True))
    _report(modeladmin, request, job_retry_many(job_ids=job_ids, actor=Actor.from_request(request)), "Retried")
    return None


@admin.action(description="Discard selected dead letters")
def discard_jobs(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[JobRecord]
) -> TemplateResponse | None:
    count = queryset.count()
    question = f"Discard {count} dead letter{'s' if count != 1 else ''}? Their records and errors stay."
    asked = _confirmation(modeladmin, request, queryset, question=question)
    if asked is not None:
        return asked
    job_ids = list(queryset.values_list("job_id", flat=True))
    outcome = dead_letter_discard_many(job_ids=job_ids, actor=Actor.from_request(request))
    _report(modeladmin, request, outcome, "Discarded")
    return None


class QueueFilter(admin.SimpleListFilter):
    """The configured queues: a list from settings, not a DISTINCT over every record."""

    title = "queue"
    parameter_name = "queue"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(name, name) for name in queue_names()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[JobRecord]) -> QuerySet[JobRecord]:
        return queryset.filter(queue=self.value()) if self.value() else queryset


class EnqueuedFilter(admin.SimpleListFilter):
    """Recent windows of the enqueue time (date_hierarchy's DISTINCT DATE_TRUNC read every row)."""

    title = "enqueued"
    parameter_name = "enqueued"
    WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7), "30d": timedelta(days=30)}

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("1h", "last hour"), ("24h", "last 24 hours"), ("7d", "last 7 days"), ("30d", "last 30 days")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[JobRecord]) -> QuerySet[JobRecord]:
        window = self.WINDOWS.get(self.value() or "")
        return queryset.filter(enqueued_at__gte=timezone.now() - window) if window else queryset


class TotalPaginator(Paginator):
    """Counts exactly up to EXACT_COUNT_LIMIT and takes the planner's estimate above it:
    ``count`` is never a COUNT(*) over the whole history (``total`` says which it is)."""

    def __init__(self, *args: Any, total: Total | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._total = total

    @cached_property
    def total(self) -> Total:
        return self._total or job_total(self.object_list)  # type: ignore[arg-type]  # a QuerySet here

    @cached_property
    def count(self) -> int:
        return self.total.count


@admin.register(JobRecord)
class JobRecordAdmin(ReadOnlyAdmin):
    list_display = ("job_id", "func", "queue", "status", "attempts", "enqueued_at", "duration", "last_error")
    list_filter = ("status", QueueFilter, "origin", EnqueuedFilter)
    search_fields = ("job_id",)  # shows the box; get_search_results reads it as the search language
    search_help_text = (
        "The dashboard's search: status:dead queue:default func:billing.* id:7334c2 args.order_id:42 error:\"does not "
        'exist" after:2026-12-01 ran>5s attempts>2 -origin:retry, and words looked for in ids, arguments and errors.'
    )
    ordering = ("-enqueued_at", "-id")
    # Columns an index is ordered by; sorting by another would sort the whole history.
    sortable_by = ("job_id", "func", "queue", "status", "enqueued_at")
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # a count per filter choice: COUNT(*)s over the history
    paginator = TotalPaginator
    inlines = [JobErrorInline]
    actions = [retry_jobs, discard_jobs]

    def get_readonly_fields(self, request: HttpRequest, obj: object = None) -> list[str]:
        return [f.name for f in JobRecord._meta.fields]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[JobRecord], search_term: str
    ) -> tuple[QuerySet[JobRecord], bool]:
        """The search language of the dashboard, compiled the same way (and to the same indexes)."""
        if not search_term.strip():
            return queryset, False
        try:
            search = search_parse(search_term)
        except SearchError as exc:
            term = search_term[exc.start : exc.end]
            self.message_user(request, f"Search: {exc.message} (at {term!r})", messages.ERROR)
            return queryset.none(), False
        queryset = queryset.filter(search_q(search))
        if ORDER_VAR not in request.GET:
            total = job_total(queryset)
            request.jobsite_total = total  # type: ignore[attr-defined]  # the paginator's count
            queryset = newest_first(queryset, search=search, total=total)
        return queryset, False

    def get_paginator(self, request: HttpRequest, queryset: Any, per_page: int, *args: Any, **kwargs: Any) -> Any:
        return TotalPaginator(queryset, per_page, *args, total=getattr(request, "jobsite_total", None), **kwargs)


@admin.register(JobError)
class JobErrorAdmin(ReadOnlyAdmin):
    list_display = ("job", "attempt", "exc_type", "message", "failed_at")
    list_filter = ("exc_type",)
    search_fields = ("=job__job_id", "exc_type", "message")
    list_select_related = ("job",)
    show_full_result_count = False


@admin.register(JobLogLine)
class JobLogLineAdmin(ReadOnlyAdmin):
    list_display = ("job", "attempt", "seq", "level", "logger", "message", "logged_at")
    list_filter = ("level",)
    search_fields = ("=job__job_id", "message")
    list_select_related = ("job",)


@admin.register(JobMetric)
class JobMetricAdmin(ReadOnlyAdmin):
    list_display = ("minute", "queue", "func", "enqueued", "finished", "failed", "dead", "runtime_max")
    list_filter = ("queue",)
    date_hierarchy = "minute"


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """The audit trail, to read: nobody adds, changes or deletes an entry here (retention
    deletes old ones)."""

    list_display = ("at", "actor", "action", "target_kind", "target_id", "count", "outcome", "client_address")
    list_filter = ("action", "outcome", "target_kind")
    search_fields = ("=actor", "=target_id", "detail")
    date_hierarchy = "at"
    ordering = ("-at", "-id")
    show_full_result_count = False
    actions = None

    def get_readonly_fields(self, request: HttpRequest, obj: object = None) -> list[str]:
        return [f.name for f in AuditEntry._meta.fields]

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # Viewing only: with view permission the change page is read-only.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
