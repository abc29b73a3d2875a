"""The job status counts (``JobStatusCount``) recounted from the job records.

Database triggers keep the counts as the job table changes (migration 0015); a rebuild is
for when they were bypassed: a bulk load with them disabled (``bench/seed.py``'s COPY), a
restore of the job table alone, rows written under ``session_replication_role = replica``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection, transaction
from django.db.models import Count

from ..models import STATUS_COUNTED, JobRecord, JobStatusCount

# The triggers of migration 0015 are named so (jobsite_status_count_insert, ...).
TRIGGER_PREFIX = "jobsite_status_count_"


def job_status_counts_rebuild() -> dict[tuple[str, str], int]:
    """Replace the counts by a fresh ``COUNT(*)`` of the records (one row per pair, shard 0)
    and return them. Safe while recorders write: on PostgreSQL the counts table is locked
    first, so a writer's trigger either committed before the count (and is in it) or adds
    its change after the rebuild commits."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"LOCK TABLE {JobStatusCount._meta.db_table} IN EXCLUSIVE MODE")
        JobStatusCount.objects.all().delete()
        rows = (
            JobRecord.objects.filter(STATUS_COUNTED)
            .values("queue", "status")
            .annotate(n=Count("*"))  # from the jobrecord_open partial index
            .order_by()
        )
        counts = {(row["queue"], row["status"]): row["n"] for row in rows}
        JobStatusCount.objects.bulk_create(
            [JobStatusCount(queue=queue, status=status, shard=0, n=n) for (queue, status), n in counts.items()]
        )
    return counts


def job_status_count_triggers() -> list[str]:
    """The names of the counting triggers on PostgreSQL's job table (none when not migrated)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass AND starts_with(tgname::text, %s)"
            " ORDER BY tgname",
            [JobRecord._meta.db_table, TRIGGER_PREFIX],
        )
        return [name for (name,) in cursor.fetchall()]


@contextmanager
def job_status_counts_suspended() -> Iterator[None]:
    """For a bulk load: inside, the job table's triggers do not count (on PostgreSQL; a
    COPY of millions of rows would otherwise collect them all for one count), and the
    counts are rebuilt at the end. Must run inside a transaction: disabling the triggers
    locks the job table against other writers until the commit, so none goes uncounted,
    and a load that fails rolls the disabling back with it. SQLite keeps counting row by
    row (its loads are small)."""
    if not connection.in_atomic_block:
        raise RuntimeError("job_status_counts_suspended() needs a transaction (transaction.atomic())")
    table = JobRecord._meta.db_table
    triggers = job_status_count_triggers() if connection.vendor == "postgresql" else []
    with connection.cursor() as cursor:
        for name in triggers:
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER {name}")
    yield
    if triggers:
        with connection.cursor() as cursor:
            for name in triggers:
                cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER {name}")
    job_status_counts_rebuild()
