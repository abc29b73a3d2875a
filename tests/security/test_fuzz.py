"""Property-based fuzzing of every filter, query parameter and action id: never a 500.

The Django test client re-raises a view's exception, so any crash fails the example
(hypothesis then shrinks it to the smallest hostile input).
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from django.contrib.auth import get_user_model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.security.routes import JOB_FILTERS, route

pytestmark = pytest.mark.django_db

HOSTILE = [
    "", " ", "\x00", "\x00\x00dead", "%", "%%", "_", "\\", "'", '"', "' OR 1=1 --",
    "'; DROP TABLE workers_jobrecord; --",
    "-1", "0", "1e309", "NaN", "inf", "9" * 400, "a" * 5000, "2026-13-45", "2026-02-30T25:61:00", "9999-12-31T23:59:59",
    "0001-01-01", "1970-01-01T00:00:00+99:00", "../../etc/passwd", "<script>alert(1)</script>", "{{7*7}}",
    "{% debug %}", "null", "[]", "{}", "dead\nfinished", "\u202egnp.exe", "🔥" * 50, "DEAD", "dead ", "queued,dead",
]  # fmt: skip
# Any text a browser can put in a URL (lone surrogates cannot be encoded at all).
TEXT = st.one_of(st.sampled_from(HOSTILE), st.text(st.characters(exclude_categories=("Cs",)), max_size=300))
PARAMS = st.dictionaries(
    st.one_of(st.sampled_from([*JOB_FILTERS, "page", "open", "all", "range", "window"]), st.text(max_size=12)),
    st.one_of(TEXT, st.lists(TEXT, min_size=1, max_size=3)),
    max_size=6,
)
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
def operator(client):
    client.force_login(get_user_model().objects.create_superuser("fuzz", password="pw"))
    return client


@pytest.mark.parametrize(
    "page",
    ["/dashboard/", "/dashboard/jobs/", "/dashboard/dead-letters/", "/dashboard/alerts/", "/dashboard/workers/",
     "/dashboard/schedules/", "/dashboard/queues/default/"],
)  # fmt: skip
def test_filters_and_query_parameters_never_crash(operator, page):
    path = route(page)

    @FUZZ
    @given(params=PARAMS, htmx=st.booleans())
    def check(params, htmx):
        headers = {"HX-Request": "true"} if htmx else {}
        response = operator.get(path, params, headers=headers)
        assert response.status_code < 500
        assert response.status_code in (200, 400, 404), response.status_code

    check()


@FUZZ
@given(job_id=TEXT, suffix=st.sampled_from(["", "retry/", "cancel/"]))
def test_job_ids_in_urls_never_crash(operator, job_id, suffix):
    route("/dashboard/jobs/x/")
    response = _hit(operator, "/dashboard/jobs/", job_id, suffix)
    if _one_segment(job_id):
        assert response.status_code in (400, 404), (job_id, response.status_code)


def _hit(client, prefix: str, segment: str, action: str):
    """GET the page of ``segment``, or POST its ``action``; never a server error."""
    path = f"{prefix}{quote(segment, safe='')}/{action}"
    response = client.post(path) if action else client.get(path)
    assert response.status_code < 500, (path, response.status_code)
    return response


def _one_segment(text: str) -> bool:
    return bool(text) and "/" not in text and text not in (".", "..")


@FUZZ
@given(
    bulk=st.sampled_from(["/dashboard/jobs/bulk/", "/dashboard/dead-letters/bulk/"]),
    action=st.one_of(st.sampled_from(["retry", "discard"]), TEXT),
    job_ids=st.lists(TEXT, max_size=5),
    filters=PARAMS,
    everything=st.sampled_from([None, "1", "0", "yes", "\x00"]),
)
def test_bulk_actions_never_crash(operator, bulk, action, job_ids, filters, everything):
    route(bulk)
    data = {**filters, "action": action, "job_id": job_ids}
    if everything is not None:
        data["all"] = everything
    response = operator.post(bulk, data)
    assert response.status_code < 500


@FUZZ
@given(name=TEXT, action=st.sampled_from(["", "pause/", "resume/"]))
def test_queue_names_never_crash(operator, name, action):
    route("/dashboard/queues/default/")
    response = _hit(operator, "/dashboard/queues/", name, action)
    if name not in ("high", "default", "low") and _one_segment(name):
        assert response.status_code == 404, (name, response.status_code)


@FUZZ
@given(schedule_id=TEXT, action=st.sampled_from(["pause/", "resume/", "run/"]))
def test_schedule_ids_never_crash(operator, schedule_id, action):
    route("/dashboard/schedules/1/pause/")
    _hit(operator, "/dashboard/schedules/", schedule_id, action)
