"""Django admin for the tracking models; its actions call the same services as the dashboard."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from ..models import JobError, JobLogLine, JobMetric, JobRecord
from ..services.jobs import dead_letter_discard_many, job_retry_many
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


def _report(modeladmin: admin.ModelAdmin, request: HttpRequest, outcome: object, verb: str) -> None:
    level = messages.SUCCESS if outcome.done or not outcome.skipped else messages.WARNING  # type: ignore[attr-defined]
    modeladmin.message_user(request, outcome.summary(verb), level)  # type: ignore[attr-defined]


@admin.action(description="Retry selected jobs (dead, canceled or stopped)")
def retry_jobs(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[JobRecord]) -> None:
    _report(modeladmin, request, job_retry_many(job_ids=queryset.values_list("job_id", flat=True)), "Retried")


@admin.action(description="Discard selected dead letters")
def discard_jobs(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[JobRecord]) -> None:
    outcome = dead_letter_discard_many(job_ids=queryset.values_list("job_id", flat=True))
    _report(modeladmin, request, outcome, "Discarded")


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
