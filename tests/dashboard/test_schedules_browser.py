"""An operator pauses, resumes and runs a schedule in headless Chromium (Debian's)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import tests.schedfuncs  # noqa: F401  (registers the schedulable functions)
from tests.browser import ARGS, CHROMIUM
from workers.models import Schedule
from workers.scheduling.sync import schedule_save

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def page(live_server, admin_user, monkeypatch) -> Iterator[object]:
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are
    # still plain synchronous ones.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        page.goto(f"{live_server.url}/admin/login/?next=/dashboard/schedules/")
        page.fill("#id_username", "admin")
        page.fill("#id_password", "password")
        page.click("input[type=submit]")
        yield page
        browser.close()


def test_an_operator_pauses_resumes_and_runs_a_schedule(page, redis_conn):
    schedule = schedule_save(schedule=Schedule(name="hourly-sync", func="tests.schedfuncs.tick", interval=3600))
    page.reload()
    row = page.locator('tr[data-schedule="hourly-sync"]')
    expect(row.locator("td.state")).to_have_text("active")

    row.get_by_role("button", name="Pause").click()

    expect(page.get_by_role("status")).to_have_text("hourly-sync: paused")
    expect(row.locator("td.state")).to_have_text("paused")
    assert Schedule.objects.get(pk=schedule.pk).is_paused

    row.get_by_role("button", name="Resume").click()
    expect(row.locator("td.state")).to_have_text("active")

    row.get_by_role("button", name="Run now").click()
    expect(page.get_by_role("status")).to_have_text("hourly-sync: started a run now")
    expect(row.locator("ul.runs")).to_contain_text("(by hand)")
    assert redis_conn.llen("rq:queue:default") == 1
