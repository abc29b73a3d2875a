"""Django admin for the tracking models; its actions call the same services as the dashboard."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from ..models import AuditEntry, JobError, JobLogLine, JobMetric, JobRecord
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


@admin.register(JobRecord)
class JobRecordAdmin(ReadOnlyAdmin):
    list_display = ("job_id", "func", "queue", "status", "attempts", "enqueued_at", "duration", "last_error")
    list_filter = ("status", "queue", "origin")
    search_fields = ("=job_id", "func", "last_error")
    ordering = ("-enqueued_at", "-id")
    date_hierarchy = "enqueued_at"
    show_full_result_count = False  # no COUNT(*) over the whole history on every page
    inlines = [JobErrorInline]
    actions = [retry_jobs, discard_jobs]

    def get_readonly_fields(self, request: HttpRequest, obj: object = None) -> list[str]:
        return [f.name for f in JobRecord._meta.fields]


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
