"""Set-aside tracking events: counted on the overview and in /metrics, listed with their
reasons, deleted one at a time or all by an operator."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from workers.recording.consumer import Recorder
from workers.redis import STREAM_KEY, UNAPPLIED_KEY

pytestmark = pytest.mark.django_db

URL = "/dashboard/unapplied-events/"
DELETE = "/dashboard/unapplied-events/delete/"


@pytest.fixture
def set_aside(redis_conn):
    """Three malformed entries the recorder really set aside: oldest first."""
    for fields in ({b"d": b"null"}, {b"d": b"[1,2]"}, {b"d": b'"<script>alert(1)</script>"'}):
        redis_conn.xadd(STREAM_KEY, fields)
    Recorder(redis_conn, name="rec-test").drain()
    assert redis_conn.llen(UNAPPLIED_KEY) == 3


def _refs(body: str) -> list[str]:
    return [part.split('"', 1)[0] for part in body.split('data-ref="')[1:]]


def test_the_page_lists_them_newest_first_with_reason_and_escaped_fields(staff_client, set_aside):
    body = staff_client.get(URL).content.decode()

    assert "3 set aside" in body
    assert body.index("holds a JSON string") < body.index("holds a JSON array") < body.index("holds a JSON null")
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "rec-test" in body
    assert len(_refs(body)) == 3


def test_htmx_gets_only_the_panel(htmx_client, set_aside):
    body = htmx_client.get(URL).content.decode()
    assert body.lstrip().startswith('<section id="unapplied-panel"')
    assert "<nav" not in body and "holds a JSON null" in body


def test_an_operator_deletes_one_then_all(staff_client, htmx_client, set_aside, redis_conn):
    newest = _refs(staff_client.get(URL).content.decode())[0]

    response = htmx_client.post(DELETE, {"ref": newest})

    body = response.content.decode()
    assert body.lstrip().startswith('<section id="unapplied-panel"')
    assert "Deleted the set-aside event." in body and "2 set aside" in body
    assert "holds a JSON string" not in body
    again = htmx_client.post(DELETE, {"ref": newest}).content.decode()
    assert "no longer set aside" in again and "2 set aside" in again

    response = staff_client.post(DELETE, {"all": "1"}, follow=True)

    assert response.redirect_chain == [(URL, 302)]
    assert "Deleted 2 set-aside events." in response.content.decode()
    assert redis_conn.llen(UNAPPLIED_KEY) == 0
    assert "Nothing is set aside" in response.content.decode()


def test_a_delete_that_names_nothing_deletes_nothing(htmx_client, set_aside, redis_conn):
    for data in ({}, {"all": "yes"}, {"ref": ""}, {"ref": "x" * 10_000}):
        body = htmx_client.post(DELETE, data).content.decode()
        assert 'class="notice error"' in body
    assert redis_conn.llen(UNAPPLIED_KEY) == 3


def test_a_viewer_sees_them_but_cannot_delete(set_aside, redis_conn):
    viewer = get_user_model().objects.create_user("viewer", password="pw", is_staff=True)
    client = Client()
    client.force_login(viewer)

    body = client.get(URL).content.decode()
    assert "3 set aside" in body and "Delete" not in body
    ref = _refs(body)[0]
    assert client.post(DELETE, {"ref": ref}).status_code == 403
    assert client.post(DELETE, {"all": "1"}).status_code == 403
    assert redis_conn.llen(UNAPPLIED_KEY) == 3


def test_the_overview_links_to_them_only_when_there_are_some(staff_client, set_aside, redis_conn):
    body = staff_client.get("/dashboard/").content.decode()
    assert "3 tracking events could not be applied" in body and f'href="{URL}"' in body

    redis_conn.delete(UNAPPLIED_KEY)

    body = staff_client.get("/dashboard/").content.decode()
    assert "could not be applied" not in body and f'href="{URL}"' not in body


def test_metrics_export_how_many_are_set_aside(client, set_aside, redis_conn):
    def gauge() -> float:
        text = client.get("/metrics").content.decode()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        return families["jobsite_events_unapplied"].samples[0].value

    assert gauge() == 3
    redis_conn.delete(UNAPPLIED_KEY)
    assert gauge() == 0
