"""Django settings for a peer's venv (Celery + django-celery-results, django-q2,
django-tasks): the peer's apps (``BENCH_PEER``), its own database (``BENCH_PEER_DB``) on
``BENCH_PG_HOST``/``BENCH_PG_PORT``, and the run's Redis (``REDIS_URL``)."""

from __future__ import annotations

import os

PEER = os.environ["BENCH_PEER"]
SECRET_KEY = "bench-peers"  # noqa: S105 (a throwaway project on loopback)
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ["BENCH_PEER_DB"],
        "USER": os.environ.get("BENCH_PG_USER", "postgres"),
        "HOST": os.environ.get("BENCH_PG_HOST", "127.0.0.1"),
        "PORT": os.environ.get("BENCH_PG_PORT", "5432"),
    }
}
REDIS_URL = os.environ["REDIS_URL"]
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth"]
LOGGING_CONFIG = None

if PEER.startswith("celery"):
    INSTALLED_APPS += ["django_celery_results"]
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = "django-db"  # a row per task, as history
    CELERY_TASK_ACKS_LATE = False
    CELERY_WORKER_PREFETCH_MULTIPLIER = 4  # Celery's default
elif PEER == "django-q2":
    INSTALLED_APPS += ["django_q"]
    Q_CLUSTER = {
        "name": "bench",
        "workers": 1,  # one worker process
        "redis": REDIS_URL,
        "timeout": 120,
        "retry": 600,
        "max_attempts": 1,  # retries off
        "ack_failures": True,
        "save_limit": 0,  # keep every success, as history
        "catch_up": False,
        "log_level": "WARNING",
    }
elif PEER == "django-tasks":
    INSTALLED_APPS += ["django_tasks", "django_tasks_db"]
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
