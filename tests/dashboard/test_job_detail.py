"""One job's page: escaped arguments and errors, every attempt, live progress, log lines, actions."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tests.conftest import wait_for
from tests.factories import JobErrorFactory, JobRecordFactory
from workers import enqueue
from workers.models import JobRecord, JobStatus

pytestmark = pytest.mark.django_db


def test_arguments_and_errors_are_escaped_and_long_values_folded(staff_client):
    record = JobRecordFactory(
        job_id="evil",
        status=JobStatus.DEAD,
        args_repr="('<script>alert(1)</script>',)",
        kwargs_repr="{'blob': '" + "x" * 1000 + "'}",
    )
    JobErrorFactory(
        job=record, message="<img src=x onerror=alert(2)>", traceback="Traceback...\n<script>bad()</script>"
    )

    body = staff_client.get("/dashboard/jobs/evil/").content.decode()

    assert "<script>alert(1)</script>" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "<img src=x" not in body and "&lt;img src=x onerror=alert(2)&gt;" in body
    assert "<script>bad()</script>" not in body
    assert "1012 characters: show all" in body  # the long kwargs are folded, the whole value inside


@pytest.mark.django_db(transaction=True)
def test_every_attempt_shows_its_traceback(staff_client, start_worker):
    job = enqueue("tests.jobfuncs.fail", "disk full", max_attempts=2)
    start_worker()
    wait_for(lambda: JobRecord.objects.filter(job_id=job.id, status=JobStatus.DEAD).exists(), timeout=30)

    body = staff_client.get(f"/dashboard/jobs/{job.id}/").content.decode()

    assert body.count('<details class="error"') == 2
    assert "attempt 1</strong>" in body and "attempt 2</strong>" in body
    assert body.count("raise ValueError(message)") == 2
    assert ">Retry</button>" in body and ">Run again</button>" in body and ">Cancel</button>" not in body


@pytest.mark.django_db(transaction=True)
def test_live_panel_polls_while_running_and_answers_286_once_ended(htmx_client, start_worker):
    job = enqueue("tests.jobfuncs.slow_steps", 8, 0.6)  # long enough to be seen running on a busy machine
    start_worker()
    running = wait_for(
        lambda: JobRecord.objects.filter(job_id=job.id, status=JobStatus.STARTED, progress__gte=25).first(), timeout=30
    )
    assert running
    live = htmx_client.get(f"/dashboard/jobs/{job.id}/")
    assert live.status_code == 200
    body = live.content.decode()
    assert 'data-poll="2000"' in body and '<progress id="job-progress"' in body and "step " in body

    wait_for(lambda: JobRecord.objects.filter(job_id=job.id, status=JobStatus.FINISHED).exists(), timeout=30)
    ended = htmx_client.get(f"/dashboard/jobs/{job.id}/")
    assert ended.status_code == 286
    assert "data-poll" not in ended.content.decode()
    assert 'value="100"' in ended.content.decode()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("simple", [False, True], ids=["forking", "simple"])
def test_log_lines_of_the_job_are_captured_and_shown_escaped(staff_client, run_burst, simple):
    job = enqueue("tests.jobfuncs.chatty", 3)
    run_burst(simple=simple)

    body = staff_client.get(f"/dashboard/jobs/{job.id}/").content.decode()

    for n in (1, 2, 3):
        assert f"processed item {n} of 3" in body
    assert "done &lt;b&gt;here&lt;/b&gt;" in body
    assert "Worker " not in body.split('id="logs"', 1)[1]  # the worker's own chatter is not the job's


@pytest.mark.django_db(transaction=True)
def test_retry_button_reruns_a_dead_job_and_a_double_click_retries_once(staff_client, run_burst):
    job = enqueue("tests.jobfuncs.flaky", "detail", 1, max_attempts=1)
    run_burst()
    assert JobRecord.objects.get(job_id=job.id).status == JobStatus.DEAD

    first = staff_client.post(f"/dashboard/jobs/{job.id}/retry/", headers={"HX-Request": "true"})
    second = staff_client.post(f"/dashboard/jobs/{job.id}/retry/", headers={"HX-Request": "true"})

    assert "Retried: the job is queued" in first.content.decode()
    assert first.content.decode().lstrip().startswith('<div id="job-live"')
    assert "already queued again" in second.content.decode()
    # The record still reads "dead" until the recorder applies the retry, but RQ has it
    # queued: the live panel keeps polling instead of answering 286.
    assert JobRecord.objects.get(job_id=job.id).status == JobStatus.DEAD
    live = staff_client.get(f"/dashboard/jobs/{job.id}/", headers={"HX-Request": "true"})
    assert live.status_code == 200 and 'data-poll="2000"' in live.content.decode()
    run_burst()
    record = JobRecord.objects.get(job_id=job.id)
    assert (record.status, record.attempts) == (JobStatus.FINISHED, 2)


@pytest.mark.django_db(transaction=True)
def test_cancel_a_waiting_job_and_run_a_finished_one_again(staff_client, run_burst):
    from workers.recording.consumer import drain

    waiting = enqueue("tests.jobfuncs.add", 1, 1, queue="low")
    drain()
    response = staff_client.post(f"/dashboard/jobs/{waiting.id}/cancel/")
    assert response.status_code == 302
    assert "Canceled: the job will not run." in staff_client.get(response["Location"]).content.decode()
    drain()
    assert JobRecord.objects.get(job_id=waiting.id).status == JobStatus.CANCELED

    done = enqueue("tests.jobfuncs.add", 2, 5)
    run_burst()
    again = staff_client.post(f"/dashboard/jobs/{done.id}/run-again/", headers={"HX-Request": "true"})
    twice = staff_client.post(f"/dashboard/jobs/{done.id}/run-again/", headers={"HX-Request": "true"})
    new_id = again.content.decode().split("Enqueued a copy of this job as ", 1)[1].split(".", 1)[0]
    assert new_id in twice.content.decode()  # the double click answers the same copy
    run_burst()
    copy = JobRecord.objects.get(job_id=new_id)
    assert (copy.status, copy.result_repr, copy.parent_job_id) == (JobStatus.FINISHED, "7", done.id)
    assert JobRecord.objects.filter(func="tests.jobfuncs.add", args_repr="(2, 5)").count() == 2


def test_an_action_that_does_not_fit_the_state_says_why(staff_client):
    JobRecordFactory(job_id="fine", status=JobStatus.FINISHED)
    body = staff_client.post("/dashboard/jobs/fine/retry/", headers={"HX-Request": "true"}).content.decode()
    assert "only dead, canceled or stopped jobs can be retried" in body


@pytest.mark.django_db(transaction=True)
def test_live_panel_keeps_polling_until_the_recorder_has_caught_up_with_rq(htmx_client, run_burst):
    from django_rq import get_worker

    from workers.recording.consumer import drain
    from workers.runtime.worker import TrackingSimpleWorker

    job = enqueue("tests.jobfuncs.flaky", "lag", 1, max_attempts=1)
    run_burst(simple=True)
    htmx_client.post(f"/dashboard/jobs/{job.id}/retry/")
    # The retry has finished in RQ, but its events are not recorded yet: the record says dead.
    worker = get_worker("default", worker_class=TrackingSimpleWorker)
    worker.run_recorder = False
    worker.work(burst=True, with_scheduler=False)
    assert JobRecord.objects.get(job_id=job.id).status == JobStatus.DEAD
    assert htmx_client.get(f"/dashboard/jobs/{job.id}/").status_code == 200

    drain()
    done = htmx_client.get(f"/dashboard/jobs/{job.id}/")
    assert done.status_code == 286 and 'id="job-status">finished<' in done.content.decode()


@pytest.mark.django_db(transaction=True)
def test_retry_now_on_a_job_in_backoff_queues_its_next_attempt_at_once(staff_client, run_burst, settings):
    from workers.recording.consumer import drain

    settings.JOBSITE = {**settings.JOBSITE, "RETRY": {"max_attempts": 3, "base": 600, "cap": 3600, "jitter": 0.0}}
    job = enqueue("tests.jobfuncs.flaky", "now", 1)
    run_burst()
    page = staff_client.get(f"/dashboard/jobs/{job.id}/").content.decode()
    assert f'action="/dashboard/jobs/{job.id}/retry-now/"' in page and ">Retry now</button>" in page

    answer = staff_client.post(f"/dashboard/jobs/{job.id}/retry-now/", headers={"HX-Request": "true"})
    again = staff_client.post(f"/dashboard/jobs/{job.id}/retry-now/")  # no htmx: a redirect and a message

    assert "Queued now: the next attempt runs without waiting for the backoff." in answer.content.decode()
    assert answer.content.decode().lstrip().startswith('<div id="job-live"')
    assert again.status_code == 302 and again["Location"] == f"/dashboard/jobs/{job.id}/"
    assert "no longer waits for its backoff" in staff_client.get(again["Location"]).content.decode()
    drain()
    assert ">Retry now</button>" not in staff_client.get(f"/dashboard/jobs/{job.id}/").content.decode()  # queued
    run_burst()
    record = JobRecord.objects.get(job_id=job.id)
    assert (record.status, record.attempts) == (JobStatus.FINISHED, 2)


@pytest.mark.parametrize("status", [JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEAD, JobStatus.FINISHED])
def test_retry_now_is_offered_only_while_a_job_waits_for_its_backoff(staff_client, status):
    JobRecordFactory(job_id="some-job", status=status)
    assert "Retry now" not in staff_client.get("/dashboard/jobs/some-job/").content.decode()
    JobRecordFactory(job_id="in-backoff", status=JobStatus.RETRYING)
    assert ">Retry now</button>" in staff_client.get("/dashboard/jobs/in-backoff/").content.decode()


def test_retry_now_is_an_operators_post(staff_client):
    JobRecordFactory(job_id="in-backoff", status=JobStatus.RETRYING)
    viewer = Client()
    viewer.force_login(get_user_model().objects.create_user("viewer", password="pw", is_staff=True))

    assert staff_client.get("/dashboard/jobs/in-backoff/retry-now/").status_code == 405
    assert viewer.post("/dashboard/jobs/in-backoff/retry-now/").status_code == 403
    assert Client().post("/dashboard/jobs/in-backoff/retry-now/")["Location"].startswith("/login/")
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(get_user_model().objects.get(username="operator"))
    assert strict.post("/dashboard/jobs/in-backoff/retry-now/").status_code == 403  # no CSRF token
    assert "Retry now" not in viewer.get("/dashboard/jobs/in-backoff/").content.decode()
    assert staff_client.post("/dashboard/jobs/no-such-job/retry-now/").status_code == 404
