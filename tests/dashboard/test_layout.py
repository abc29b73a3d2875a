"""What every dashboard page shares (templates/dashboard/base.html)."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from tests.factories import JobRecordFactory
from workers.models import JobStatus

pytestmark = pytest.mark.django_db

PAGES = [
    "/dashboard/",
    "/dashboard/jobs/",
    "/dashboard/jobs/live-job/",
    "/dashboard/dead-letters/",
    "/dashboard/schedules/",
    "/dashboard/keys/",
    "/dashboard/workers/",
    "/dashboard/queues/default/",
    "/dashboard/alerts/",
    "/dashboard/examples/",
]
NAV = ["overview", "jobs", "dead_letters", "schedules", "keys", "workers", "queues", "alerts"]


@pytest.fixture(autouse=True)
def running_job():
    return JobRecordFactory(job_id="live-job", status=JobStatus.STARTED)


@pytest.mark.parametrize("url", PAGES)
def test_the_nav_links_every_page_once_alerts_included(staff_client, url):
    body = staff_client.get(url).content.decode()

    nav = body.split('<nav aria-label="Dashboard">', 1)[1].split("</nav>", 1)[0]
    expected = [reverse(f"dashboard:{name}") for name in NAV] + [reverse("examples:dashboard")]
    assert re.findall(r'href="([^"]+)"', nav) == expected
    assert nav.count('aria-current="page"') == 1
