"""Filters and actions as forms: every parameter is validated, a bad one becomes a message."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.core.validators import RegexValidator
from django.http import QueryDict

from workers.models import AuditAction, JobStatus
from workers.reads.audit import AuditFilter
from workers.reads.jobs import JobFilter
from workers.reads.live import queue_names

_DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"]
_CURSOR = RegexValidator(r"^\d{1,12}(\.\d{1,6})?_\d{1,19}$", "That page link is malformed; start from the first page.")
_JOB_ID = re.compile(r"^[\w.:@-]{1,128}$")


class JobFilterForm(forms.Form):
    status = forms.ChoiceField(required=False, choices=[("", "any status"), *JobStatus.choices])
    queue = forms.ChoiceField(required=False)
    func = forms.CharField(required=False, max_length=255, label="function")
    q = forms.CharField(required=False, max_length=200, label="search")
    since = forms.DateTimeField(
        required=False, input_formats=_DATETIME_FORMATS, widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    until = forms.DateTimeField(
        required=False, input_formats=_DATETIME_FORMATS, widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    fingerprint = forms.RegexField(required=False, regex=r"^[0-9a-f]{1,64}$", widget=forms.HiddenInput)
    cursor = forms.CharField(required=False, max_length=64, validators=[_CURSOR], widget=forms.HiddenInput)

    def __init__(self, *args: Any, fixed_status: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fixed_status = fixed_status
        queue_field: forms.ChoiceField = self.fields["queue"]  # type: ignore[assignment]
        queue_field.choices = [("", "any queue"), *((name, name) for name in queue_names())]
        if fixed_status:
            del self.fields["status"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and since >= until:
            raise forms.ValidationError("The start of the date range must be before its end.")
        return data

    def to_filter(self) -> JobFilter:
        data = self.cleaned_data
        return JobFilter(
            status=self.fixed_status or data.get("status") or "",
            queue=data.get("queue") or "",
            func=(data.get("func") or "").strip(),
            q=(data.get("q") or "").strip(),
            since=data.get("since"),
            until=data.get("until"),
            fingerprint=data.get("fingerprint") or "",
        )

    def error_messages(self) -> list[str]:
        messages: list[str] = []
        for name, errors in self.errors.items():
            label = "" if name == "__all__" else f"{self.fields[name].label or name}: " if name in self.fields else ""
            messages.extend(f"{label}{error}" for error in errors)
        return messages

    def items(self) -> list[tuple[str, str]]:
        """The valid filter (not the cursor) as name/value pairs: hidden fields of bulk forms."""
        if not self.is_valid():
            return []
        pairs = []
        for name, value in self.cleaned_data.items():
            if name != "cursor" and value not in (None, ""):
                pairs.append((name, value.strftime("%Y-%m-%dT%H:%M:%S") if hasattr(value, "strftime") else str(value)))
        return pairs

    def query_string(self) -> str:
        query = QueryDict(mutable=True)
        for name, value in self.items():
            query[name] = value
        return query.urlencode()


class BulkActionForm(forms.Form):
    """``action`` on the selected ``job_id``s, or with ``all=1`` on everything the filter matches."""

    action = forms.ChoiceField(choices=[("retry", "retry"), ("discard", "discard")])
    all = forms.BooleanField(required=False)
    # With ``all``: how many matching jobs the operator saw and confirmed. When that many
    # no longer match, the service does nothing and says so.
    expected = forms.IntegerField(required=False, min_value=0)

    def __init__(self, data: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(data, *args, **kwargs)
        self.job_ids = [value for value in data.getlist("job_id") if value]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        bad = [job_id for job_id in self.job_ids if not _JOB_ID.match(job_id)]
        if bad:
            raise forms.ValidationError(f"Not a job id: {bad[0][:60]!r}.")
        if not data.get("all") and not self.job_ids:
            raise forms.ValidationError("Select at least one job, or choose everything matching the filter.")
        return data


class AuditFilterForm(forms.Form):
    """The audit page's filters: who, which action, on what, when."""

    actor = forms.CharField(required=False, max_length=150, label="who")
    action = forms.ChoiceField(required=False, choices=[("", "any action"), *AuditAction.choices])
    target = forms.RegexField(
        required=False, max_length=128, regex=r"^[\w.:@-]+$", label="job, queue, schedule or alert id"
    )
    since = forms.DateTimeField(
        required=False, input_formats=_DATETIME_FORMATS, widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    until = forms.DateTimeField(
        required=False, input_formats=_DATETIME_FORMATS, widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    bulk = forms.IntegerField(required=False, min_value=1, max_value=2**63 - 1, widget=forms.HiddenInput)
    cursor = forms.RegexField(
        required=False,
        max_length=64,
        regex=r"^\d{1,19}_\d{1,19}$",
        widget=forms.HiddenInput,
        error_messages={"invalid": "That page link is malformed; start from the first page."},
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and since >= until:
            raise forms.ValidationError("The start of the date range must be before its end.")
        return data

    def to_filter(self) -> AuditFilter:
        data = self.cleaned_data
        return AuditFilter(
            actor=(data.get("actor") or "").strip(),
            action=data.get("action") or "",
            target=data.get("target") or "",
            since=data.get("since"),
            until=data.get("until"),
            bulk=data.get("bulk"),
        )

    def error_messages(self) -> list[str]:
        return [
            f"{self.fields[name].label or name}: {error}" if name in self.fields else str(error)
            for name, errors in self.errors.items()
            for error in errors
        ]

    def query_string(self) -> str:
        """The valid filter (not the cursor), for the next page's link."""
        if not self.is_valid():
            return ""
        query = QueryDict(mutable=True)
        for name, value in self.cleaned_data.items():
            if name != "cursor" and value not in (None, ""):
                query[name] = value.strftime("%Y-%m-%dT%H:%M:%S") if hasattr(value, "strftime") else str(value)
        return query.urlencode()
