"""/metrics as a Prometheus scraper reads it, after real workers ran real jobs."""

from __future__ import annotations

import pytest
from django.test import override_settings
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import wait_for
from workers import enqueue

pytestmark = pytest.mark.django_db(transaction=True)


def scrape(client, **extra) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", **extra)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def test_metrics_report_queues_statuses_totals_and_runtimes(client, run_burst):
    for n in range(3):
        enqueue("tests.jobfuncs.add", n, 1)
    enqueue("tests.jobfuncs.nap", 0.3)
    enqueue("tests.jobfuncs.fail", "card declined", max_attempts=1)
    run_burst("default", simple=True)
    enqueue("tests.jobfuncs.add", 9, 9, queue="low")
    enqueue("tests.jobfuncs.add", 8, 8, queue="low")

    m = scrape(client)

    add = (("func", "tests.jobfuncs.add"), ("queue", "default"))
    assert m[("jobsite_jobs_finished_total", add)] == 3
    assert m[("jobsite_jobs_failed_total", (("func", "tests.jobfuncs.fail"), ("queue", "default")))] == 1
    assert m[("jobsite_jobs_dead_total", (("func", "tests.jobfuncs.fail"), ("queue", "default")))] == 1
    # Live queue length from Redis: the two jobs nobody ran yet.
    assert m[("rq_jobs", (("queue", "low"), ("status", "queued")))] == 2
    assert m[("rq_jobs", (("queue", "default"), ("status", "queued")))] == 0
    assert m[("jobsite_dead_letters", ())] == 1
    assert m[("jobsite_jobs", (("queue", "default"), ("status", "dead")))] == 1
    nap = (("func", "tests.jobfuncs.nap"), ("queue", "default"))
    assert m[("jobsite_task_runtime_seconds_count", nap)] == 1
    assert m[("jobsite_task_runtime_seconds_sum", nap)] >= 0.3
    assert m[("jobsite_task_runtime_seconds_bucket", (*nap[:1], ("le", "0.25"), *nap[1:]))] == 0
    assert m[("jobsite_task_runtime_seconds_bucket", (*nap[:1], ("le", "+Inf"), *nap[1:]))] == 1
    assert m[("jobsite_workers", (("state", "busy"),))] == 0


def test_metrics_show_a_running_worker_as_idle(client, start_worker):
    worker = start_worker("default", simple=True)

    def idle() -> bool:
        return scrape(client).get(("jobsite_workers", (("state", "idle"),))) == 1

    wait_for(idle, timeout=30)
    names = [labels for (name, labels), value in scrape(client).items() if name == "rq_workers" and value == 1]
    assert [dict(labels)["name"] for labels in names] == [worker.name]


def test_metrics_count_broken_schedules(client):
    import tests.schedfuncs  # noqa: F401  (registers the schedulable functions)
    from workers.models import Schedule
    from workers.scheduling.sync import schedule_save
    from workers.scheduling.tick import schedules_fire_due

    def make(name: str) -> Schedule:
        return schedule_save(schedule=Schedule(name=name, func="tests.schedfuncs.tick", interval=60))

    healthy, broken, disabled = make("healthy"), make("broken"), make("disabled")
    Schedule.objects.filter(pk__in=[broken.pk, disabled.pk]).update(queue="gone")
    assert scrape(client)[("jobsite_schedules_broken", ())] == 0

    schedules_fire_due(now=max(s.next_run_at for s in (healthy, broken, disabled)))
    Schedule.objects.filter(pk=disabled.pk).update(enabled=False)

    assert scrape(client)[("jobsite_schedules_broken", ())] == 1


def test_metrics_are_closed_to_other_machines_without_a_token(client):
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 403
    assert client.get("/metrics").status_code == 200  # the test client is 127.0.0.1


@override_settings(JOBSITE={**__import__("django.conf").conf.settings.JOBSITE, "METRICS_TOKEN": "s3cret"})
def test_metrics_with_a_token_need_the_bearer_header(client):
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 403
    values = scrape(client, headers={"Authorization": "Bearer s3cret"}, REMOTE_ADDR="203.0.113.9")
    assert values[("jobsite_dead_letters", ())] == 0
