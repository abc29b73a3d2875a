"""The search language against the database (SQLite and PostgreSQL): each term finds what it
says, totals stay bounded, and on PostgreSQL the terms are index lookups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import JobRecordFactory
from workers.models import JobRecord, JobStatus
from workers.reads.jobs import JobFilter, Total, job_list, job_queryset, search_parse
from workers.reads.search import SearchError

pytestmark = pytest.mark.django_db


def found(text: str) -> list[str]:
    qs = job_queryset(filters=JobFilter(search=search_parse(text)))
    return sorted(qs.values_list("job_id", flat=True))


@pytest.fixture
def jobs():
    at = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    JobRecordFactory(
        job_id="7334c2aa-0001",
        status=JobStatus.DEAD,
        queue="default",
        func="billing.jobs.charge",
        worker="host-3",
        key="account:7",
        origin="schedule",
        args_repr="({'order_id': 42},)",
        kwargs_repr="{'email': 'Ann@Example.com'}",
        args_json={"args": [{"order_id": 42}], "kwargs": {"email": "Ann@Example.com"}},
        last_error="DoesNotExist: Order matching query does not exist.",
        enqueued_at=at,
        duration=7.5,
        attempts=3,
    )
    JobRecordFactory(
        job_id="b-0002",
        status=JobStatus.FINISHED,
        queue="low",
        func="billing_jobs.refund",
        worker="host-30",
        key="account:70",
        args_repr="('42', '100%')",
        kwargs_repr="{'email': 'bob@example.org', 'tags': ['x', 'y']}",
        args_json={"args": ["42", "100%"], "kwargs": {"email": "bob@example.org", "tags": ["x", "y"]}},
        enqueued_at=at + timedelta(hours=30),
        duration=0.5,
        attempts=1,
    )
    JobRecordFactory(
        job_id="c-0003",
        status=JobStatus.DEAD,
        discarded_at=at,
        queue="high",
        func="media.jobs.resize",
        args_repr="(<object at 0x7f>,)",  # not JSON-able: no args_json
        last_error="ValueError: cannot identify image file 'cat.png'",
        enqueued_at=at - timedelta(days=2),
        duration=None,
        attempts=0,
    )
    return ["7334c2aa-0001", "b-0002", "c-0003"]


def test_the_issue_example_finds_its_job(jobs):
    text = (
        "status:dead queue:default func:billing.* worker:host-3 key:account:7 id:7334c2 origin:schedule "
        'args.order_id:42 kwargs.email:*@example.com error:"does not exist" after:2026-12-01 '
        "before:2026-12-02T10:00 ran>5s attempts>2"
    )
    assert found(text) == ["7334c2aa-0001"]
    # Each term is needed: negating any one of them loses the job.
    for term in search_parse(text).terms:
        negated = text[: term.start] + "-" + text[term.start :]
        assert found(negated) == [], text[term.start : term.end]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("status:dead", ["7334c2aa-0001"]),  # a discarded dead job is no dead letter
        ("status:dead,finished", ["7334c2aa-0001", "b-0002"]),
        ("-status:dead", ["b-0002", "c-0003"]),
        ("queue:low,high", ["b-0002", "c-0003"]),
        ("queue:*o*", ["b-0002"]),  # wildcards match the whole value: "low" only
        ("func:billing.*", ["7334c2aa-0001"]),  # the dot is a dot, _ in billing_jobs no wildcard
        ("func:billing*", ["7334c2aa-0001", "b-0002"]),
        ("func:Billing.*", []),  # names are case-sensitive
        ("func:billing.jobs.charge", ["7334c2aa-0001"]),
        ("func:*.resize", ["c-0003"]),
        ("worker:host-3", ["7334c2aa-0001"]),  # exact without *
        ("worker:host-3*", ["7334c2aa-0001", "b-0002"]),
        ("key:account:7", ["7334c2aa-0001"]),
        ("origin:schedule", ["7334c2aa-0001"]),
        ("id:7334c2", ["7334c2aa-0001"]),
        ("id:b-", ["b-0002"]),
        ('error:"does not exist"', ["7334c2aa-0001"]),
        ("error:cat.png", ["c-0003"]),
        ("error:valueerror", ["c-0003"]),  # text ignores case
        ("after:2026-12-01", ["7334c2aa-0001", "b-0002"]),
        ("after:2026-12-01T12:00:01", ["b-0002"]),
        ("before:2026-12-01T12:00", ["c-0003"]),
        ("ran>5s", ["7334c2aa-0001"]),
        ("ran<=500ms", ["b-0002"]),
        ("-ran>5s", ["b-0002", "c-0003"]),  # not run (no duration) counts as not longer than 5 s
        ("attempts>2", ["7334c2aa-0001"]),
        ("attempts:1", ["b-0002"]),
        ("attempts<1", ["c-0003"]),
    ],
)
def test_each_field(jobs, text, expected):
    assert found(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("matching", ["7334c2aa-0001"]),  # the last error
        ("EXAMPLE.ORG", ["b-0002"]),  # kwargs, ignoring case
        ("order_id", ["7334c2aa-0001"]),  # args
        ("100%", ["b-0002"]),  # % is a character, not a wildcard
        ("100_", []),  # and so is _
        ("7334c2aa", ["7334c2aa-0001"]),  # the start of a job id
        ("cat png", ["c-0003"]),  # every word must be there
        ("-matching", ["b-0002", "c-0003"]),
        ('"does not exist"', ["7334c2aa-0001"]),
        ("does*exist", ["7334c2aa-0001"]),
        ("zzzqqq", []),
    ],
)
def test_free_words_search_ids_arguments_and_errors(jobs, text, expected):
    assert found(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("args.order_id:42", ["7334c2aa-0001"]),  # a positional argument that is an object
        ("args.0.order_id:42", ["7334c2aa-0001"]),
        ("args.1.order_id:42", []),
        ("args:42", ["b-0002"]),  # a positional argument that is "42" (or 42)
        ('args:"42"', ["b-0002"]),
        ("args.0:42", ["b-0002"]),
        ("args.1:42", []),
        ("args.order_id:43", []),
        ("kwargs.email:*@example.com", ["7334c2aa-0001"]),  # with *: text, ignoring case
        ("kwargs.email:bob@example.org", ["b-0002"]),
        ("kwargs.email:BOB@example.org", []),  # without *: exactly
        ("kwargs.tags:y", ["b-0002"]),  # through arrays
        ("kwargs.tags.1:y", ["b-0002"]),
        ("kwargs.tags.0:y", []),
        ("kwargs.nope:xyz*", []),
        ("-args.order_id:42", ["b-0002", "c-0003"]),  # jobs without JSON arguments too
        ("-args:42", ["7334c2aa-0001", "c-0003"]),  # {"order_id": 42} == 42 is "unknown": not 42
    ],
)
def test_argument_paths(jobs, text, expected):
    assert found(text) == expected


def test_totals_are_exact_up_to_the_bound_then_an_estimate(settings):
    settings.JOBSITE = {**settings.JOBSITE, "EXACT_COUNT_LIMIT": 5}
    for n in range(12):
        JobRecordFactory(job_id=f"t{n:02d}", args_repr=f"('needle{n % 2}',)")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE workers_jobrecord")

    few = job_list(filters=JobFilter(search=search_parse("needle1 -t01 -t03")), limit=2, count=True)
    assert (few.total.count, few.total.exact, str(few.total)) == (4, True, "4")
    assert [r.job_id for r in few.items] == ["t11", "t09"]
    many = job_list(filters=JobFilter(), limit=2, count=True)
    assert not many.total.exact
    if connection.vendor == "postgresql":
        assert many.total.estimated and str(many.total) == "about 12"  # the planner knows the table
    else:
        assert str(many.total) == "more than 5"


def test_a_page_of_a_rare_search_keeps_its_order_and_cursor():
    base = datetime(2026, 12, 1, tzinfo=UTC)
    for n in range(7):
        JobRecordFactory(job_id=f"r{n}", args_repr="('rare',)" if n % 2 else "()", enqueued_at=base + timedelta(n))
    first = job_list(filters=JobFilter(search=search_parse("rare")), limit=2, count=True)
    assert [r.job_id for r in first.items] == ["r5", "r3"] and first.total.exact
    second = job_list(filters=JobFilter(search=search_parse("rare")), cursor=first.next_cursor, limit=2, count=True)
    assert [r.job_id for r in second.items] == ["r1"] and second.next_cursor is None


def test_totals_never_count_the_whole_table():
    JobRecordFactory.create_batch(3)
    with CaptureQueriesContext(connection) as queries:
        job_list(filters=JobFilter(search=search_parse("status:finished")), count=True)
    counts = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    assert counts and all("LIMIT" in sql.upper() for sql in counts)


def test_an_unknown_status_is_a_search_error():
    with pytest.raises(SearchError, match="unknown status"):
        search_parse("status:exploded")


_PIECES = st.sampled_from(
    [
        "status:dead", "queue:default,*o*", "func:billing.*", 'func:"a*b%_c"', "worker:host-3", "key:account:7",
        "id:7334c2", "id:a%_", "origin:schedule", "args.order_id:42", "args.0.x.1:true", "args:null",
        "kwargs.email:*@example.com", 'kwargs."a.b":1', 'error:"does not exist"', "after:2026-12-01",
        "before:2026-12-02T10:00", "ran>5s", "ran<=1ms", "attempts>2", "attempts:0", "abc%", "a_b_c_d", "o'neil",
        '"\\"quoted\\""', "[abc]*", "abc\\", "ünïcödé", "🔥🔥🔥", "x" * 300,
    ]
)  # fmt: skip


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.booleans(), _PIECES), min_size=1, max_size=6))
def test_any_search_runs_on_the_database(jobs, pieces):
    text = " ".join(("-" if negate else "") + piece for negate, piece in pieces)
    try:
        search = search_parse(text)
    except SearchError:
        return
    page = job_list(filters=JobFilter(search=search), limit=5, count=True)
    assert page.total is not None and page.total.count >= len(page.items)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the indexes are PostgreSQL's")
@pytest.mark.parametrize(
    "text, index",
    [
        ("zzzqqq", "jobrecord_search_text"),
        ('error:"does not exist"', "jobrecord_search_text"),
        ("args.order_id:42", "jobrecord_search_args"),
        ("kwargs.email:*@example.com", "jobrecord_search_text"),
        ("id:7334c2", "workers_jobrecord_job_id_"),
        ("func:billing.*", "workers_jobrecord_func_"),
    ],
)
def test_searches_are_index_lookups_on_postgresql(jobs, text, index):
    qs = job_queryset(filters=JobFilter(search=search_parse(text)))
    sql, params = qs.values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        # A tiny table is read whole anyway: ask whether an index *can* answer the search.
        cursor.execute("SET enable_seqscan = off")
        try:
            cursor.execute(f"EXPLAIN {sql}", params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("SET enable_seqscan = on")
    assert index in plan, plan
    assert "Seq Scan" not in plan, plan


def test_jobs_of_any_status_keep_their_records(jobs):
    # The searches above read; they never change a record.
    assert JobRecord.objects.count() == 3


@pytest.mark.parametrize(
    "total, text",
    [
        (Total(0), "0"),
        (Total(9_999), "9,999"),
        (Total(10_001, exact=False), "more than 10,001"),
        (Total(45_300, exact=False, estimated=True), "about 45 k"),
        (Total(999_600, exact=False, estimated=True), "about 1.0 M"),
        (Total(1_234_567, exact=False, estimated=True), "about 1.2 M"),
    ],
)
def test_how_a_total_reads(total, text):
    assert str(total) == text


def test_a_common_word_above_the_bound_is_walked_newest_first(settings):
    settings.JOBSITE = {**settings.JOBSITE, "EXACT_COUNT_LIMIT": 5}
    base = datetime(2026, 12, 1, tzinfo=UTC)
    for n in range(9):
        JobRecordFactory(job_id=f"w{n}", args_repr="('common',)", enqueued_at=base + timedelta(minutes=n))
    first = job_list(filters=JobFilter(search=search_parse("common")), limit=4, count=True)
    assert [r.job_id for r in first.items] == ["w8", "w7", "w6", "w5"]
    assert not first.total.exact and first.total.count >= 5
    second = job_list(filters=JobFilter(search=search_parse("common")), cursor=first.next_cursor, limit=4, count=True)
    assert [r.job_id for r in second.items] == ["w4", "w3", "w2", "w1"]
    assert [
        r.job_id for r in job_list(filters=JobFilter(search=search_parse("common id:w0")), limit=4, count=True).items
    ] == ["w0"]
