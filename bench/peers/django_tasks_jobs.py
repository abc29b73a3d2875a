"""The workloads as django-tasks tasks (it imports a task by its function's dotted path)."""

from __future__ import annotations

from django_tasks import task

from . import tasks


@task()
def noop() -> None:
    tasks.noop()


@task()
def sleep5() -> None:
    tasks.sleep5()


@task()
def fail() -> None:
    tasks.fail()
