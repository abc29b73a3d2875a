"""What every dashboard page shares (templates/dashboard/base.html): the nav, the notices,
and live panels that all poll through dashboard.js, so "Pause live updates" holds them all."""

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
    "/dashboard/queues/",
    "/dashboard/queues/default/",
    "/dashboard/alerts/",
    "/dashboard/audit/",
    "/dashboard/examples/",
]
NAV = ["overview", "jobs", "dead_letters", "schedules", "keys", "workers", "queues", "alerts", "audit"]
# Pages whose live panel polls; the lists (jobs, dead letters) poll only their "N new" bar,
# the others (the audit trail, alerts) change on request.
POLLED = {
    "/dashboard/": "overview-panels",
    "/dashboard/jobs/": "new-rows",
    "/dashboard/dead-letters/": "new-rows",
    "/dashboard/queues/": "queues-panel",
    "/dashboard/jobs/live-job/": "job-live",
    "/dashboard/schedules/": "schedule-table",
    "/dashboard/keys/": "key-table",
    "/dashboard/workers/": "worker-table",
    "/dashboard/queues/default/": "queue-panel",
    "/dashboard/examples/": "examples-panels",
}


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


@pytest.mark.parametrize("url", POLLED)
def test_live_panels_poll_through_dashboard_js(staff_client, url):
    body = staff_client.get(url).content.decode()

    panel = re.search(rf'<[a-z]+ id="{POLLED[url]}"[^>]*>', body)
    assert panel, url
    # dashboard.js fires jobsite:poll at elements with data-poll, and stops while paused.
    assert 'hx-trigger="jobsite:poll"' in panel[0] and "data-poll=" in panel[0]
    assert not re.search(r'hx-trigger="[^"]*every', body)  # no panel polls on a timer of its own
