"""The workloads as each peer declares tasks. Imported only in that peer's venv: each
block imports its peer's package when that peer is the one running (``BENCH_PEER``)."""

from __future__ import annotations

import os
from typing import Any

from . import tasks

PEER = os.environ.get("BENCH_PEER", "")
TASKS: dict[str, Any] = {}

if PEER.startswith("celery"):
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.peers.settings")
    import django

    django.setup()
    from celery import Celery

    celery = Celery("bench")
    celery.config_from_object("django.conf:settings", namespace="CELERY")
    for _name in tasks.WORKLOADS:
        TASKS[_name] = celery.task(name=f"bench.{_name}", queue="bench")(getattr(tasks, _name))

elif PEER == "procrastinate":
    from procrastinate import App, PsycopgConnector

    procrastinate = App(
        connector=PsycopgConnector(
            conninfo=f"host={os.environ.get('BENCH_PG_HOST', '127.0.0.1')} "
            f"port={os.environ.get('BENCH_PG_PORT', '5432')} user={os.environ.get('BENCH_PG_USER', 'postgres')} "
            f"dbname={os.environ['BENCH_PEER_DB']}"
        )
    )
    for _name in tasks.WORKLOADS:
        TASKS[_name] = procrastinate.task(name=f"bench.{_name}", queue="bench")(getattr(tasks, _name))

elif PEER == "django-tasks":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.peers.settings")
    import django

    django.setup()
    # django-tasks finds a task by its function's dotted path: they are declared there.
    from .django_tasks_jobs import fail, noop, sleep5

    TASKS.update(noop=noop, sleep5=sleep5, fail=fail)
