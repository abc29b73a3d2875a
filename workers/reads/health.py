"""Does jobsite's backing state answer? The database and Redis, each checked for real."""

from __future__ import annotations

from django.db import connection

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
