"""The dashboard's URLs (shared/DESIGN.md), for the access, fuzz and browser tests."""

from __future__ import annotations

import pytest
from django.urls import NoReverseMatch, Resolver404, resolve

PAGES = [
    "/dashboard/",
    "/dashboard/jobs/",
    "/dashboard/jobs/{job_id}/",
    "/dashboard/dead-letters/",
    "/dashboard/schedules/",
    "/dashboard/workers/",
    "/dashboard/queues/default/",
    "/dashboard/alerts/",
    "/dashboard/alerts/banner/",
    "/dashboard/audit/",
    "/dashboard/unapplied-events/",
]
ACTIONS = [
    "/dashboard/jobs/{job_id}/retry/",
    "/dashboard/jobs/{job_id}/cancel/",
    "/dashboard/jobs/bulk/",
    "/dashboard/dead-letters/bulk/",
    "/dashboard/queues/default/pause/",
    "/dashboard/queues/default/resume/",
    "/dashboard/schedules/1/pause/",
    "/dashboard/schedules/1/resume/",
    "/dashboard/schedules/1/run/",
    "/dashboard/alerts/1/acknowledge/",
    "/dashboard/alerts/1/mute/",
    "/dashboard/unapplied-events/delete/",
]
# Filter and query parameters of the list pages, and the values they take.
JOB_FILTERS = ["status", "queue", "func", "q", "since", "until", "date_from", "date_to", "after", "before", "cursor"]


def route(path: str) -> str:
    """``path``, which the project must serve: a URL of the contract gone missing fails."""
    try:
        resolve(path.split("?", 1)[0])
    except (Resolver404, NoReverseMatch):
        pytest.fail(f"{path} is a dashboard URL of shared/DESIGN.md, and nothing serves it")
    return path
