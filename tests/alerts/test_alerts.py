"""Alert rules on real jobs and queues: one notification per incident, then a recovery."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from alerts.models import Alert
from alerts.services import alerts_evaluate
from tests.conftest import wait_for
from workers import enqueue

pytestmark = pytest.mark.django_db(transaction=True)


class _Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):  # noqa: N802
        length = int(self.headers["Content-Length"])
        type(self).received.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    _Hook.received = []
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", _Hook.received
    server.shutdown()
    server.server_close()


@pytest.fixture
def alert_settings(settings, webhook):
    def configure(*rules):
        settings.ADMINS = [("ops", "ops@example.com")]
        settings.JOBSITE_ALERTS = {"RULES": list(rules), "MAIL_ADMINS": True, "WEBHOOK_URL": webhook[0]}

    return configure


def test_failure_rate_and_dead_letters_alert_once_then_recover(run_burst, alert_settings, webhook):
    alert_settings(
        {
            "name": "failing",
            "kind": "failure_rate",
            "window": 600,
            "threshold": 0.5,
            "min_jobs": 5,
            "queues": ["default"],
        },
        {"name": "dead", "kind": "dead_letter_growth", "window": 600, "threshold": 4},
    )
    for i in range(6):
        enqueue("tests.jobfuncs.fail", f"card declined {i}", max_attempts=1)
    enqueue("tests.jobfuncs.add", 1, 2)
    run_burst(simple=True)

    fired = alerts_evaluate()

    assert sorted((t.alert.rule, t.event) for t in fired) == [("dead", "firing"), ("failing", "firing")]
    failing = Alert.objects.get(rule="failing")
    assert failing.subject == "default" and failing.value == pytest.approx(6 / 7)
    assert "86% of attempts failed" in failing.message
    assert failing.notified == "mail, webhook"
    assert sorted(m.subject for m in mail.outbox) == ["[jobsite] FIRING: dead", "[jobsite] FIRING: failing [default]"]
    hook_events = webhook[1]
    assert {(e["rule"], e["event"]) for e in hook_events} == {("failing", "firing"), ("dead", "firing")}
    assert next(e for e in hook_events if e["rule"] == "dead")["value"] == 6

    # Still failing a minute later: the same incident, no second message.
    assert alerts_evaluate(now=timezone.now() + timedelta(seconds=60)) == []
    assert len(mail.outbox) == 2 and len(hook_events) == 2
    assert Alert.objects.count() == 2

    # The window moved past the failures: both recover, once.
    later = timezone.now() + timedelta(minutes=12)
    recovered = alerts_evaluate(now=later)
    assert sorted((t.alert.rule, t.event) for t in recovered) == [("dead", "resolved"), ("failing", "resolved")]
    assert alerts_evaluate(now=later) == []
    assert sorted(m.subject for m in mail.outbox[2:]) == [
        "[jobsite] RESOLVED: dead",
        "[jobsite] RESOLVED: failing [default]",
    ]
    assert {e["event"] for e in hook_events[2:]} == {"resolved"}
    assert all(a.resolved_at is not None and a.recovery_notified == "mail, webhook" for a in Alert.objects.all())


def test_backlog_stale_job_and_no_worker_alert_until_a_worker_drains_the_queue(start_worker, alert_settings, webhook):
    alert_settings(
        {"name": "backlog", "kind": "queue_length", "threshold": 2, "queues": ["low"]},
        {"name": "stale", "kind": "oldest_job_age", "threshold": 60, "queues": ["low"]},
        {"name": "nobody", "kind": "no_live_worker", "queues": ["low"]},
    )
    for _ in range(3):
        enqueue("tests.jobfuncs.add", 1, 1, queue="low")

    fired = alerts_evaluate(now=timezone.now() + timedelta(seconds=90))

    assert sorted(t.alert.rule for t in fired) == ["backlog", "nobody", "stale"]
    messages = {a.rule: a.message for a in Alert.objects.all()}
    assert messages["backlog"] == "queue low: 3 jobs waiting (threshold 2)"
    assert messages["stale"].startswith("queue low: the oldest waiting job has waited 9")
    assert messages["nobody"] == "queue low: 0 live workers listen on it"

    start_worker("low")
    from workers.models import JobRecord

    wait_for(lambda: JobRecord.objects.filter(status="finished").count() == 3, timeout=60)
    recovered = alerts_evaluate()
    assert sorted((t.alert.rule, t.event) for t in recovered) == [
        ("backlog", "resolved"),
        ("nobody", "resolved"),
        ("stale", "resolved"),
    ]
    assert [e["event"] for e in webhook[1]].count("resolved") == 3


def test_a_failing_webhook_does_not_stop_the_mail(settings, transactional_db):
    settings.ADMINS = [("ops", "ops@example.com")]
    settings.JOBSITE_ALERTS = {
        "RULES": [{"name": "backlog", "kind": "queue_length", "threshold": 0, "queues": ["high"]}],
        "WEBHOOK_URL": "http://127.0.0.1:9/nobody-listens",
        "WEBHOOK_TIMEOUT": 2,
    }
    enqueue("tests.jobfuncs.add", 1, 1, queue="high")

    alerts_evaluate()

    alert = Alert.objects.get()
    assert alert.notified == "mail, webhook failed: URLError"
    assert [m.subject for m in mail.outbox] == ["[jobsite] FIRING: backlog [high]"]


def test_check_alerts_command_and_history_page(settings, client, transactional_db, capsys):
    settings.ADMINS = []
    settings.JOBSITE_ALERTS = {"RULES": [{"name": "backlog", "kind": "queue_length", "threshold": 0}]}
    enqueue("tests.jobfuncs.add", 1, 1, queue="default")

    call_command("check_alerts")

    out = capsys.readouterr().out
    assert "firing: backlog [default]: firing — queue default: 1 jobs waiting (threshold 0)" in out
    assert Alert.objects.get().notified == "no channel configured"

    response = client.get("/dashboard/alerts/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")

    staff = get_user_model().objects.create_user("viewer", password="pw", is_staff=True)
    client.force_login(staff)
    page = client.get("/dashboard/alerts/").content.decode()
    assert "queue default: 1 jobs waiting (threshold 0)" in page
    assert "firing" in page
    open_only = client.get("/dashboard/alerts/?open=1").content.decode()
    assert "queue default: 1 jobs waiting" in open_only


def test_a_broken_schedule_alerts_with_its_reason_until_it_is_mended(alert_settings, webhook):
    import tests.schedfuncs  # noqa: F401  (registers the schedulable functions)
    from workers.models import Schedule
    from workers.scheduling.sync import schedule_save
    from workers.scheduling.tick import schedules_fire_due

    alert_settings({"name": "broken", "kind": "broken_schedule", "threshold": 30})
    schedule = schedule_save(schedule=Schedule(name="nightly", func="tests.schedfuncs.tick", interval=60))
    healthy = schedule_save(schedule=Schedule(name="healthy", func="tests.schedfuncs.tick", interval=60))
    Schedule.objects.filter(pk=schedule.pk).update(queue="gone")  # a deploy removed its queue
    broke_at = schedule.next_run_at
    schedules_fire_due(now=broke_at)

    assert alerts_evaluate(now=broke_at + timedelta(seconds=10)) == []  # not for a blip shorter than the threshold
    [fired] = alerts_evaluate(now=broke_at + timedelta(seconds=40))

    assert (fired.event, fired.alert.rule, fired.alert.kind, fired.alert.subject) == (
        "firing", "broken", "broken_schedule", "nightly"
    )  # fmt: skip
    assert fired.alert.message.startswith("schedule nightly cannot fire: unknown queue 'gone'")
    assert [m.subject for m in mail.outbox] == ["[jobsite] FIRING: broken [nightly]"]
    assert alerts_evaluate(now=broke_at + timedelta(seconds=100)) == []  # still broken: no second message

    schedule.refresh_from_db()
    schedule.queue = "default"
    schedule_save(schedule=schedule)  # fixed in the admin
    [recovered] = alerts_evaluate(now=broke_at + timedelta(seconds=160))
    assert (recovered.event, recovered.alert.subject) == ("resolved", "nightly")
    assert [e["event"] for e in webhook[1]] == ["firing", "resolved"]
    assert not Alert.objects.filter(subject=healthy.name).exists()


def test_schedule_entry_points_at_a_schedulable_function(settings):
    from workers.registry import schedulable_functions

    entry = next(s for s in settings.JOBSITE_SCHEDULES if s["name"] == "check-alerts")
    assert entry["func"] in schedulable_functions()
