"""An operator searches the jobs list in headless Chromium (Debian's): the table and the URL
follow the box without a reload, and a mistake is marked under the box."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlparse

import pytest

from tests.browser import ARGS, CHROMIUM
from tests.factories import JobRecordFactory
from workers.models import JobStatus

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def page(live_server, admin_user, monkeypatch) -> Iterator[object]:
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(base_url=live_server.url)
        page.set_default_timeout(20_000)
        page.goto("/admin/login/?next=/dashboard/jobs/")
        page.fill("#id_username", "admin")
        page.fill("#id_password", "password")
        page.click("input[type=submit]")
        yield page
        browser.close()


def test_an_operator_searches_and_fixes_a_mistake(page):
    JobRecordFactory(job_id="order-42", status=JobStatus.DEAD, args_repr="({'order_id': 42},)",
                     args_json={"args": [{"order_id": 42}], "kwargs": {}})  # fmt: skip
    JobRecordFactory(job_id="order-43", status=JobStatus.FINISHED, args_repr="({'order_id': 43},)",
                     args_json={"args": [{"order_id": 43}], "kwargs": {}})  # fmt: skip
    page.goto("/dashboard/jobs/")
    page.evaluate("window.__sameDocument = true")
    expect(page.locator("#job-total")).to_have_text("2 matching")

    page.fill("input[type=search][name=q]", "args.order_id:42 ab")
    page.press("input[type=search][name=q]", "Enter")
    expect(page.locator(".search-error mark")).to_have_text("ab")
    expect(page.locator(".search-error")).to_contain_text("search words need 3+ characters")

    page.fill("input[type=search][name=q]", "args.order_id:42 status:dead")
    page.press("input[type=search][name=q]", "Enter")
    expect(page.locator("#job-total")).to_have_text("1 matching")
    expect(page.locator("tr[data-job-id]")).to_have_count(1)
    expect(page.locator('tr[data-job-id="order-42"]')).to_be_visible()
    assert page.evaluate("window.__sameDocument") is True  # htmx swapped the table in place
    assert parse_qs(urlparse(page.url).query)["q"] == ["args.order_id:42 status:dead"]  # a link to share

    page.reload()  # the URL alone brings the search back
    expect(page.locator("input[type=search][name=q]")).to_have_value("args.order_id:42 status:dead")
    expect(page.locator("tr[data-job-id]")).to_have_count(1)
