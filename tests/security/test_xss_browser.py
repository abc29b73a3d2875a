"""XSS payloads in job data stay inert in a real browser (headless Chromium via Playwright).

Payloads travel the real way: as job args and kwargs, exception messages, log lines and a
function name, through real workers and the recorder, then into the dashboard pages.
A payload that ran would open a dialog (alert/confirm/prompt): none may fire.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from rq import Queue

from alerts.models import Alert
from tests.security.routes import route
from workers import enqueue
from workers.models import JobRecord
from workers.redis import connection as redis_connection

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.slow]

PAYLOADS = [
    "<script>alert('xss-script')</script>",
    '"><img src=x onerror="alert(\'xss-img\')">',
    "'><svg onload=alert('xss-svg')>",
    "</textarea><script>alert('xss-textarea')</script>",
    "<iframe srcdoc=\"<script>parent.alert('xss-iframe')</script>\"></iframe>",
    "javascript:alert('xss-href')",
    "<a href=\"javascript:alert('xss-link')\">click</a>",
    '<div hx-get="/dashboard/" hx-trigger="load" hx-on::after-request="alert(\'xss-htmx\')">x</div>',
    "{{ request.user }}{% debug %}",
    "<body onload=alert('xss-body')>",
    "<details open ontoggle=alert('xss-details')>",
    "\u202e<script>alert('xss-rtl')</script>",
]
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync"]  # fmt: skip


@pytest.fixture
def hostile_jobs(run_burst):
    """Real jobs carrying every payload, run and recorded; returns their ids."""
    ids = []
    for payload in PAYLOADS:
        ids.append(enqueue("tests.jobfuncs.log_and_fail", payload, max_attempts=1).id)
        ids.append(enqueue("tests.jobfuncs.blob_size", blob=payload).id)
    # A function name no code has: the worker records the name and the import error.
    plain = Queue("default", connection=redis_connection())
    ids.append(plain.enqueue("tests.jobfuncs.x<img src=x onerror=alert('xss-func')>").id)
    run_burst(simple=True)
    for payload in PAYLOADS:
        Alert.objects.create(rule=payload[:100], kind="queue_length", subject="default", message=payload,
                             opened_at=JobRecord.objects.first().enqueued_at)  # fmt: skip
    return ids


@pytest.fixture
def browser_page(live_server, monkeypatch):
    sync_api = pytest.importorskip("playwright.sync_api")
    # Playwright's sync API runs an event loop in this thread; the ORM calls the test makes
    # around it are still plain synchronous calls.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    staff = get_user_model().objects.create_superuser("xss", password="pw")
    client = Client()
    client.force_login(staff)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=BROWSER_ARGS)
        context = browser.new_context()
        context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}])
        page = context.new_page()
        page.dialogs = []
        page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
        page.evaluate("alert('probe')")  # the detector itself works
        assert page.dialogs == ["probe"]
        page.dialogs.clear()
        yield page
        browser.close()


def _visit(page, url: str) -> str:
    page.goto(url)
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(300)  # let htmx's load triggers and any injected handler run
    return page.inner_text("body")


def test_alert_history_shows_payloads_as_text(hostile_jobs, browser_page, live_server):
    text = _visit(browser_page, f"{live_server.url}/dashboard/alerts/")

    assert browser_page.dialogs == []
    for payload in PAYLOADS:
        assert payload.strip("\u202e")[:40] in text
    assert browser_page.locator("#alert-history script, #alert-history img, #alert-history svg").count() == 0


@pytest.mark.parametrize("template", ["/dashboard/", "/dashboard/jobs/", "/dashboard/dead-letters/"])
def test_dashboard_lists_keep_payloads_inert(hostile_jobs, browser_page, live_server, template):
    path = route(template)

    text = _visit(browser_page, f"{live_server.url}{path}")

    assert browser_page.dialogs == []
    if template != "/dashboard/":
        assert "<script>alert('xss-script')</script>" in text


def test_job_detail_pages_keep_args_errors_logs_and_names_inert(hostile_jobs, browser_page, live_server):
    route("/dashboard/jobs/x/")
    shown = 0
    for job_id in hostile_jobs:
        text = _visit(browser_page, f"{live_server.url}/dashboard/jobs/{job_id}/")
        assert browser_page.dialogs == [], job_id
        record = JobRecord.objects.get(job_id=job_id)
        stored = record.args_repr if record.args_repr != "()" else record.kwargs_repr
        if stored not in ("()", "{}"):
            # The arguments as recorded (Python's repr of the payload) are on the page as text.
            assert stored[:40] in text, job_id
            shown += 1
    assert shown == 2 * len(PAYLOADS)
    assert browser_page.dialogs == []
