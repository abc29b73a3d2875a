"""The three workloads, as plain functions every peer can run (RQ and django-q2 by dotted
path; Celery, procrastinate and django-tasks through their own decorators, in ``apps``)."""

from __future__ import annotations

import time

WORKLOADS = ("noop", "sleep5", "fail")


def noop() -> None:
    return None


def sleep5() -> None:
    time.sleep(0.005)


def fail() -> None:
    raise RuntimeError("bench-peers: this job fails on purpose")
