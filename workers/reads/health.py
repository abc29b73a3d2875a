"""Does jobsite's backing state answer? The database and Redis, each checked for real.

Two questions, two answers (``/healthz`` and ``/readyz``):
- ``health_get``: do the database and Redis answer?
- ``readiness_get``: that, and is the database's schema the one this code expects (no
  migration of this release left unapplied)? A web process is ready to take traffic only
  then: before `migrate` has run, new code would fail on missing tables or columns.
"""

from __future__ import annotations

from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from ..redis import connection as redis_connection


def health_get() -> dict[str, str]:
    """``{"database": "ok" | "error: <type>", "redis": ...}``: never raises."""
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        redis_connection().ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {type(exc).__name__}"
    return checks


def readiness_get() -> dict[str, str]:
    """``health_get()`` plus ``"migrations": "ok" | "<n> unapplied" | ...``: never raises."""
    checks = health_get()
    if checks["database"] != "ok":
        checks["migrations"] = "not checked: no database"
        return checks
    try:
        executor = MigrationExecutor(connection)
        unapplied = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception as exc:
        checks["migrations"] = f"error: {type(exc).__name__}"
    else:
        checks["migrations"] = f"{len(unapplied)} unapplied" if unapplied else "ok"
    return checks
