"""Data migrations carry the records a running system already has."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("workers", "0006_runtime_buckets_totals_open_index")]
AFTER = [("workers", "0007_dead_letter_groups")]


@pytest.fixture(autouse=True)
def _latest_schema_afterwards():
    """Later tests need every migration (a later one than AFTER may exist): migrate forward."""
    yield
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_failed_records_get_the_fingerprint_of_their_last_failed_attempt():
    old = _migrate(BEFORE)
    Record, Error = old.get_model("workers", "JobRecord"), old.get_model("workers", "JobError")
    at = datetime(2026, 1, 1, tzinfo=UTC)
    dead = Record.objects.create(job_id="dead", queue="default", func="f", status="dead", attempts=2)
    Error.objects.create(job=dead, attempt=1, exc_type="E", failed_at=at, fingerprint="first")
    Error.objects.create(job=dead, attempt=2, exc_type="E", failed_at=at, fingerprint="second")
    retrying = Record.objects.create(job_id="retrying", queue="default", func="f", status="retrying", attempts=1)
    Error.objects.create(job=retrying, attempt=1, exc_type="E", failed_at=at, fingerprint="only")
    finished = Record.objects.create(job_id="finished", queue="default", func="f", status="finished", attempts=2)
    Error.objects.create(job=finished, attempt=1, exc_type="E", failed_at=at, fingerprint="earlier")

    new = _migrate(AFTER)

    fingerprints = dict(new.get_model("workers", "JobRecord").objects.values_list("job_id", "last_fingerprint"))
    assert fingerprints == {"dead": "second", "retrying": "only", "finished": ""}
