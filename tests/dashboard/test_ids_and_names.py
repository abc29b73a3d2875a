"""Ids and names as an operator tells jobs apart by them: a job id whole (the runs of one
schedule differ only at the end) with a button that copies it; a long dotted name cut at its
start, keeping the tail where names differ, the whole of it one hover away."""

from __future__ import annotations

import html
import re

import pytest

from dashboard.templatetags.jobsite import breakable, tail
from tests.factories import JobRecordFactory
from workers.models import JobStatus

pytestmark = pytest.mark.django_db

RUNS = ["schedule-1-1733140800", "schedule-1-1733144400"]
FUNC = "examples.jobs.campaigns.campaign_send_one"


def test_the_job_list_shows_whole_ids_each_with_a_copy_button(staff_client):
    for job_id in RUNS:
        JobRecordFactory(job_id=job_id, func="tests.schedfuncs.tick")

    body = staff_client.get("/dashboard/jobs/").content.decode()

    for job_id in RUNS:
        assert f'<a class="mono" href="/dashboard/jobs/{job_id}/">{job_id}</a>' in body
        assert f'data-copy="{job_id}" aria-label="Copy the job id {job_id}"' in body
    assert "schedule-1-17…" not in body


def test_a_long_function_name_keeps_its_tail_and_shows_whole_on_hover(staff_client):
    JobRecordFactory(func=FUNC)

    body = staff_client.get("/dashboard/jobs/").content.decode()

    cell = re.search(r'<span class="mono func" title="([^"]+)">([^<]+)</span>', body)
    assert cell[1] == FUNC and html.unescape(cell[2]) == "…campaigns.campaign_send_one"


def test_the_job_page_and_the_worker_and_key_pages_show_whole_ids(staff_client):
    JobRecordFactory(job_id=RUNS[0], status=JobStatus.STARTED, parent_job_id=RUNS[1])

    body = staff_client.get(f"/dashboard/jobs/{RUNS[0]}/").content.decode()

    h1 = body.split("<h1>", 1)[1].split("</h1>", 1)[0]
    assert f'<span class="mono">{RUNS[0]}</span>' in h1 and f'data-copy="{RUNS[0]}"' in h1
    assert f'href="/dashboard/jobs/{RUNS[1]}/">{RUNS[1]}</a>' in body  # where it came from


@pytest.mark.parametrize(
    ("name", "length", "shown"),
    [
        ("tests.jobfuncs.add", 44, "tests.jobfuncs.add"),  # short enough: whole
        (FUNC, 32, "…campaigns.campaign_send_one"),  # cut after a dot: whole parts
        (FUNC, 20, "…campaign_send_one"),
        ("a_module.a_function_whose_name_alone_is_longer_than_the_column", 24, "…_longer_than_the_column"),
        (None, 10, ""),
    ],
)
def test_tail_keeps_the_end_of_a_name(name, length, shown):
    assert tail(name, length) == shown
    assert len(tail(name, length)) <= length


def test_breakable_escapes_and_only_adds_break_points():
    assert breakable("smtplib.SMTPServerDisconnected: <b>") == "smtplib.<wbr>SMTPServerDisconnected: &lt;b&gt;"
