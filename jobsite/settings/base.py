"""Settings shared by every environment. The environment is read here and only here."""

import os
import re
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, str(default)).strip()
    if not value.isdigit():
        raise ImproperlyConfigured(f"{name} must be a whole number like {default}, not {value!r}")
    return int(value)


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "dev-only-insecure-key-change-me")
DEBUG = env_bool("DJANGO_DEBUG", True)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")

DATABASE_URL = os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")


def parse_sentinels(value: str) -> list[tuple[str, int]]:
    """``"10.0.0.1:26379,10.0.0.2:26379,[::1]:26379"`` -> ``[("10.0.0.1", 26379), ...]``."""
    sentinels = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ImproperlyConfigured(
                f"REDIS_SENTINELS: {item!r} is not host:port; give the sentinels as a comma-separated list "
                "like 10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379"
            )
        sentinels.append((host, int(port)))
    return sentinels


# Redis: one server at REDIS_URL, or the master that Sentinel names. With REDIS_SENTINELS
# every client asks the sentinels for the current master and follows a fail-over on its
# own; REDIS_URL is then not used, so setting both is a mistake we point out.
REDIS_SENTINELS = parse_sentinels(os.environ.get("REDIS_SENTINELS", ""))
REDIS_SENTINEL_MASTER = os.environ.get("REDIS_SENTINEL_MASTER", "")
REDIS_PASSWORD = os.environ.get("REDIS_PASSWORD", "")  # the master's and replicas' (requirepass)
REDIS_SENTINEL_PASSWORD = os.environ.get("REDIS_SENTINEL_PASSWORD", "")  # the sentinels' own, if any
REDIS_DB = env_int("REDIS_DB", 0)
if REDIS_SENTINELS:
    if "REDIS_URL" in os.environ:
        raise ImproperlyConfigured("Set REDIS_URL or REDIS_SENTINELS, not both: with Sentinel, unset REDIS_URL.")
    if not REDIS_SENTINEL_MASTER:
        raise ImproperlyConfigured(
            "REDIS_SENTINELS is set but REDIS_SENTINEL_MASTER is not: set it to the name the sentinels "
            "monitor (the <name> of `sentinel monitor <name> <ip> <port> <quorum>`)."
        )
elif {"REDIS_SENTINEL_MASTER", "REDIS_PASSWORD", "REDIS_SENTINEL_PASSWORD", "REDIS_DB"} & set(os.environ):
    raise ImproperlyConfigured(
        "REDIS_SENTINEL_MASTER, REDIS_PASSWORD, REDIS_SENTINEL_PASSWORD and REDIS_DB go with REDIS_SENTINELS; "
        "without Sentinel, put the password and database in REDIS_URL (redis://:password@host:6379/0)."
    )
# Unused with Sentinel, and empty then, so that nothing falls back to a local Redis unseen.
REDIS_URL = "" if REDIS_SENTINELS else os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

INSTALLED_APPS = [
    # workers before django_rq so that our `rqworker` command (tracking worker, recorder,
    # scheduler on by default) wins over django-rq's plain one.
    "workers",
    "dashboard",
    "examples",
    "alerts",
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
    # CSP and friends on every response; a Redis outage answers 503 instead of a 500.
    "dashboard.middleware.SecurityHeadersMiddleware",
    "dashboard.middleware.QueueUnavailableMiddleware",
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
                "dashboard.context_processors.access",
                "dashboard.context_processors.alerts",
            ],
        },
    },
]

WSGI_APPLICATION = "jobsite.wsgi.application"

# Persistent connections are checked before reuse: after a database restart the first
# request gets a new connection instead of an error.
try:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
except Exception as exc:  # the parser raises several types; manage.py prints this one line
    shown = re.sub(r"//[^/@]*@", "//***@", DATABASE_URL)  # no password in the message
    why = " ".join(str(exc).split(". ")[0].split())[:200]
    raise ImproperlyConfigured(
        f"DATABASE_URL {shown!r} is not a database URL ({type(exc).__name__}: {why}); "
        "e.g. postgres://user:pass@host:5432/jobsite or sqlite:////path/to/db.sqlite3"
    ) from exc
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A database host that does not answer fails fast: a worker's recorder retries later
    # instead of hanging (and holding up the worker's next fork) on a dead connection.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
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
# Where `collectstatic` writes and, in production, where WhiteNoise serves from.
STATIC_ROOT = Path(os.environ.get("DJANGO_STATIC_ROOT") or BASE_DIR / "staticfiles")

# The dashboard's own sign-in page (dashboard/views/login.py); /admin/login/ works too.
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard:overview"
LOGOUT_REDIRECT_URL = "login"

# Mail goes to the console unless configured (production.py defaults to SMTP).
EMAIL_BACKEND = os.environ.get("DJANGO_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
# --- security (production.py adds HTTPS-only cookies and HSTS) -------------------------
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# No inline script and no third-party origin: htmx is served from our own static files,
# so an escaped-but-injected <script> in job data could not run even if escaping failed.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

# --- RQ -------------------------------------------------------------------------------
# Queues drained in this order by a worker that listens on all of them (priorities).
JOBSITE_QUEUES = env_list("JOBSITE_QUEUES", "high,default,low")


def _with_timeouts(url: str) -> str:
    """Producers (web requests) fail fast when Redis is away instead of hanging; workers
    raise socket_timeout to what their blocking dequeue needs on their own."""
    extra = "socket_connect_timeout=2&socket_timeout=5"
    return url if "timeout=" in url else f"{url}{'&' if '?' in url else '?'}{extra}"


# What job payloads are written with: "pickle" (RQ's default: any Python object) or
# "json" (only JSON types; a producer can never make a worker unpickle arbitrary data).
# Producers and workers must agree: both read this setting.
JOBSITE_SERIALIZER = os.environ.get("JOBSITE_SERIALIZER", "pickle")

# jobsite's own producers and workers get their client from workers.redis; this is what
# django-rq's own tools (and producers calling django_rq directly) connect with: the same
# Redis, through the same sentinels.
if REDIS_SENTINELS:
    _RQ_CONNECTION: dict[str, object] = {
        "SENTINELS": REDIS_SENTINELS,
        "MASTER_NAME": REDIS_SENTINEL_MASTER,
        "DB": REDIS_DB,
        "PASSWORD": REDIS_PASSWORD or None,
        "SOCKET_TIMEOUT": 5,
        "CONNECTION_KWARGS": {"socket_connect_timeout": 2},
        "SENTINEL_KWARGS": {
            "password": REDIS_SENTINEL_PASSWORD or None,
            "socket_timeout": 0.5,
            "socket_connect_timeout": 0.5,
        },
    }
else:
    _RQ_CONNECTION = {"URL": _with_timeouts(REDIS_URL)}
RQ_QUEUES = {
    name: {**_RQ_CONNECTION, "DEFAULT_TIMEOUT": 600, "SERIALIZER": JOBSITE_SERIALIZER} for name in JOBSITE_QUEUES
}
RQ = {
    "WORKER_CLASS": "workers.runtime.worker.TrackingWorker",
    "JOB_CLASS": "workers.rq.job.TrackedJob",
    "QUEUE_CLASS": "workers.rq.queue.TrackedQueue",
    # Producers enqueue after the surrounding transaction commits.
    "COMMIT_MODE": "on_db_commit",
}

# --- jobsite --------------------------------------------------------------------------
# Only what the environment sets: every other key of JOBSITE, with its default and what it
# means, is in workers/conf.py (DEFAULTS); add a key here to change it.
JOBSITE: dict[str, object] = {
    "RETENTION_DAYS": int(os.environ.get("JOBSITE_RETENTION_DAYS", "30")),
    "METRIC_RETENTION_DAYS": int(os.environ.get("JOBSITE_METRIC_RETENTION_DAYS", "30")),
    "METRICS_TOKEN": os.environ.get("JOBSITE_METRICS_TOKEN", ""),
}
if env_int("JOBSITE_ENQUEUE_WAIT_REPLICAS", 0):
    # enqueue() returns only once this many replicas have the job (Redis WAIT), else raises.
    JOBSITE["ENQUEUE_WAIT"] = {
        "replicas": env_int("JOBSITE_ENQUEUE_WAIT_REPLICAS", 0),
        "timeout_ms": env_int("JOBSITE_ENQUEUE_WAIT_TIMEOUT_MS", 100),
    }

# --- alerts ---------------------------------------------------------------------------
# Evaluated by the scheduled job alerts.jobs.alerts_check and `manage.py check_alerts`;
# incidents are kept in alerts.Alert and shown at /dashboard/alerts/. See alerts/rules.py.
JOBSITE_ALERTS = {
    "RULES": [
        {"name": "failure-rate", "kind": "failure_rate", "window": 600, "threshold": 0.25, "min_jobs": 20},
        {"name": "dead-letters", "kind": "dead_letter_growth", "window": 600, "threshold": 10},
        {"name": "backlog", "kind": "queue_length", "threshold": 5000},
        {"name": "stale-queue", "kind": "oldest_job_age", "threshold": 600},
        {"name": "no-worker", "kind": "no_live_worker"},
        {"name": "broken-schedule", "kind": "broken_schedule"},
    ],
    "MAIL_ADMINS": True,  # to settings.ADMINS, when there are any
    "WEBHOOK_URL": os.environ.get("JOBSITE_ALERT_WEBHOOK_URL", ""),  # POSTed JSON
    "WEBHOOK_TIMEOUT": 5,
}
ADMINS = [("jobsite admin", email) for email in env_list("DJANGO_ADMINS", "")]
SERVER_EMAIL = os.environ.get("DJANGO_SERVER_EMAIL", "jobsite@localhost")
EMAIL_SUBJECT_PREFIX = "[jobsite] "

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("DJANGO_LOG_LEVEL", "INFO")},
}

# --- schedules (synced by the scheduler at start; see workers' Schedule) -------------
# Created or updated by name when `run_scheduler` starts. Each: {"name", "func" (an
# @schedulable function's dotted path), one of "cron" (5 fields) / "interval" (seconds) /
# "at" (ISO datetime), and optional "queue", "args", "kwargs", "timezone", "catch_up"
# ("once" | "skip"), "enabled"}. `manage.py check` validates them.
JOBSITE_SCHEDULES = [
    # The worked examples (examples/): the page-view flush, the weekly digest, the ETL.
    {"name": "page views: flush Redis counts", "func": "examples.jobs.pageviews.page_views_flush",
     "interval": 5, "queue": "high", "catch_up": "skip"},
    {"name": "email: weekly digest", "func": "examples.jobs.campaigns.weekly_digest",
     "cron": "0 8 * * 1", "queue": "default", "catch_up": "once"},
    {"name": "ETL: load new orders", "func": "examples.jobs.etl.etl_run_start",
     "interval": 120, "queue": "default", "catch_up": "skip"},
    # Retention: prune old job history every night (JOBSITE RETENTION_DAYS).
    {"name": "prune job history", "func": "workers.jobs.maintenance.prune", "cron": "17 3 * * *", "queue": "low",
     "catch_up": "once"},
    # Alert rules (JOBSITE_ALERTS) are evaluated every minute.
    {"name": "check-alerts", "func": "alerts.jobs.alerts_check", "interval": 60, "queue": "high", "catch_up": "skip"},
]  # fmt: skip

# --- the worked examples ------------------------------------------------------------
EXAMPLES = {
    # "redis": a visit is one HINCRBY, flushed by a job; "direct": one UPDATE per visit.
    "PAGE_VIEWS_MODE": os.environ.get("JOBSITE_PAGE_VIEWS_MODE", "redis"),
    "EMAIL_FROM": "digest@jobsite.example",
    "EMAIL_BATCH_SIZE": 50,
    "EMAIL_QUEUE": "default",
    "ETL_PAGE_SIZE": 200,
    "ETL_QUEUE": "default",
    # Source rows younger than this wait for the next run (a late commit is never skipped).
    "ETL_LAG_SECONDS": 5,
}
