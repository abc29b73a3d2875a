"""Every dashboard page fits a phone (390 px) and a desktop (1400 px), light and dark: no
page is wider than the window (wide tables scroll inside their card), and every element
of the header is inside the window, visible and readable. Headless Chromium (Debian's).

With JOBSITE_UPDATE_SCREENSHOT=1 this also retakes the README's gallery (docs/*.png).
"""

from __future__ import annotations

import os
import random
import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.db.models import F
from django.utils import timezone

import tests.schedfuncs  # noqa: F401  (registers the schedulable functions)
from alerts.models import Alert
from bench.seed import seed_records
from examples.models import EtlPage, EtlRun
from tests.browser import launched_chromium
from tests.conftest import ROOT, create_operator
from tests.examples.factories import CampaignFactory, DeliveryFactory
from tests.factories import JobErrorFactory, JobRecordFactory
from workers import enqueue
from workers.models import JobRecord, JobStatus, Schedule, ScheduleRun
from workers.recording.consumer import Recorder
from workers.redis import STREAM_KEY
from workers.scheduling.broken import schedule_mark_broken
from workers.scheduling.sync import schedule_save
from workers.services.audit import Actor
from workers.services.jobs import dead_letter_discard
from workers.services.queues import queue_pause

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


LONG_FUNC = "examples.jobs.campaigns.campaign_send_one_recipient_with_a_long_name"
SCHEDULED_IDS = [f"schedule-1-17331408{n:02d}" for n in range(3)]
BROKEN_REASON = (
    "tests.schedfuncs.gone cannot be imported: ModuleNotFoundError: No module named 'tests.schedfuncs.gone'"
    " (deploy the code that defines it, or delete this schedule)"
)


def rq_id(n: int) -> str:
    """An id as RQ makes them (a random UUID), the same every run."""
    return str(uuid.UUID(int=random.Random(n).getrandbits(128), version=4))


LONG_ID = "nightly-import-" + "-".join(rq_id(n)[:8] for n in range(7))  # 78 characters

PAGES = {
    "overview": "/dashboard/",
    "jobs": "/dashboard/jobs/",
    "job": "/dashboard/jobs/running-job/",
    "dead letters": "/dashboard/dead-letters/",
    "workers": "/dashboard/workers/",
    "queues": "/dashboard/queues/",
    "queue": "/dashboard/queues/default/",
    "schedules": "/dashboard/schedules/",
    "keys": "/dashboard/keys/",
    "alerts": "/dashboard/alerts/",
    "audit": "/dashboard/audit/",
    "unapplied events": "/dashboard/unapplied-events/",
    "examples": "/dashboard/examples/",
}

# The README's gallery: (width, theme, page) -> file in docs/; MENU: taken with the phone's
# menu open.
GALLERY = {
    (1400, "light", "jobs"): "jobs.png",
    (1400, "light", "job"): "job.png",
    (1400, "light", "dead letters"): "dead-letters.png",
    (1400, "light", "queues"): "queues.png",
    (1400, "dark", "overview"): "overview-dark.png",
    (390, "light", "overview"): "phone-menu.png",
    (390, "dark", "job"): "phone-job-dark.png",
}
MENU = {"phone-menu.png"}

# Where the header's parts are, how big, whether they show, and how their text contrasts
# with what is behind it (WCAG's ratio; the background is the first opaque one up the tree).
HEADER_FACTS = """() => {
  const rgb = (text) => (text.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const c = rgb(getComputedStyle(el).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const header = document.querySelector("header.topbar");
  const parts = header.querySelectorAll("nav a, a, button, .live span:not(.dot), .account span");
  return Array.from(parts).filter((el) => el.textContent.trim()).map((el) => {
    const r = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    const [l1, l2] = [lum(rgb(style.color)), lum(background(el))];
    return {
      text: el.textContent.trim().replace(/\\s+/g, " "),
      inNav: !!el.closest("nav"), rendered: el.getClientRects().length > 0,
      left: r.left, right: r.right, top: r.top, width: r.width, height: r.height,
      shown: style.visibility === "visible" && Number(style.opacity) > 0.5 && r.width > 0 && r.height > 0,
      contrast: (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05),
    };
  });
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with launched_chromium() as chromium:
        yield chromium


def login(browser, live_server, *, width: int, theme: str):
    """A signed-in operator's page in a browser whose system theme is ``theme``."""
    height = 844 if width < 800 else 900
    context = browser.new_context(
        viewport={"width": width, "height": height}, color_scheme=theme, base_url=live_server.url
    )
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto("/login/?next=/dashboard/")
    fits = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert fits, f"the login page is wider than a {width} px window"
    if looking := os.environ.get("JOBSITE_LAYOUT_SHOTS"):
        Path(looking).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=f"{looking}/login-{width}-{theme}.png")
    page.fill("#id_username", "ops")
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")
    expect(page.locator("h1")).to_contain_text("Overview")
    return page


@pytest.fixture
def every_page_filled(redis_conn):
    """Something on every page, with the long ids and names that used to break the layout."""
    create_operator("ops", "pw")
    now = timezone.now()
    # A day of history for the charts and the failure groups, enqueued before the rows below.
    seed_records(1500, dead=9, retrying=2, span=timedelta(hours=24), prefix="history")
    JobRecord.objects.filter(job_id__startswith="history-").update(enqueued_at=F("enqueued_at") - timedelta(days=2))
    for n in range(40):
        JobRecordFactory(
            job_id=rq_id(n),
            func=LONG_FUNC if n % 3 else "tests.jobfuncs.add",
            args_repr=repr((f"subscriber-{n}@mail.example", {"campaign": "spring-newsletter", "retry": n})),
        )
    for job_id in SCHEDULED_IDS:
        JobRecordFactory(job_id=job_id, func="tests.schedfuncs.tick", origin="schedule")
    JobRecordFactory(job_id=LONG_ID, func=LONG_FUNC, status=JobStatus.QUEUED)
    JobRecordFactory(
        job_id="running-job",
        func=LONG_FUNC,
        status=JobStatus.STARTED,
        progress=40,
        progress_message="rendering page 4 of 10 of a long report with a long message",
        args_repr=repr(["x" * 300]),
    )
    for n in range(6):
        JobErrorFactory(
            job__job_id=rq_id(100 + n),
            job__func=LONG_FUNC,
            job__last_error="smtplib.SMTPServerDisconnected: Connection unexpectedly closed by smtp.example.com",
            fingerprint="f00d" if n % 2 else "beef",
            message="Connection unexpectedly closed by smtp.example.com while sending to a long address",
        )
    dead_letter_discard(job_id=rq_id(100), actor=Actor("alice", address="192.0.2.1"))
    queue_pause(name="low", actor=Actor("alice"))
    schedule = schedule_save(
        schedule=Schedule(name="nightly-report-for-every-tenant", func="tests.schedfuncs.tick", interval=3600)
    )
    broken = schedule_save(schedule=Schedule(name="hourly-sync", func="tests.schedfuncs.tick", interval=3600))
    schedule_mark_broken(schedule_id=broken.pk, reason=BROKEN_REASON, now=now)
    for n, job_id in enumerate(SCHEDULED_IDS):
        due = now - timedelta(hours=n)
        ScheduleRun.objects.create(schedule=schedule, job_id=job_id, due_at=due, fired_at=due, enqueued=True)
    Alert.objects.create(
        rule="dead_letters",
        kind="dead_letters",
        subject="default",
        message="12 dead letters on queue default in the last 10 minutes (threshold 5)",
        opened_at=now - timedelta(minutes=3),
    )
    redis_conn.xadd(STREAM_KEY, {b"d": b"[1,2]"})
    Recorder(redis_conn, name="rec-layout").drain()
    enqueue("tests.jobfuncs.add", 1, 2, key="account:42:invoices")
    enqueue("tests.jobfuncs.add", 3, 4, key="account:42:invoices")
    campaign = CampaignFactory(subject="Spring newsletter", manager_job_id=rq_id(7))
    for n in range(4):
        DeliveryFactory(campaign=campaign, status="sent" if n < 3 else "pending")
    run = EtlRun.objects.create(lo=0, hi=20, page_size=10)
    error = "psycopg.errors.UniqueViolation: duplicate key value violates a constraint"
    EtlPage.objects.create(
        run=run, lo=1, hi=11, stage=EtlPage.Stage.LOAD, status=EtlPage.Status.FAILED, last_error=error
    )


# The elements that stick out of the window, not inside a card that scrolls: where to look.
STICKING_OUT = """() => Array.from(document.querySelectorAll("body *"))
  .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 0.5)
  .filter((el) => {
    for (let up = el.parentElement; up && up !== document.body; up = up.parentElement) {
      if (getComputedStyle(up).overflowX !== "visible") return false;
    }
    return true;
  })
  .slice(0, 3).map((el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "")
                           + (el.className && el.className.baseVal === undefined ? "." + el.className : ""))"""


# Cards whose content is wider than they are (they scroll sideways).
SCROLLING = """() => Array.from(document.querySelectorAll("main .panel, main .table-scroll"))
  .filter((el) => el.scrollWidth > el.clientWidth + 1)
  .map((el) => `${el.id || el.className} (${el.scrollWidth} px in ${el.clientWidth})`)"""


def _problems(page, name: str, width: int) -> list[str]:
    problems = []
    wide = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    if wide[0] > wide[1]:
        where = ", ".join(page.evaluate(STICKING_OUT))
        problems.append(f"{name}: the page is {wide[0]} px wide in a {wide[1]} px window ({where})")
    if width >= 1400:  # on a phone a wide table scrolls inside its card; on a desktop it fits
        problems += [f"{name}: {card} scrolls sideways" for card in page.evaluate(SCROLLING)]
    for part in page.evaluate(HEADER_FACTS):
        where = f"{name}: header {part['text']!r}"
        if not part["rendered"] and not part["inNav"]:
            continue  # left out at this width on purpose (the Menu button on a desktop)
        if not part["shown"]:
            problems.append(f"{where} is not shown")
        elif part["left"] < 0 or part["right"] > width + 0.5:
            problems.append(f"{where} is outside the window ({part['left']:.0f}-{part['right']:.0f} px)")
        elif part["contrast"] < 4.5:
            problems.append(f"{where} is hard to read (contrast {part['contrast']:.1f}:1)")
    return problems


def _open_menu(page, width: int) -> None:
    """On a phone the nav hides behind the Menu button: open it, as a person would."""
    toggle = page.locator("#menu-toggle")
    if width < 800:
        expect(toggle).to_be_visible()
        toggle.click()
        expect(page.locator("nav[aria-label=Dashboard]")).to_be_visible()
    else:
        expect(toggle).to_be_hidden()


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("width", [390, 1400])
def test_every_page_fits_the_window_with_a_readable_header(browser, live_server, every_page_filled, width, theme,
                                                           tmp_path):  # fmt: skip
    page = login(browser, live_server, width=width, theme=theme)
    assert page.evaluate("document.documentElement.classList.contains('theme-dark')") == (theme == "dark")
    update = os.environ.get("JOBSITE_UPDATE_SCREENSHOT") == "1"
    looking = os.environ.get("JOBSITE_LAYOUT_SHOTS")  # a folder to look at every page in, by hand
    problems: list[str] = []
    for name, url in PAGES.items():
        page.goto(url)
        expect(page.locator("h1")).to_be_visible()
        picture = GALLERY.get((width, theme, name))
        gallery = ROOT / "docs" if update else tmp_path
        if picture and picture not in MENU:
            page.screenshot(path=str(gallery / picture))
        if looking:
            _look(page, Path(looking) / f"{name}-{width}-{theme}".replace(" ", "-"))
        _open_menu(page, width)
        if picture in MENU:
            page.screenshot(path=str(gallery / picture))
        problems += _problems(page, name, width)
        if looking and width < 800:
            page.screenshot(path=f"{looking}/{name}-{width}-{theme}-menu.png".replace(" ", "-"))
    assert problems == []


def _look(page, stem: Path) -> None:
    """The whole page, in window-high pieces (a viewer shrinks a tall picture to a strip)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    width, height, viewport = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.scrollHeight, window.innerHeight]"
    )
    for n, top in enumerate(range(0, min(height, 4 * viewport), viewport)):
        clip = {"x": 0, "y": top, "width": width, "height": min(viewport, height - top)}
        page.screenshot(path=f"{stem}-{n}.png", clip=clip, full_page=True)


def _background_luminance(page) -> float:
    r, g, b = page.evaluate("getComputedStyle(document.body).backgroundColor.match(/\\d+/g).map(Number)")
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


def test_the_theme_follows_the_system_until_the_toggle_chooses_and_the_choice_is_kept(browser, live_server):
    create_operator("ops", "pw")
    page = login(browser, live_server, width=1400, theme="light")
    root, toggle = page.locator("html"), page.locator("#theme-toggle")
    # theme.js runs in <head>, not deferred: the class is there before the page is painted.
    assert page.evaluate("document.querySelector('head script[src*=\"theme.js\"]').defer") is False
    expect(root).to_have_class(re.compile(r"\btheme-light\b"))
    expect(toggle).to_have_attribute("aria-pressed", "false")
    assert _background_luminance(page) > 0.8

    toggle.click()

    expect(root).to_have_class(re.compile(r"\btheme-dark\b"))
    expect(toggle).to_have_attribute("aria-pressed", "true")
    assert _background_luminance(page) < 0.2
    page.goto("/dashboard/jobs/")  # another page, and the login page: dark from the start
    expect(root).to_have_class(re.compile(r"\btheme-dark\b"))
    expect(toggle).to_have_attribute("aria-pressed", "true")
    assert page.evaluate("localStorage.getItem('jobsite:theme')") == "dark"
    login_page = page.context.new_page()
    login_page.goto("/login/")
    expect(login_page.locator("html")).to_have_class(re.compile(r"\btheme-dark\b"))
    login_page.close()

    toggle.click()  # back to the system's light: no choice is kept, the system is followed again
    expect(root).to_have_class(re.compile(r"\btheme-light\b"))
    assert page.evaluate("localStorage.getItem('jobsite:theme')") is None
    page.emulate_media(color_scheme="dark")
    expect(root).to_have_class(re.compile(r"\btheme-dark\b"))  # the system turned dark: so does the page

    toggle.click()  # light while the system is dark: a choice, kept across pages
    page.reload()
    expect(root).to_have_class(re.compile(r"\btheme-light\b"))
    assert _background_luminance(page) > 0.8
    page.context.close()


def test_on_a_phone_the_menu_button_opens_and_closes_the_nav(browser, live_server):
    create_operator("ops", "pw")
    page = login(browser, live_server, width=390, theme="light")
    nav, menu = page.locator("nav[aria-label=Dashboard]"), page.locator("#menu-toggle")
    expect(nav).to_be_hidden()
    expect(menu).to_have_attribute("aria-expanded", "false")
    # The button works as soon as it is there (a loaded run once clicked it before a deferred
    # dashboard.js had bound it, and the menu stayed shut): the script is not deferred.
    assert page.evaluate("document.querySelector('head script[src*=\"dashboard.js\"]').defer") is False

    menu.click()

    expect(menu).to_have_attribute("aria-expanded", "true")
    expect(nav).to_be_visible()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    nav.get_by_role("link", name="Workers").click()
    expect(page.locator("h1")).to_contain_text("Workers")
    expect(nav).to_be_hidden()  # a new page starts with the menu folded
    page.locator("#menu-toggle").click()
    page.locator("#menu-toggle").click()
    expect(nav).to_be_hidden()
    page.context.close()


def test_the_copy_button_puts_the_whole_job_id_on_the_clipboard(browser, live_server):
    create_operator("ops", "pw")
    JobRecordFactory(job_id=SCHEDULED_IDS[0], func="tests.schedfuncs.tick")
    page = login(browser, live_server, width=1400, theme="light")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page.goto("/dashboard/jobs/")

    page.get_by_role("button", name=f"Copy the job id {SCHEDULED_IDS[0]}").click()

    expect(page.locator(f'button.copy[data-copy="{SCHEDULED_IDS[0]}"]')).to_have_class(re.compile(r"\bcopied\b"))
    assert page.evaluate("navigator.clipboard.readText()") == SCHEDULED_IDS[0]
    page.context.close()


def test_new_jobs_wait_behind_a_bar_until_the_operator_asks_for_them(browser, live_server):
    create_operator("ops", "pw")
    for n in range(3):
        JobRecordFactory(job_id=f"old-{n}", enqueued_at=timezone.now() - timedelta(hours=1, seconds=-n))
    page = login(browser, live_server, width=1400, theme="light")
    page.goto("/dashboard/jobs/")
    rows = page.locator("#job-table tbody tr")
    expect(rows.first).to_have_attribute("data-job-id", "old-2")
    row = rows.first.locator("input[name=job_id]")
    row.check()  # the operator is in the middle of something

    later = timezone.now() + timedelta(minutes=1)
    for n in range(2):
        JobRecordFactory(job_id=f"new-{n}", enqueued_at=later + timedelta(seconds=n))

    bar = page.locator("#new-rows a")
    expect(bar).to_have_text("2 new jobs — show", timeout=15_000)
    expect(rows).to_have_count(3)  # nothing moved, and the ticked row is still ticked
    expect(rows.first).to_have_attribute("data-job-id", "old-2")
    expect(row).to_be_checked()

    bar.click()

    expect(rows.first).to_have_attribute("data-job-id", "new-1")
    expect(rows).to_have_count(5)
    expect(page.locator("#new-rows a")).to_have_count(0)
    page.context.close()


def test_retry_now_on_the_job_page_runs_a_job_in_backoff_and_the_page_follows(
    browser, live_server, run_burst, settings
):
    settings.JOBSITE = {**settings.JOBSITE, "RETRY": {"max_attempts": 3, "base": 600, "cap": 3600, "jitter": 0.0}}
    create_operator("ops", "pw")
    job = enqueue("tests.jobfuncs.flaky", "browser-now", 1)
    # A simple (non-forking) worker: a fork from inside Playwright's event loop would take
    # this process's database connection along.
    run_burst(simple=True)
    page = login(browser, live_server, width=1400, theme="light")
    page.goto(f"/dashboard/jobs/{job.id}/")
    expect(page.locator("#job-status")).to_have_text("retrying")

    page.get_by_role("button", name="Retry now").click()

    expect(page.locator("#job-live .notice")).to_have_text(
        "Queued now: the next attempt runs without waiting for the backoff."
    )
    run_burst(simple=True)
    expect(page.locator("#job-status")).to_have_text("finished", timeout=20_000)
    expect(page.locator("ol.timeline")).to_contain_text("retried by ops")
    page.context.close()
