"""The counts /metrics reports per queue and status (``jobsite_jobs``, ``jobsite_dead_letters``)
come from ``JobStatusCount``, kept by triggers on the job table: whoever writes a record —
the recorder, a service, the admin's bulk ``update()``, SQL typed by hand — the counts equal
a fresh count of the records."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from django.db import OperationalError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.db.models import F
from django.utils import timezone

from tests.factories import JobRecordFactory
from workers import enqueue, events
from workers.models import JobRecord, JobStatus, JobStatusCount
from workers.reads.rollups import job_status_counts
from workers.recording.apply import apply_events, is_transient
from workers.services.audit import Actor
from workers.services.counts import job_status_counts_rebuild, job_status_counts_suspended
from workers.services.jobs import dead_letter_discard, job_retry
from workers.services.retention import job_prune
from workers.statuses import OPEN_STATUSES

pytestmark = pytest.mark.django_db(transaction=True)

OPERATOR = Actor("tester")


def fresh_count() -> dict[tuple[str, str], int]:
    """What /metrics should say, counted record by record (not by the SQL the counts use)."""
    counts: Counter[tuple[str, str]] = Counter()
    for queue, status, discarded_at in JobRecord.objects.values_list("queue", "status", "discarded_at"):
        if status in OPEN_STATUSES and not (status == JobStatus.DEAD and discarded_at is not None):
            counts[(queue, status)] += 1
    return dict(counts)


def assert_counts_match() -> dict[tuple[str, str], int]:
    counts = job_status_counts()
    assert counts == fresh_count()
    return counts


def raw_insert(job_id: str, *, queue: str = "default", status: str = "queued") -> None:
    """A record as a hand-written INSERT makes it: no Django, no recorder."""
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {JobRecord._meta.db_table} (job_id, queue, func, args_repr, kwargs_repr, status, attempts,"
            " worker, result_repr, key, progress_message, origin, parent_job_id, last_error, last_fingerprint,"
            " status_reason, created_at, updated_at)"
            " VALUES (%s, %s, 'shop.jobs.task', '()', '{}', %s, 1, '', '', '', '', 'event', '', '', '', '', %s, %s)",
            [job_id, queue, status, now, now],
        )


def raw(sql: str, params: list[Any]) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql.format(table=JobRecord._meta.db_table), params)
        return cursor.rowcount


def test_counts_follow_every_writer(run_burst):
    # The recorder, fed by a real worker: finished, dead, scheduled, and queued on a queue
    # nobody works.
    for n in range(3):
        enqueue("tests.jobfuncs.add", n, 1)
    comeback = enqueue("tests.jobfuncs.flaky", "comeback", 1, max_attempts=1)
    gone = enqueue("tests.jobfuncs.fail", "card declined", max_attempts=1)
    later = enqueue("tests.jobfuncs.add", 7, 7, delay=timedelta(hours=1))
    for n in range(2):
        enqueue("tests.jobfuncs.add", n, 2, queue="low")
    run_burst("default", simple=True)
    counts = assert_counts_match()
    assert counts == {("default", "dead"): 2, ("default", "scheduled"): 1, ("low", "queued"): 2}

    # Services: a retried dead letter runs again and finishes; a discarded one leaves the list.
    job_retry(job_id=comeback.id, actor=OPERATOR)
    dead_letter_discard(job_id=gone.id, actor=OPERATOR)
    run_burst("default", simple=True)
    assert JobRecord.objects.get(job_id=comeback.id).status == JobStatus.FINISHED
    assert assert_counts_match() == {("default", "scheduled"): 1, ("low", "queued"): 2}

    # The admin's kind of write: a bulk update() of statuses, and a change of queue.
    JobRecord.objects.filter(queue="low").update(status=JobStatus.STARTED)
    JobRecord.objects.filter(job_id=later.id).update(queue="high")
    assert assert_counts_match() == {("high", "scheduled"): 1, ("low", "started"): 2}

    # Hand-written SQL: insert, update (status and queue in one go), delete.
    raw_insert("raw-1", status="retrying")
    raw_insert("raw-2", status="queued")
    raw_insert("raw-3", status="dead")
    assert raw("UPDATE {table} SET status = 'deferred', queue = 'low' WHERE job_id = %s", ["raw-1"]) == 1
    assert raw("DELETE FROM {table} WHERE job_id = %s", ["raw-2"]) == 1
    assert assert_counts_match() == {
        ("high", "scheduled"): 1,
        ("low", "started"): 2,
        ("low", "deferred"): 1,
        ("default", "dead"): 1,
    }

    # A discarded dead letter brought back (discarded_at cleared) counts again; deleting
    # records through the ORM and pruning old history count down.
    JobRecord.objects.filter(job_id=gone.id).update(discarded_at=None)
    assert assert_counts_match()[("default", "dead")] == 2
    JobRecord.objects.filter(job_id="raw-3").delete()
    JobRecord.objects.filter(status=JobStatus.DEAD).update(discarded_at=timezone.now() - timedelta(days=60))
    JobRecord.objects.update(ended_at=timezone.now() - timedelta(days=60))
    job_prune(older_than=timedelta(days=30))
    assert not JobRecord.objects.filter(status=JobStatus.DEAD).exists()
    assert assert_counts_match() == {("high", "scheduled"): 1, ("low", "started"): 2, ("low", "deferred"): 1}


def test_a_record_with_an_unknown_status_is_not_counted_and_breaks_nothing():
    JobRecordFactory(job_id="good-1", status=JobStatus.QUEUED)
    raw_insert("bad-1", status="bogus")
    raw_insert("odd-queue", queue='it\'s "q" \u00e9\u4e2d' + "x" * 80, status="retrying")
    JobRecordFactory(job_id="good-2", status=JobStatus.QUEUED)
    assert assert_counts_match() == {("default", "queued"): 2, ('it\'s "q" \u00e9\u4e2d' + "x" * 80, "retrying"): 1}

    # Out of the unknown status into a known one, and a known one into an unknown.
    raw("UPDATE {table} SET status = 'queued' WHERE job_id = %s", ["bad-1"])
    assert assert_counts_match() == {("default", "queued"): 3, ('it\'s "q" \u00e9\u4e2d' + "x" * 80, "retrying"): 1}
    raw("UPDATE {table} SET status = 'no-such' WHERE job_id IN (%s, %s)", ["good-1", "odd-queue"])
    raw("DELETE FROM {table} WHERE job_id = %s", ["odd-queue"])
    assert assert_counts_match() == {("default", "queued"): 2}


def test_each_status_is_counted_when_metrics_report_it():
    """Every status into every other: the counts follow (a new status that the triggers do
    not know fails here)."""
    statuses = [*JobStatus.values, "discarded"]
    records = {}
    for status in statuses:
        real = JobStatus.DEAD if status == "discarded" else status
        records[status] = JobRecordFactory(
            job_id=f"from-{status}", status=real, discarded_at=timezone.now() if status == "discarded" else None
        )
    counts = assert_counts_match()
    assert set(counts) == {("default", s) for s in OPEN_STATUSES}
    for source, record in records.items():
        for target in statuses:
            record.status = JobStatus.DEAD if target == "discarded" else target
            record.discarded_at = timezone.now() if target == "discarded" else None
            record.save()
            assert job_status_counts() == fresh_count(), f"{source} -> {target}"


def test_a_rebuild_replaces_counts_that_drifted():
    JobRecordFactory.create_batch(3, status=JobStatus.DEAD)
    JobRecordFactory.create_batch(2, status=JobStatus.QUEUED, queue="low")
    # Counts the triggers never wrote: as after a load with them switched off.
    JobStatusCount.objects.filter(queue="default", status="dead").update(n=F("n") + 40)
    JobStatusCount.objects.create(queue="gone", status="queued", shard=99, n=-2)
    assert job_status_counts()[("default", "dead")] == 43

    rebuilt = job_status_counts_rebuild()

    assert rebuilt == {("default", "dead"): 3, ("low", "queued"): 2}
    assert assert_counts_match() == rebuilt


def test_a_bulk_load_with_the_counts_suspended_is_counted_after_it():
    JobRecordFactory(status=JobStatus.QUEUED)
    with transaction.atomic(), job_status_counts_suspended():
        JobRecord.objects.bulk_create(
            [JobRecord(job_id=f"load-{n}", queue="low", func="f", status=JobStatus.DEAD) for n in range(50)]
        )
    assert assert_counts_match() == {("default", "queued"): 1, ("low", "dead"): 50}
    # The triggers count again afterwards.
    JobRecord.objects.filter(job_id="load-0").update(status=JobStatus.FINISHED)
    assert assert_counts_match()[("low", "dead")] == 49

    with pytest.raises(RuntimeError, match="needs a transaction"), job_status_counts_suspended():
        pass


def _queued(job_id: str, queue: str) -> dict[str, Any]:
    now = time.time()
    descriptor = {"q": queue, "f": "shop.jobs.task", "args": "()", "kwargs": "{}", "enq": now, "max": 3}
    return events.waiting("queued", job_id=job_id, attempt=1, descriptor=descriptor) | {"t": now}


def _finished(job_id: str, queue: str) -> dict[str, Any]:
    now = time.time()
    descriptor = {"q": queue, "f": "shop.jobs.task", "args": "()", "kwargs": "{}", "enq": now, "max": 3}
    return events.finished(
        job_id=job_id, attempt=1, worker="w", result="None", start=now, end=now + 0.01, descriptor=descriptor
    ) | {"t": now + 0.01}


def test_recorders_writing_at_once_are_all_counted():
    """Four recorders (four database sessions, so several shards) apply batches at once."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    errors: list[BaseException] = []
    retried = Counter[str]()

    def recorder(name: str) -> None:
        try:
            for batch in range(15):
                ids = [f"{name}-{batch}-{n}" for n in range(20)]
                stream = [_queued(job_id, ("high", "default", "low")[n % 3]) for n, job_id in enumerate(ids)]
                if batch:  # half of the previous batch's jobs finish in this one, as a stream interleaves them
                    stream += [
                        _finished(f"{name}-{batch - 1}-{n}", ("high", "default", "low")[n % 3]) for n in range(10)
                    ]
                while True:
                    try:
                        apply_events(stream)
                        break
                    except OperationalError as exc:  # a deadlock: the recorder tries the batch again
                        assert is_transient(exc)
                        retried[name] += 1
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=recorder, args=(f"r{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert not errors, errors
    counts = assert_counts_match()
    # 4 recorders x 15 batches x 20 jobs queued, 4 x 14 x 10 of them finished since.
    assert sum(counts.values()) == 4 * 15 * 20 - 4 * 14 * 10, f"batches tried again: {dict(retried)}"


def _migrate(targets: list[tuple[str, str]]) -> Any:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def _latest_schema_afterwards():
    yield
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.usefixtures("_latest_schema_afterwards")
def test_the_migration_counts_existing_records_and_its_reverse_removes_the_triggers():
    old = _migrate([("workers", "0014_bulk_operation")])
    Record = old.get_model("workers", "JobRecord")
    for n, (queue, status) in enumerate([("default", "dead"), ("default", "dead"), ("low", "queued"),
                                         ("low", "finished"), ("default", "started")]):  # fmt: skip
        Record.objects.create(job_id=f"before-{n}", queue=queue, func="f", status=status)
    Record.objects.create(job_id="discarded", queue="default", func="f", status="dead", discarded_at=timezone.now())

    new = _migrate([("workers", "0015_job_status_counts")])
    Count = new.get_model("workers", "JobStatusCount")
    counted = {(c.queue, c.status): c.n for c in Count.objects.all()}
    assert counted == {("default", "dead"): 2, ("low", "queued"): 1, ("default", "started"): 1}

    old = _migrate([("workers", "0014_bulk_operation")])
    assert JobStatusCount._meta.db_table not in connection.introspection.table_names()
    # No trigger is left to write to the table that is gone.
    old.get_model("workers", "JobRecord").objects.create(job_id="after", queue="default", func="f", status="queued")
    old.get_model("workers", "JobRecord").objects.filter(job_id="before-0").delete()
