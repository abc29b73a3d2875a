"""Arguments kept as JSON beside their reprs: written by the recorder from the job's
descriptor when they round-trip through JSON, bounded by REPR_LIMIT, and searchable."""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest
from django.test import override_settings
from hypothesis import given, settings
from hypothesis import strategies as st

from workers import enqueue, events
from workers.models import JobRecord, JobStatus
from workers.reads.jobs import JobFilter, job_queryset, search_parse
from workers.recording.apply import apply_events

pytestmark = pytest.mark.django_db


def _found(text: str) -> list[str]:
    return sorted(job_queryset(filters=JobFilter(search=search_parse(text))).values_list("job_id", flat=True))


@pytest.mark.django_db(transaction=True)
def test_a_worker_run_records_json_arguments_only_when_they_round_trip(run_burst):
    jsonable = enqueue("tests.jobfuncs.fail_with", {"order_id": 42, "email": "ann@example.com"}, max_attempts=1)
    # A tuple comes back from JSON as a list, a datetime not at all: the reprs only.
    tupled = enqueue("tests.jobfuncs.fail_with", ("order_id", 42), max_attempts=1)
    dated = enqueue("tests.jobfuncs.fail_with", datetime(2026, 12, 1), max_attempts=1)
    run_burst()

    records = {r.job_id: r for r in JobRecord.objects.all()}
    assert records[jsonable.id].status == JobStatus.DEAD
    assert records[jsonable.id].args_json == {"args": [{"order_id": 42, "email": "ann@example.com"}], "kwargs": {}}
    assert records[tupled.id].args_json is None and "'order_id', 42" in records[tupled.id].args_repr
    assert records[dated.id].args_json is None and "datetime.datetime(2026, 12, 1" in records[dated.id].args_repr
    assert _found("args.order_id:42") == [jsonable.id]
    assert _found("args.email:*@EXAMPLE.com") == [jsonable.id]
    assert sorted(_found("order_id")) == sorted([jsonable.id, tupled.id])  # the reprs, for every job


@pytest.mark.django_db(transaction=True)
def test_arguments_longer_than_repr_limit_are_not_kept_as_json(run_burst, settings):
    settings.JOBSITE = {**settings.JOBSITE, "REPR_LIMIT": 200}
    small = enqueue("tests.jobfuncs.blob_size", "x" * 50)
    large = enqueue("tests.jobfuncs.blob_size", "y" * 500)
    run_burst()

    assert JobRecord.objects.get(job_id=small.id).args_json == {"args": ["x" * 50], "kwargs": {}}
    record = JobRecord.objects.get(job_id=large.id)
    assert record.args_json is None
    assert len(record.args_repr) < 260 and "more characters]" in record.args_repr


def _queued(job_id: str, **extra) -> dict:
    t = time.time()
    return {"e": "queued", "id": job_id, "a": 1, "t": t, "q": "default", "f": "app.jobs.work", "enq": t, **extra}


def test_json_arguments_a_recorder_must_not_store_are_left_out_and_the_rest_applied(settings):
    settings.JOBSITE = {**settings.JOBSITE, "REPR_LIMIT": 200}
    deep: dict = {}
    node = deep
    for _ in range(40):
        node["x"] = {}
        node = node["x"]
    bad = {
        "text": "not an object",
        "shape": {"args": [1], "kwargs": {}, "extra": 1},
        "types": {"args": {"0": 1}, "kwargs": {}},
        "nul": {"args": ["a\x00b"], "kwargs": {}},  # PostgreSQL's jsonb refuses \u0000
        "deep": {"args": [deep], "kwargs": {}},
        "big": {"args": ["z" * 300], "kwargs": {}},
    }
    good = {"args": [7], "kwargs": {"email": "ok@example.com"}}

    apply_events([_queued(f"bad-{name}", json=value, args="(1,)") for name, value in bad.items()]
                 + [_queued("good", json=good, args="(7,)")])  # fmt: skip

    stored = dict(JobRecord.objects.values_list("job_id", "args_json"))
    assert stored == {**{f"bad-{name}": None for name in bad}, "good": good}
    assert _found("kwargs.email:ok@example.com") == ["good"]


_TEXT = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False, allow_infinity=False),
    st.text(_TEXT, max_size=30),
)  # fmt: skip
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(_TEXT, max_size=8), inner)),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_JSON, max_size=4), st.dictionaries(st.text(_TEXT, max_size=8), _JSON, max_size=4))
def test_json_arguments_are_kept_exactly_when_they_fit(args, kwargs):
    # The producer skips encoding short arguments: what it keeps must be what fits.
    reprs = (events.safe_repr(tuple(args), 10**6), events.safe_repr(dict(kwargs), 10**6))
    with override_settings(JOBSITE={"REPR_LIMIT": 120}):
        kept = events.json_arguments(args, kwargs, reprs=reprs)
        fits = events.json_size({"args": args, "kwargs": kwargs}) <= 120
        assert (kept is not None) == (fits and bool(args or kwargs))
        if kept is not None:
            assert json.loads(json.dumps(kept)) == {"args": args, "kwargs": kwargs}
