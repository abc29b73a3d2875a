"""Test settings: the suite points REDIS_URL and DATABASE_URL at resources it owns."""

from .base import *  # noqa: F403
from .base import EXAMPLES, JOBSITE

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

# Short backoff so retry tests take seconds, not minutes.
JOBSITE = {
    **JOBSITE,
    "RETRY": {"max_attempts": 3, "base": 0.2, "factor": 2.0, "cap": 2.0, "jitter": 0.1},
    "WORKER_ALIVE_TTL": 3,
    "WATCHDOG_INTERVAL": 1,
    "KEY_STALL_TIMEOUT": 2,
    "MAINTENANCE_INTERVAL": 2,
    "RECONCILE_INTERVAL": 2,
    "RECONCILE_GRACE": 1,
}

EXAMPLES = {**EXAMPLES, "PAGE_VIEWS_MODE": "redis", "ETL_LAG_SECONDS": 0}

# SQLite tests use a file, not memory, so that worker subprocesses see the same data.
# (PostgreSQL tests get pytest-django's test_<name> database, their own.)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    import os as _os
    import tempfile as _tempfile

    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": _os.path.join(_tempfile.gettempdir(), f"jobsite-test-{_os.getpid()}.sqlite3")
    }
