"""Alerts in sight: a banner on every page while an incident fires; acknowledge or mute it
(audited) from the banner or the alerts page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from alerts.models import Alert
from tests.conftest import create_operator
from workers.models import AuditEntry

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
PAGES = ["/dashboard/", "/dashboard/jobs/", "/dashboard/dead-letters/", "/dashboard/schedules/", "/dashboard/audit/"]


def _firing(rule="failure-rate", subject="default", message="queue default: 44% of attempts failed", **fields):
    return Alert.objects.create(rule=rule, kind="failure_rate", subject=subject, message=message,
                                opened_at=timezone.now() - timedelta(minutes=5), **fields)  # fmt: skip


@pytest.fixture
def operator() -> Client:
    client = Client(REMOTE_ADDR="198.51.100.7")
    client.force_login(create_operator("olga", "pw"))
    return client


@pytest.fixture
def viewer() -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_user("vic", password="pw", is_staff=True))
    return client


def _banner(body: str) -> str:
    return body.split('id="alert-banner"', 1)[1].split("</main>", 1)[0].split("<main>", 1)[0]


@pytest.mark.parametrize("url", PAGES)
def test_a_firing_incident_shows_on_every_page_and_in_the_nav(operator, url):
    _firing()
    Alert.objects.create(rule="old", kind="queue_length", message="recovered long ago",
                         opened_at=timezone.now() - timedelta(days=1), resolved_at=timezone.now())  # fmt: skip

    body = operator.get(url).content.decode()

    banner = _banner(body)
    assert "1 alert firing" in banner and "queue default: 44% of attempts failed" in banner
    assert "recovered long ago" not in banner
    assert "Acknowledge" in banner
    nav = body.split('<nav aria-label="Dashboard">', 1)[1].split("</nav>", 1)[0]
    assert '<span class="nav-count" title="incidents firing">1</span>' in nav


def test_no_incident_no_banner_but_the_banner_still_polls(operator):
    body = operator.get("/dashboard/").content.decode()
    assert "alert firing" not in body
    assert 'hx-get="/dashboard/alerts/banner/" hx-trigger="jobsite:poll"' in body

    _firing()  # fires while the page is open: the next poll shows it
    assert "1 alert firing" in operator.get("/dashboard/alerts/banner/", headers=HTMX).content.decode()


def test_acknowledge_from_the_banner_clears_it_for_everyone_and_is_audited(operator, viewer):
    alert = _firing()

    answer = operator.post(
        f"/dashboard/alerts/{alert.pk}/acknowledge/", {"from": "banner"}, headers=HTMX
    ).content.decode()

    assert answer.lstrip().startswith('<div id="alert-banner"')
    assert "failure-rate [default]: firing: acknowledged by olga." in answer and "alert firing" not in answer
    alert.refresh_from_db()
    assert alert.acknowledged_by == "olga" and alert.acknowledged_at is not None
    assert "alert firing" not in viewer.get("/dashboard/").content.decode()
    page = viewer.get("/dashboard/alerts/").content.decode()
    assert "acknowledged by olga" in page
    [entry] = AuditEntry.objects.all()
    assert (entry.actor, entry.action, entry.target_kind, entry.target_id, entry.outcome, entry.client_address) == (
        "olga", "alert.acknowledge", "alert", str(alert.pk), "ok", "198.51.100.7"
    )  # fmt: skip


def test_mute_from_the_alerts_page_hides_it_until_then(operator):
    alert = _firing()

    answer = operator.post(f"/dashboard/alerts/{alert.pk}/mute/", {"minutes": "240"}, headers=HTMX).content.decode()

    assert answer.lstrip().startswith('<section id="alert-table"') and "muted until" in answer
    alert.refresh_from_db()
    assert timedelta(minutes=239) < alert.muted_until - timezone.now() <= timedelta(minutes=240)
    assert "alert firing" not in operator.get("/dashboard/").content.decode()
    Alert.objects.filter(pk=alert.pk).update(muted_until=timezone.now() - timedelta(seconds=1))
    assert "1 alert firing" in operator.get("/dashboard/").content.decode()  # the mute ran out
    assert AuditEntry.objects.get().action == "alert.mute"


@pytest.mark.parametrize("minutes", ["", "5", "-60", "1e9", "<b>"])
def test_a_mute_of_no_offered_length_changes_nothing(operator, minutes):
    alert = _firing()
    answer = operator.post(f"/dashboard/alerts/{alert.pk}/mute/", {"minutes": minutes}, headers=HTMX).content.decode()
    assert "Mute for 60, 240, 1440 minutes." in answer
    assert Alert.objects.get(pk=alert.pk).muted_until is None
    assert AuditEntry.objects.get().outcome == "refused"


def test_a_resolved_or_missing_incident_cannot_be_acknowledged(operator):
    alert = _firing(resolved_at=timezone.now())
    answer = operator.post(f"/dashboard/alerts/{alert.pk}/acknowledge/", headers=HTMX).content.decode()
    assert "already resolved" in answer
    assert Alert.objects.get(pk=alert.pk).acknowledged_at is None
    assert operator.post("/dashboard/alerts/999999/acknowledge/").status_code == 404
    assert [e.outcome for e in AuditEntry.objects.order_by("id")] == ["refused", "refused"]


def test_a_viewer_sees_the_banner_without_buttons_and_cannot_act(viewer):
    alert = _firing()
    banner = _banner(viewer.get("/dashboard/").content.decode())
    assert "1 alert firing" in banner and "Acknowledge" not in banner
    assert viewer.post(f"/dashboard/alerts/{alert.pk}/acknowledge/").status_code == 403
    assert viewer.get(f"/dashboard/alerts/{alert.pk}/acknowledge/").status_code == 405
    assert Alert.objects.get(pk=alert.pk).acknowledged_at is None


def test_a_message_with_markup_shows_as_text_in_the_banner(viewer):
    _firing(subject="<img src=x onerror=alert(1)>", message="<script>alert(1)</script>")
    banner = _banner(viewer.get("/dashboard/").content.decode())
    assert "<script>" not in banner and "&lt;script&gt;" in banner and "<img" not in banner
