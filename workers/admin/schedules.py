"""The Django admin for schedules: edit, pause, resume, run now. Writes go through services."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from ..models import Schedule, ScheduleSource
from ..redaction import Call, call_for
from ..registry import schedulable_functions
from ..scheduling.sync import DEFINITION_FIELDS, schedule_save
from ..scheduling.validation import schedule_validate
from ..services.audit import Actor
from ..services.schedules import ScheduleActionError, schedule_pause, schedule_resume, schedule_run_now


class ReadableJSONField(forms.JSONField):
    """A JSON field whose error says where the JSON is broken, not just that it is."""

    def __init__(self, *args: Any, label_text: str = "", **kwargs: Any) -> None:
        self.label_text = label_text
        super().__init__(*args, **kwargs)

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str) and value.strip():
            try:
                json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValidationError(
                    f"{self.label_text} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
                    code="invalid",
                ) from exc
        return super().to_python(value)


class ScheduleForm(forms.ModelForm):
    func = forms.ChoiceField(help_text="Only functions registered with @schedulable can be scheduled.")
    args = ReadableJSONField(
        label_text="args", required=False, initial=list, help_text='A JSON list, e.g. [42, "weekly"].'
    )
    kwargs = ReadableJSONField(
        label_text="kwargs", required=False, initial=dict, help_text='A JSON object, e.g. {"a": 1}.'
    )

    class Meta:
        model = Schedule
        fields = [
            "name",
            "func",
            "cron",
            "interval",
            "run_at",
            "timezone",
            "args",
            "kwargs",
            "queue",
            "catch_up",
            "enabled",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = [(path, path) for path in schedulable_functions()]
        current = self.instance.func if self.instance and self.instance.pk else ""
        if current and current not in dict(choices):
            choices.append((current, f"{current} (no longer schedulable)"))
        func = self.fields.get("func")  # absent when read-only (declared in code)
        if isinstance(func, forms.ChoiceField):
            func.choices = [("", "---------"), *choices]

    def _post_clean(self) -> None:  # Django's hook once the form's values are on the instance
        super()._post_clean()  # type: ignore[misc]
        # The whole definition is checked by the one validation the scheduler, the code
        # sync and `manage.py check` use; its errors land on their fields.
        try:
            schedule_validate(self.instance)
        except ValidationError as exc:
            self._update_errors(exc)  # type: ignore[attr-defined]

    def clean_args(self) -> Any:
        return [] if self.cleaned_data.get("args") is None else self.cleaned_data["args"]

    def clean_kwargs(self) -> Any:
        return {} if self.cleaned_data.get("kwargs") is None else self.cleaned_data["kwargs"]


_SHOWN = {"args": "args_shown", "kwargs": "kwargs_shown"}


def _call(schedule: Schedule) -> Call:
    args = schedule.args if isinstance(schedule.args, list) else [schedule.args]
    kwargs = schedule.kwargs if isinstance(schedule.kwargs, dict) else {"": schedule.kwargs}
    return call_for(schedule.func, args, kwargs)


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    form = ScheduleForm
    list_display = [
        "name",
        "func",
        "trigger",
        "queue",
        "enabled",
        "is_paused",
        "is_broken",
        "next_run_at",
        "last_run_at",
        "source",
    ]
    list_filter = ["enabled", "source", "queue"]
    search_fields = ["name", "func"]
    # Saving the form (once it validates) mends a broken schedule: the scheduler tries it again.
    readonly_fields = [
        "source",
        "paused_at",
        "next_run_at",
        "last_run_at",
        "last_job_id",
        "missed_runs",
        "broken_reason",
        "broken_since",
        "retry_at",
    ]
    actions = ["pause_selected", "resume_selected", "run_selected_now"]

    def get_readonly_fields(self, request: HttpRequest, obj: Schedule | None = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.source == ScheduleSource.CODE:
            # Declared in JOBSITE_SCHEDULES: the code owns the definition (a sync would undo edits).
            fields += ["name", *DEFINITION_FIELDS, "enabled"]
        if self._arguments_redacted(request, obj):
            fields += list(_SHOWN.values())
        return fields

    def _arguments_redacted(self, request: HttpRequest, obj: Schedule | None) -> bool:
        # Arguments only read (declared in code, or a viewer who may not edit) are shown
        # redacted (JOBSITE["REDACT"]); an editor's form holds the real values it saves back.
        return obj is not None and (obj.source == ScheduleSource.CODE or not self.has_change_permission(request, obj))

    def get_fields(self, request: HttpRequest, obj: Schedule | None = None) -> list[Any]:
        fields = list(super().get_fields(request, obj))
        if not self._arguments_redacted(request, obj):
            return fields
        shown: list[Any] = []
        for name in fields:
            name = _SHOWN.get(name, name) if isinstance(name, str) else name
            if name not in shown:
                shown.append(name)
        return shown

    @admin.display(description="args")
    def args_shown(self, obj: Schedule) -> str:
        call = _call(obj)
        return call.text(json.dumps(list(call.args), default=str))

    @admin.display(description="kwargs")
    def kwargs_shown(self, obj: Schedule) -> str:
        call = _call(obj)
        return call.text(json.dumps(call.kwargs, default=str))

    @admin.display(boolean=True, description="paused")
    def is_paused(self, obj: Schedule) -> bool:
        return obj.is_paused

    @admin.display(boolean=True, description="broken")
    def is_broken(self, obj: Schedule) -> bool:
        return obj.is_broken

    def save_model(self, request: HttpRequest, obj: Schedule, form: Any, change: bool) -> None:
        schedule_save(schedule=obj)

    def _each(self, request: HttpRequest, queryset: QuerySet[Schedule], action: Any, verb: str) -> None:
        done = 0
        actor = Actor.from_request(request)
        for schedule in queryset:
            try:
                action(schedule_id=schedule.pk, actor=actor)
                done += 1
            except ScheduleActionError as exc:
                self.message_user(request, str(exc), messages.ERROR)
        self.message_user(request, f"{verb} {done} schedule(s).", messages.SUCCESS)

    @admin.action(description="Pause selected schedules")
    def pause_selected(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        self._each(request, queryset, schedule_pause, "Paused")

    @admin.action(description="Resume selected schedules")
    def resume_selected(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        self._each(request, queryset, schedule_resume, "Resumed")

    @admin.action(description="Run selected schedules now")
    def run_selected_now(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        self._each(request, queryset, schedule_run_now, "Started")
