"""What an operator does, in headless Chromium (Playwright driving Debian's /usr/bin/chromium).

Run alone with ``pytest -m browser``. Writes the README's screenshot to docs/dashboard.png.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import timedelta

import pytest

from tests.browser import launched_chromium
from tests.conftest import ROOT, create_operator, wait_for
from workers import enqueue
from workers.models import JobRecord, JobStatus
from workers.recording.consumer import drain

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with launched_chromium() as chromium:
        yield chromium


@pytest.fixture
def page(browser, live_server):
    create_operator("ops", "correct horse")
    context = browser.new_context(viewport={"width": 1360, "height": 900}, base_url=live_server.url)
    page = context.new_page()
    page.set_default_timeout(20_000)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    page.dialogs = dialogs
    page.goto("/dashboard/")
    assert "/login/?next=" in page.url and "/admin/" not in page.url  # staff only: the login page first
    page.fill("#id_username", "ops")
    page.fill("#id_password", "correct horse")
    page.click("input[type=submit]")
    expect(page.locator("h1")).to_contain_text("Overview")
    yield page
    context.close()


def _length_cell(page, queue: str):
    return page.locator(f'tr[data-queue="{queue}"] td[data-col="length"]')


def test_queue_length_changes_without_reload_and_polling_pauses(page):
    page.evaluate("window.__sameDocument = true")
    expect(_length_cell(page, "low")).to_have_text("0")

    for n in range(3):
        enqueue("tests.jobfuncs.add", n, n, queue="low")

    expect(_length_cell(page, "low")).to_have_text("3")
    assert page.evaluate("window.__sameDocument") is True  # updated in place, no reload

    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.click("#live-toggle")
    expect(page.locator("#live-toggle")).to_have_text("Resume live updates")
    enqueue("tests.jobfuncs.add", 9, 9, queue="low")
    page.wait_for_timeout(4000)
    assert not [url for url in requests if url.endswith("/dashboard/")]
    expect(_length_cell(page, "low")).to_have_text("3")  # paused: the panel stays as it was

    page.click("#live-toggle")
    expect(_length_cell(page, "low")).to_have_text("4")

    # A hidden tab does not poll either.
    page.evaluate(
        """() => { Object.defineProperty(document, 'visibilityState', {value: 'hidden', configurable: true});
                   document.dispatchEvent(new Event('visibilitychange')); }"""
    )
    requests.clear()
    page.wait_for_timeout(4000)
    assert not [url for url in requests if url.endswith("/dashboard/")]


def test_pausing_live_updates_holds_the_schedules_and_keys_pages_too(page):
    def polled(path: str):
        return lambda request: request.resource_type in ("xhr", "fetch") and request.url.endswith(path)

    page.goto("/dashboard/schedules/")
    with page.expect_request(polled("/dashboard/schedules/"), timeout=10_000):
        pass  # the table refreshes itself every 5 s
    page.click("#live-toggle")
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url) if request.resource_type == "xhr" else None)
    page.wait_for_timeout(6000)
    page.goto("/dashboard/keys/")  # the pause holds on the next page too
    expect(page.locator("#live-toggle")).to_have_text("Resume live updates")
    page.wait_for_timeout(3000)
    assert requests == []

    with page.expect_request(polled("/dashboard/keys/"), timeout=10_000):
        page.click("#live-toggle")


def test_retry_a_dead_job_from_the_dead_letter_list_and_watch_it_finish(page, start_worker):
    job = enqueue("tests.jobfuncs.flaky", "browser", 1, max_attempts=1)
    start_worker()
    wait_for(lambda: JobRecord.objects.filter(job_id=job.id, status=JobStatus.DEAD).exists(), timeout=30)

    page.click("nav >> text=Dead letters")
    row = page.locator(f'#dead-letter-list tr[data-job-id="{job.id}"]')
    expect(row).to_contain_text("dead")
    row.locator("input[name=job_id]").check()
    page.click("#dead-letters >> text=Retry selected")
    expect(page.locator("#dead-letters .notice")).to_have_text("Retried 1 job.")

    # Straight to the job: it may still read "dead" for a moment, and updates itself.
    page.goto(f"/dashboard/jobs/{job.id}/")
    expect(page.locator("#job-status")).to_have_text("finished", timeout=20_000)
    expect(page.locator("#errors")).to_contain_text("transient failure 1 of 1")
    assert page.locator("#job-live[data-poll]").count() == 0  # the ended job stopped polling


def test_script_in_job_args_and_exception_message_shows_as_text(page, run_burst):
    payload = "<script>window.__pwned = true; alert('pwned')</script>"
    job = enqueue("tests.jobfuncs.fail", payload, max_attempts=1)
    # A simple (non-forking) worker: a fork from inside Playwright's event loop would take
    # this process's database connection along and break it for the tests that follow.
    run_burst(simple=True)

    page.goto(f"/dashboard/jobs/{job.id}/")
    expect(page.locator("#job-status")).to_have_text("dead")
    expect(page.locator("dl.facts")).to_contain_text(payload)
    expect(page.locator("#errors summary").first).to_contain_text(payload)
    page.goto(f"/dashboard/jobs/?q={job.id}")
    expect(page.locator(f'tr[data-job-id="{job.id}"]')).to_contain_text("<script>window.__pwned")
    assert page.evaluate("window.__pwned === undefined")
    assert page.dialogs == []


def test_readme_screenshot_of_a_busy_dashboard(page, start_worker, redis_conn, tmp_path):
    from bench.seed import seed_records

    seed_records(2400, dead=23, retrying=3, span=timedelta(hours=24), prefix="demo")
    for _ in range(2):
        enqueue("tests.jobfuncs.slow_steps", 40, 0.5, queue="default")
    for n in range(6):
        enqueue("tests.jobfuncs.flaky", f"shot{n}", 1 if n % 3 else 9, queue="high", max_attempts=2)
    page.goto("/dashboard/queues/low/")
    page.click("#queue-panel >> text=Pause")
    expect(page.locator("#queue-state")).to_have_text("paused")
    for n in range(14):
        enqueue("tests.jobfuncs.add", n, n, queue="low")
    start_worker("high", "default", name="worker-1")
    start_worker("default", name="worker-2", simple=True)
    wait_for(lambda: JobRecord.objects.filter(status=JobStatus.STARTED, progress__gte=5).count() >= 2, timeout=40)
    drain()

    page.goto("/dashboard/")
    expect(_length_cell(page, "low")).to_have_text("14")
    expect(page.locator('tr[data-queue="default"]')).to_contain_text(re.compile(r"2 / 0"))
    page.wait_for_timeout(1500)
    # The README's picture is rewritten only when asked for, so that a test run leaves the
    # checkout as it found it: JOBSITE_UPDATE_SCREENSHOT=1 make test
    if os.environ.get("JOBSITE_UPDATE_SCREENSHOT") == "1":
        target = ROOT / "docs" / "dashboard.png"
    else:
        target = tmp_path / "dashboard.png"
    page.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > 20_000
