"""Filters and actions as forms: every parameter is validated, a bad one becomes a message."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.core.validators import RegexValidator
from django.http import QueryDict

from workers.models import AuditAction
from workers.reads.audit import AuditFilter
from workers.reads.jobs import JobFilter, search_parse
from workers.reads.search import Search, SearchError, from_fields

_DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"]
_CURSOR = RegexValidator(r"^\d{1,12}(\.\d{1,6})?_\d{1,19}$", "That page link is malformed; start from the first page.")
_JOB_ID = re.compile(r"^[\w.:@-]{1,128}$")


class JobFilterForm(forms.Form):
    """The list pages' filter: one search box (``q``, the language of ``workers.reads.search``).

    The older fields (``status``, ``queue``, ``func``, ``since``, ``until``) still work: their
    values join the search as terms, so links and bookmarks made before keep their meaning
    and the box shows what they stand for.
    """

    q = forms.CharField(required=False, max_length=500, label="search")
    status = forms.CharField(required=False, max_length=100)
    queue = forms.CharField(required=False, max_length=100)
    func = forms.CharField(required=False, max_length=255, label="function")
    since = forms.CharField(required=False, max_length=40)
    until = forms.CharField(required=False, max_length=40)
    fingerprint = forms.RegexField(required=False, regex=r"^[0-9a-f]{1,64}$", widget=forms.HiddenInput)
    cursor = forms.CharField(required=False, max_length=64, validators=[_CURSOR], widget=forms.HiddenInput)

    def __init__(self, *args: Any, fixed_status: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fixed_status = fixed_status
        if fixed_status:
            del self.fields["status"]
        self.search = Search()
        self.search_error: SearchError | None = None
        self.search_text = str(self.data.get("q") or "")[:1000] if self.is_bound else ""

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        older = {name: data.get(name) or "" for name in ("status", "queue", "func", "since", "until")}
        self.search_text = " ".join(part for part in (from_fields(**older), (data.get("q") or "").strip()) if part)
        try:
            self.search = search_parse(self.search_text)
        except SearchError as exc:
            self.search_error = exc
            raise forms.ValidationError(exc.message) from exc
        return data

    def to_filter(self) -> JobFilter:
        data = self.cleaned_data
        return JobFilter(status=self.fixed_status, fingerprint=data.get("fingerprint") or "", search=self.search)

    def error_messages(self, *, search: bool = True) -> list[str]:
        """What is wrong, field by field; without the search's mistake for a page that shows
        it apart, pointing at its term (``search_error_parts``)."""
        messages: list[str] = []
        for name, errors in self.errors.items():
            if name == "__all__" and self.search_error is not None and not search:
                continue
            label = "" if name == "__all__" else f"{self.fields[name].label or name}: " if name in self.fields else ""
            messages.extend(f"{label}{error}" for error in errors)
        return messages

    def search_error_parts(self) -> dict[str, str] | None:
        """The search with the term a mistake is about picked out: before, term, after."""
        error, text = self.search_error, self.search_text
        if error is None:
            return None
        return {
            "message": error.message,
            "before": text[: error.start],
            "term": text[error.start : error.end],
            "after": text[error.end :],
        }

    def items(self) -> list[tuple[str, str]]:
        """The valid filter (not the cursor) as name/value pairs: hidden fields of bulk forms."""
        if not self.is_valid():
            return []
        pairs = [("q", self.search.text)] if self.search.text else []
        if self.cleaned_data.get("fingerprint"):
            pairs.append(("fingerprint", self.cleaned_data["fingerprint"]))
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
