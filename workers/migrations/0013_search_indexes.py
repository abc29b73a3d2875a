"""Indexes for the job search language, on PostgreSQL (SQLite runs the same searches without).

- pg_trgm's trigram GIN over the argument reprs and the last error: free words and
  `error:` text (`ILIKE '%word%'`) are index lookups, so a word in no job reads nothing;
- a GIN (jsonb_path_ops) over the JSON arguments: `args.order_id:42` (`@@` jsonpath).
A job id's start (`id:7334c2`) is looked up in the `varchar_pattern_ops` index Django keeps
beside the unique job id (0001).

Built CONCURRENTLY (hence not atomic): on a long history the recorder keeps writing while
they build.
"""

from django.db import migrations

INDEXES = {
    "jobrecord_search_text": (
        "USING gin (args_repr gin_trgm_ops, kwargs_repr gin_trgm_ops, last_error gin_trgm_ops)"
    ),
    "jobrecord_search_args": "USING gin (args_json jsonb_path_ops)",
}


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    table = apps.get_model("workers", "JobRecord")._meta.db_table
    with schema_editor.connection.cursor() as cursor:
        try:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        except Exception as exc:
            raise RuntimeError(
                "the job search needs PostgreSQL's pg_trgm extension (package postgresql-contrib); "
                "a superuser can run `CREATE EXTENSION pg_trgm` in this database, then migrate again"
            ) from exc
        for name, definition in INDEXES.items():
            # A build that was interrupted leaves an invalid index behind: build it again.
            cursor.execute(
                "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                " WHERE c.relname = %s AND NOT i.indisvalid",
                [name],
            )
            if cursor.fetchone():
                cursor.execute(f"DROP INDEX CONCURRENTLY {name}")
            cursor.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {table} {definition}")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        for name in INDEXES:
            cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("workers", "0012_search_args_json"),
    ]

    operations = [migrations.RunPython(create, drop, elidable=False)]
