"""The job list and the dead letters do not move under the operator's eyes: a polled bar says
how many rows arrived since the list was shown ("3 new jobs — show"), and its link reloads it."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.utils import timezone

from tests.factories import JobErrorFactory, JobRecordFactory
from workers.models import JobRecord, JobStatus
from workers.services.audit import Actor
from workers.services.jobs import dead_letter_discard

pytestmark = pytest.mark.django_db


def _poll_url(body: str) -> str:
    """Where the page's "N new" bar polls (the bar is the element with id new-rows)."""
    bar = re.search(r'<div id="new-rows"[^>]*>', body)
    assert bar, "no N-new bar on the page"
    assert 'hx-trigger="jobsite:poll"' in bar[0] and 'data-poll="3000"' in bar[0]
    return re.search(r'hx-get="([^"]+)"', bar[0])[1].replace("&amp;", "&")


def _bar_text(body: str) -> str:
    return re.sub(r"<[^>]+>", "", body.split('<div id="new-rows"', 1)[1].split("</div>", 1)[0].split(">", 1)[1])


def _rows(body: str) -> list[str]:
    return re.findall(r'<tr data-job-id="([^"]+)"', body)


def test_new_jobs_are_counted_above_the_first_page_not_slipped_into_it(staff_client, htmx_client):
    for n in range(3):
        JobRecordFactory(job_id=f"old-{n}", enqueued_at=timezone.now() - timedelta(hours=1, seconds=-n))
    page = staff_client.get("/dashboard/jobs/").content.decode()
    poll = _poll_url(page)
    assert _rows(page) == ["old-2", "old-1", "old-0"]
    assert _bar_text(htmx_client.get(poll).content.decode()) == ""  # nothing new yet

    later = timezone.now() + timedelta(minutes=1)
    for n in range(2):
        JobRecordFactory(job_id=f"new-{n}", enqueued_at=later + timedelta(seconds=n))
    bar = htmx_client.get(poll).content.decode()

    assert _bar_text(bar) == "2 new jobs — show"
    assert bar.lstrip().startswith('<div id="new-rows"') and _poll_url(bar) == poll  # keeps polling
    show = re.search(r'<a href="([^"]+)" hx-get="[^"]+" hx-target="#job-table"', bar)
    assert show and show[1] == "/dashboard/jobs/"
    reloaded = htmx_client.get(show[1]).content.decode()
    assert _rows(reloaded)[:3] == ["new-1", "new-0", "old-2"]
    assert _bar_text(htmx_client.get(_poll_url(reloaded)).content.decode()) == ""


def test_the_count_keeps_to_the_lists_filter(staff_client, htmx_client):
    JobRecordFactory(job_id="first", queue="low", enqueued_at=timezone.now() - timedelta(hours=1))
    poll = _poll_url(staff_client.get("/dashboard/jobs/?queue=low").content.decode())
    later = timezone.now() + timedelta(minutes=1)
    JobRecordFactory(job_id="elsewhere", queue="high", enqueued_at=later)
    JobRecordFactory(job_id="here", queue="low", enqueued_at=later)

    bar = htmx_client.get(poll).content.decode()

    assert _bar_text(bar) == "1 new job — show"
    show = re.search(r'<a href="([^"]+)"', bar)[1].replace("&amp;", "&")
    assert _rows(htmx_client.get(show).content.decode()) == ["here", "first"]  # the list, filtered as it was


def test_an_empty_list_counts_every_job_that_arrives(staff_client, htmx_client):
    poll = _poll_url(staff_client.get("/dashboard/jobs/?status=dead").content.decode())
    JobRecordFactory(status=JobStatus.FINISHED)
    JobRecordFactory(status=JobStatus.DEAD)
    assert _bar_text(htmx_client.get(poll).content.decode()) == "1 new job — show"


def test_older_pages_have_no_bar_and_a_bad_cursor_counts_nothing(staff_client, htmx_client):
    for _ in range(60):
        JobRecordFactory()
    first = staff_client.get("/dashboard/jobs/").content.decode()
    older = re.search(r'href="(/dashboard/jobs/\?cursor=[^"]+)"', first)[1]
    assert 'id="new-rows"' not in staff_client.get(older.replace("&amp;", "&")).content.decode()
    for cursor in ("not-a-cursor", "1e300_1", "99999999999999999999_1", "nan_1"):
        bad = htmx_client.get(f"/dashboard/jobs/new/?first={cursor}")
        assert bad.status_code == 200 and _bar_text(bad.content.decode()) == "", cursor


def test_dead_letters_that_died_since_the_page_was_shown_are_counted(staff_client, htmx_client):
    JobErrorFactory(job__job_id="long-dead")
    page = staff_client.get("/dashboard/dead-letters/").content.decode()
    poll = _poll_url(page)
    assert "/dashboard/dead-letters/new/?" in poll and "shown=" in poll
    assert _bar_text(htmx_client.get(poll).content.decode()) == ""

    # Enqueued before the one shown (its retries took a while), died after the page was shown:
    # new all the same, though the list (newest enqueued first) puts it below.
    early = timezone.now() - timedelta(hours=2)
    JobErrorFactory(job__job_id="just-died", job__enqueued_at=early)
    JobRecordFactory(job_id="just-finished")
    discarded = JobErrorFactory(job__job_id="died-and-discarded").job
    dead_letter_discard(job_id=discarded.job_id, actor=Actor("alice"))
    bar = htmx_client.get(poll).content.decode()

    assert _bar_text(bar) == "1 new dead letter — show"
    show = re.search(r'<a href="([^"]+)" hx-get="[^"]+" hx-target="#dead-letters"', bar)
    reloaded = htmx_client.get(show[1]).content.decode()
    assert reloaded.lstrip().startswith('<div id="dead-letters"') and "just-died" in _rows(reloaded)
    assert _bar_text(htmx_client.get(_poll_url(reloaded)).content.decode()) == ""


def test_dead_letters_count_keeps_to_the_filter_and_a_bad_time_counts_nothing(htmx_client):
    since = (timezone.now() - timedelta(minutes=1)).timestamp()
    JobErrorFactory(job__queue="high")
    JobErrorFactory(job__queue="low")
    query = urlencode({"queue": "low", "shown": f"{since:.6f}"})

    assert _bar_text(htmx_client.get(f"/dashboard/dead-letters/new/?{query}").content.decode()) == (
        "1 new dead letter — show"
    )
    for bad in ("yesterday", "1e300", ""):
        body = htmx_client.get(f"/dashboard/dead-letters/new/?shown={bad}").content.decode()
        assert _bar_text(body) == ""
    assert JobRecord.objects.count() == 2
