"""Settings shared by every environment. The environment is read here and only here."""

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "dev-only-insecure-key-change-me")
DEBUG = env_bool("DJANGO_DEBUG", True)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")

DATABASE_URL = os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

INSTALLED_APPS = [
    # workers before django_rq so that our `rqworker` command (tracking worker, recorder,
    # scheduler on by default) wins over django-rq's plain one.
    "workers",
    "dashboard",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_rq",
    "django_htmx",
    "template_partials",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "jobsite.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "jobsite.wsgi.application"

DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Workers, the recorder and the web server write one SQLite file at once: wait for the
    # lock instead of failing, and take it at BEGIN so two writers never deadlock.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

LOGIN_URL = "admin:login"

# --- RQ -------------------------------------------------------------------------------
# Queues drained in this order by a worker that listens on all of them (priorities).
JOBSITE_QUEUES = env_list("JOBSITE_QUEUES", "high,default,low")

RQ_QUEUES = {name: {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 600} for name in JOBSITE_QUEUES}
RQ = {
    "WORKER_CLASS": "workers.tracking.TrackingWorker",
    "JOB_CLASS": "workers.tracking.TrackedJob",
    "QUEUE_CLASS": "workers.tracking.TrackedQueue",
    # Producers enqueue after the surrounding transaction commits.
    "COMMIT_MODE": "on_db_commit",
}

# --- jobsite --------------------------------------------------------------------------
JOBSITE = {
    # Default retry policy: attempts in all (first run included) and exponential backoff
    # with jitter: delay(n) = min(cap, base * factor ** (n - 1)) * (1 ± jitter).
    "RETRY": {"max_attempts": 3, "base": 5.0, "factor": 2.0, "cap": 3600.0, "jitter": 0.2},
    # Per-queue overrides of any RETRY key, e.g. {"low": {"max_attempts": 5}}.
    "QUEUE_RETRY": {},
    # A worker that has not refreshed its liveness key for this long is dead; its started
    # jobs are failed ("worker died") and retried or dead-lettered.
    "WORKER_ALIVE_TTL": 10,
    "WATCHDOG_INTERVAL": 3,
    # How much of args, kwargs, results and messages is stored and shown.
    "REPR_LIMIT": 2000,
    "TRACEBACK_LIMIT": 20000,
    # Dead jobs keep their RQ payload in Redis this long, so they can be retried.
    "DEAD_JOB_TTL": 90 * 24 * 3600,
    "RECORDER_BATCH": 500,
    # A worker's recorder waits this long (seconds) after a small batch, so that events
    # gather into fewer, larger transactions: records lag the truth by about this much.
    "RECORDER_PAUSE": 0.2,
    # Retention (`manage.py prune_jobs`, run daily by the "prune job history" schedule):
    # ended job records older than this many days are deleted with their errors; dead
    # letters stay until an operator retries or discards them (or --include-dead).
    "RETENTION_DAYS": int(os.environ.get("JOBSITE_RETENTION_DAYS", "30")),
    # Per-minute roll-ups older than this are deleted; the all-time row per queue and
    # function the recorder keeps beside them stays, so /metrics totals never go down.
    "METRIC_RETENTION_DAYS": int(os.environ.get("JOBSITE_METRIC_RETENTION_DAYS", "30")),
    "PRUNE_BATCH": 5000,
    # /metrics: with a token, scrapers send `Authorization: Bearer <token>`; without one,
    # only requests from this machine (loopback) are answered.
    "METRICS_TOKEN": os.environ.get("JOBSITE_METRICS_TOKEN", ""),
}

# Schedules declared in code (synced at start by the scheduler): name, func (a function
# registered with @workers.registry.schedulable), one of cron / interval / at, queue,
# args, kwargs.
JOBSITE_SCHEDULES = [
    {
        "name": "prune job history",
        "func": "workers.jobs.maintenance.prune",
        "cron": "17 3 * * *",
        "queue": "low",
        "args": [],
        "kwargs": {},
    },
]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("DJANGO_LOG_LEVEL", "INFO")},
}
