"""Destructive and bulk actions ask first, saying how many jobs they touch: dismissed,
nothing changes; accepted, it happens. Headless Chromium (Debian's) through Playwright."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser import ARGS, CHROMIUM
from tests.conftest import create_operator
from tests.factories import JobErrorFactory
from workers.models import AuditEntry, JobRecord

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


class Dialogs:
    """Every dialog's question, answered as ``accept`` says."""

    def __init__(self) -> None:
        self.questions: list[str] = []
        self.accept = False

    def __call__(self, dialog) -> None:
        self.questions.append(dialog.message)
        dialog.accept() if self.accept else dialog.dismiss()


@pytest.fixture
def page(live_server, monkeypatch) -> Iterator[object]:
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are
    # still plain synchronous ones.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    create_operator("ops", "pw")
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1360, "height": 900})
        page.set_default_timeout(20_000)
        page.dialogs = Dialogs()
        page.on("dialog", page.dialogs)
        page.goto(f"{live_server.url}/admin/login/?next=/dashboard/dead-letters/")
        page.fill("#id_username", "ops")
        page.fill("#id_password", "pw")
        page.click("input[type=submit]")
        expect(page.locator("h1")).to_contain_text("Dead letters")
        yield page
        browser.close()


def _discarded() -> set[str]:
    return set(JobRecord.objects.filter(discarded_at__isnull=False).values_list("job_id", flat=True))


def test_discard_group_asks_with_the_count_and_only_a_yes_discards(page):
    for n in range(3):
        JobErrorFactory(job__job_id=f"grp-{n}", fingerprint="aaaa")
    JobErrorFactory(job__job_id="other", fingerprint="bbbb")
    page.reload()
    group = page.locator('#failure-groups tr[data-fingerprint="aaaa"]')

    group.get_by_role("button", name="Discard group").click()

    expect(group).to_be_visible()
    assert page.dialogs.questions == [
        "Discard all 3 dead letters of this failure? They leave the dead-letter list; their records and errors stay."
    ]
    page.wait_for_timeout(500)  # a request, had one gone, would have been answered by now
    assert _discarded() == set() and not AuditEntry.objects.exists()

    page.dialogs.accept = True
    group.get_by_role("button", name="Discard group").click()

    expect(page.locator("#dead-letters .notice")).to_have_text("Discarded 3 jobs.")
    expect(page.locator('#failure-groups tr[data-fingerprint="aaaa"]')).to_have_count(0)
    assert _discarded() == {"grp-0", "grp-1", "grp-2"}
    assert AuditEntry.objects.get(parent__isnull=True).actor == "ops"


def test_discard_selected_and_everything_matching_say_how_many(page):
    for n in range(4):
        JobErrorFactory(job__job_id=f"dl-{n}", fingerprint=f"f{n}")
    page.reload()
    listing = page.locator("#dead-letter-list")
    for n in (1, 2):
        listing.locator(f'tr[data-job-id="dl-{n}"] input[name=job_id]').check()

    page.click("#dead-letters >> text=Discard selected")
    page.wait_for_timeout(500)
    assert page.dialogs.questions[-1] == (
        "Discard 2 selected dead letters? They leave the dead-letter list; their records and errors stay."
    )
    assert _discarded() == set()

    page.dialogs.accept = True
    page.click("#dead-letters >> text=Discard selected")
    expect(page.locator("#dead-letters .notice")).to_have_text("Discarded 2 jobs.")
    assert _discarded() == {"dl-1", "dl-2"}

    # Everything matching: the count is the list's, not the page's selection.
    page.dialogs.accept = False
    page.get_by_role("checkbox", name="all 2 dead letters matching this filter").check()
    page.click("#dead-letters >> text=Retry selected")
    page.wait_for_timeout(500)
    assert page.dialogs.questions[-1] == "Retry all 2 dead letters matching this filter?"
    assert AuditEntry.objects.filter(action="bulk.retry").count() == 0


def test_pausing_a_queue_asks_first(page):
    page.goto(page.url.split("/dashboard/")[0] + "/dashboard/queues/low/")
    page.locator("#queue-panel").get_by_role("button", name="Pause").click()
    page.wait_for_timeout(500)
    assert page.dialogs.questions == [
        "Pause queue low? Its 0 waiting jobs (and any enqueued meanwhile) wait until it is resumed."
    ]
    expect(page.locator("#queue-state")).to_have_text("running")

    page.dialogs.accept = True
    page.locator("#queue-panel").get_by_role("button", name="Pause").click()
    expect(page.locator("#queue-state")).to_have_text("paused")
    assert AuditEntry.objects.get().action == "queue.pause"
