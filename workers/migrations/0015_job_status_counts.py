"""Counts of job records per queue and status, kept by triggers on the job table.

/metrics reported them with a COUNT(*) over the partial index of open records, whose cost
grows with the dead letters nobody handled (1 % of the records in bench/seed.py) and with
any backlog. The triggers keep JobStatusCount right whoever writes the job table (the
recorder, services, the admin, a bulk update(), hand-written SQL, other processes):

- PostgreSQL: statement-level triggers with transition tables (INSERT, UPDATE, DELETE)
  add one aggregate per statement, not one write per row: a recorder's batch of 500
  records is a few upserts, in (queue, status) order. Each session adds to the row of
  its shard (pg_backend_pid() % 16), so concurrent recorders rarely wait on one another.
  A TRUNCATE of the job table empties the counts.
- SQLite: row-level triggers, fired only when a counted (queue, status) changes; one
  writer at a time, so one shard (0).

What is counted (the open statuses; dead ones only while not discarded) is written out
below as this migration's own copy: a change of statuses.OPEN_STATUSES needs a migration
that creates the functions and triggers again (tests/workers/test_status_counts.py fails
until then). On SQLite, a later migration that remakes the job table (Django copies it to
a new table) drops these triggers with the old table and must create them again; the
same test says so.

Created, and the counts taken from the rows, in one transaction that locks the job table
against writes first: a recorder writing meanwhile waits, then counts through the triggers,
so nothing is counted twice or missed. The reverse drops the triggers, then the table.
"""

from django.db import migrations, models

TABLE = "workers_jobrecord"
COUNTS = "workers_jobstatuscount"
SHARDS = 16


def counted(row: str) -> str:
    """SQL: is ``row`` (a job record) counted, as models.STATUS_COUNTED says. Written as the
    jobrecord_open index's condition and more, so the backfill reads that index alone."""
    return (
        f"({row}.status IN ('queued', 'scheduled', 'deferred', 'started', 'retrying', 'dead')"
        f" AND NOT ({row}.status = 'dead' AND {row}.discarded_at IS NOT NULL))"
    )


def _upsert(select: str) -> str:
    return (
        f"INSERT INTO {COUNTS} AS c (queue, status, shard, n) {select}"
        " ON CONFLICT (queue, status, shard) DO UPDATE SET n = c.n + EXCLUDED.n"
    )


_SHARD = f"pg_backend_pid() % {SHARDS}"
POSTGRESQL = {
    # name: (event, transition tables, the function's body)
    "jobsite_status_count_insert": (
        "INSERT",
        "REFERENCING NEW TABLE AS new_rows",
        _upsert(
            f"SELECT r.queue, r.status, {_SHARD}, count(*) FROM new_rows r WHERE {counted('r')}"
            " GROUP BY r.queue, r.status ORDER BY r.queue, r.status"
        ),
    ),
    "jobsite_status_count_update": (
        "UPDATE",
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
        # A row whose counted (queue, status) did not change adds -1 and +1 to the same key:
        # nothing is written for it (progress, timings, a no-op save()).
        _upsert(
            f"SELECT d.queue, d.status, {_SHARD}, sum(d.delta) FROM ("
            f" SELECT r.queue, r.status, -1 AS delta FROM old_rows r WHERE {counted('r')}"
            f" UNION ALL SELECT r.queue, r.status, 1 FROM new_rows r WHERE {counted('r')}"
            ") d GROUP BY d.queue, d.status HAVING sum(d.delta) <> 0 ORDER BY d.queue, d.status"
        ),
    ),
    "jobsite_status_count_delete": (
        "DELETE",
        "REFERENCING OLD TABLE AS old_rows",
        _upsert(
            f"SELECT r.queue, r.status, {_SHARD}, -count(*) FROM old_rows r WHERE {counted('r')}"
            " GROUP BY r.queue, r.status ORDER BY r.queue, r.status"
        ),
    ),
    "jobsite_status_count_truncate": ("TRUNCATE", "", f"DELETE FROM {COUNTS}"),
}


def _sqlite_add(row: str) -> str:
    # "WHERE" keeps SQLite from reading ON CONFLICT as a join's ON.
    return (
        f"INSERT INTO {COUNTS} (queue, status, shard, n) SELECT {row}.queue, {row}.status, 0, 1"
        f" WHERE {counted(row)} ON CONFLICT (queue, status, shard) DO UPDATE SET n = n + 1;"
    )


def _sqlite_subtract(row: str) -> str:
    # Only a row that is there: Django's flush empties the tables one by one in any order,
    # and the counts emptied first must stay empty while the records go, not turn negative.
    return (
        f"UPDATE {COUNTS} SET n = n - 1"
        f" WHERE queue = {row}.queue AND status = {row}.status AND shard = 0 AND {counted(row)};"
    )


SQLITE = {
    "jobsite_status_count_insert": f"AFTER INSERT ON {TABLE} FOR EACH ROW WHEN {counted('NEW')}"
    f" BEGIN {_sqlite_add('NEW')} END",
    # Fired only when what decides the count moved; a save() of the whole row is not that.
    "jobsite_status_count_update": f"AFTER UPDATE OF status, queue, discarded_at ON {TABLE} FOR EACH ROW"
    " WHEN OLD.status IS NOT NEW.status OR OLD.queue IS NOT NEW.queue"
    " OR (OLD.discarded_at IS NULL) <> (NEW.discarded_at IS NULL)"
    f" BEGIN {_sqlite_subtract('OLD')} {_sqlite_add('NEW')} END",
    "jobsite_status_count_delete": f"AFTER DELETE ON {TABLE} FOR EACH ROW WHEN {counted('OLD')}"
    f" BEGIN {_sqlite_subtract('OLD')} END",
}

BACKFILL = (
    f"INSERT INTO {COUNTS} (queue, status, shard, n)"
    f" SELECT r.queue, r.status, 0, count(*) FROM {TABLE} r WHERE {counted('r')} GROUP BY r.queue, r.status"
)


def create(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    with schema_editor.connection.cursor() as cursor:
        if vendor == "postgresql":
            # Writers wait from here to the commit: the backfill sees every committed row,
            # and every later change reaches the counts through the triggers.
            cursor.execute(f"LOCK TABLE {TABLE} IN SHARE ROW EXCLUSIVE MODE")
            for name, (event, transition, body) in POSTGRESQL.items():
                cursor.execute(
                    f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$"
                    f" BEGIN {body}; RETURN NULL; END $$"
                )
                cursor.execute(
                    f"CREATE TRIGGER {name} AFTER {event} ON {TABLE} {transition}"
                    f" FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
                )
        elif vendor == "sqlite":
            for name, definition in SQLITE.items():
                cursor.execute(f"CREATE TRIGGER {name} {definition}")
        else:
            raise RuntimeError(f"the job status counts have triggers for PostgreSQL and SQLite, not {vendor}")
        cursor.execute(BACKFILL)


def drop(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        if schema_editor.connection.vendor == "postgresql":
            for name in POSTGRESQL:
                cursor.execute(f"DROP TRIGGER IF EXISTS {name} ON {TABLE}")
                cursor.execute(f"DROP FUNCTION IF EXISTS {name}()")
        else:
            for name in SQLITE:
                cursor.execute(f"DROP TRIGGER IF EXISTS {name}")


class Migration(migrations.Migration):

    dependencies = [
        ('workers', '0014_bulk_operation'),
    ]

    operations = [
        migrations.CreateModel(
            name='JobStatusCount',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('queue', models.CharField(max_length=100)),
                ('status', models.CharField(max_length=16)),
                ('shard', models.SmallIntegerField(default=0)),
                ('n', models.BigIntegerField(default=0)),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('queue', 'status', 'shard'), name='jobstatuscount_one_per_shard')],
            },
        ),
        migrations.RunPython(create, drop, elidable=False),
    ]
