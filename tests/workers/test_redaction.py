"""Secrets a job carries never reach the database, the events stream, a page, a log line or
/metrics; the job itself still gets its real arguments."""

from __future__ import annotations

import json
import logging

import django_rq
import pytest
from django.apps import apps
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import models

from workers import enqueue, redaction
from workers.models import JobError, JobLogLine, JobRecord, JobStatus
from workers.recording.consumer import drain
from workers.redis import STREAM_KEY
from workers.runtime.worker import TrackingSimpleWorker, TrackingWorker

pytestmark = pytest.mark.django_db(transaction=True)

PIN = "7361-PIN-hidden"  # hidden by position only (JOBSITE["REDACT"]["functions"]): no pattern knows it
DB_PASSWORD = "hunter2-pw-Q9"  # a positional parameter named db_password
API_KEY = "AK-9f8e7d-secret"  # under a dict key named api_key
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.SflKxwRJSMeKKF2QT4fwpMeJf36"  # in a harmless-looking kwarg
CARD = "4111 1111 1111 1111"  # Luhn-valid
SECRETS = [PIN, DB_PASSWORD, API_KEY, JWT, "SflKxwRJSMeKKF2QT4fwpMeJf36", CARD, CARD.replace(" ", "")]

FUNC = "tests.jobfuncs.use_secrets"


@pytest.fixture
def redact_pin(settings):
    settings.JOBSITE = {**settings.JOBSITE, "REDACT": {"functions": {FUNC: {"args": [1]}}}}


def enqueue_secret_jobs() -> tuple[str, str]:
    common = dict(config={"api_key": API_KEY, "region": "eu-west"}, note=f"auth Bearer {JWT}", card=CARD)
    ok = enqueue(FUNC, "alice", PIN, DB_PASSWORD, **common)
    failing = enqueue(FUNC, "alice", PIN, DB_PASSWORD, **common, fail=True, max_attempts=1)
    return ok.id, failing.id


def run_without_recording(simple: bool) -> None:
    """A real jobsite worker runs the queue; its events stay on the stream until drain()."""
    worker = django_rq.get_worker("default", worker_class=TrackingSimpleWorker if simple else TrackingWorker)
    worker.run_recorder = False
    worker.work(burst=True, with_scheduler=False)


def database_text() -> str:
    """Every text column of every table: all models, all their string and JSON fields."""
    text_fields = (models.CharField, models.TextField, models.JSONField)
    chunks: list[str] = []
    for model in apps.get_models():
        names = [f.attname for f in model._meta.concrete_fields if isinstance(f, text_fields)]
        for row in model.objects.values_list(*names) if names else ():
            chunks += [value if isinstance(value, str) else json.dumps(value) for value in row]
    return "\n".join(chunks)


def redis_text(conn) -> str:
    """Everything in Redis but the job's own payload and return value, which RQ keeps (pickled)
    for the job to run and its producer to read, and what the test job wrote for the test."""
    chunks: list[str] = []
    for key in conn.scan_iter():
        name = key.decode()
        kind = conn.type(key).decode()
        if name.startswith("test:"):
            continue
        if kind == "hash":
            chunks += [repr(v) for f, v in conn.hgetall(key).items() if f not in (b"data",)]
        elif kind == "stream":
            for _, fields in conn.xrange(key):
                chunks += [repr(v) for f, v in fields.items() if f != b"return_value"]
        elif kind == "list":
            chunks += [repr(v) for v in conn.lrange(key, 0, -1)]
        elif kind in ("set", "zset"):
            chunks += [repr(v) for v in (conn.smembers(key) if kind == "set" else conn.zrange(key, 0, -1))]
        elif kind == "string":
            chunks.append(repr(conn.get(key)))
    return "\n".join(chunks)


def assert_no_secret(text: str, where: str) -> None:
    found = [secret for secret in SECRETS if secret in text]
    assert not found, f"{where} holds {found}"


@pytest.mark.parametrize("simple", [False, True], ids=["forking", "simple"])
def test_no_secret_of_a_job_reaches_the_database_stream_pages_or_metrics(
    simple, redact_pin, redis_conn, admin_client, client
):
    ok_id, failing_id = enqueue_secret_jobs()

    run_without_recording(simple)

    # The job got its real arguments, both times.
    received = [json.loads(item) for item in redis_conn.lrange("test:secrets:received", 0, -1)]
    config = {"api_key": API_KEY, "region": "eu-west"}
    assert received == [["alice", PIN, DB_PASSWORD, config, f"auth Bearer {JWT}", CARD]] * 2
    # What went onto the events stream (every event these runs produced) is redacted.
    stream = redis_conn.xrange(STREAM_KEY)
    assert len(stream) >= 6
    assert_no_secret("\n".join(repr(fields) for _, fields in stream), "the events stream")

    drain()

    ok, failing = JobRecord.objects.get(job_id=ok_id), JobRecord.objects.get(job_id=failing_id)
    assert (ok.status, failing.status) == (JobStatus.FINISHED, JobStatus.DEAD)
    assert_no_secret(database_text(), "the database")
    assert_no_secret(redis_text(redis_conn), "Redis")
    # What is not secret still shows, and a viewer can see where something was hidden.
    assert ok.args_repr == "('alice', '[redacted]', '[redacted]')"
    assert "'api_key': '[redacted]'" in ok.kwargs_repr and "'region': 'eu-west'" in ok.kwargs_repr
    assert "'session_token': '[redacted]'" in ok.result_repr and "'user': 'alice'" in ok.result_repr
    error = JobError.objects.get(job=failing)
    assert error.message.startswith("login failed for alice: password=[redacted], pin [redacted], card [redacted]")
    assert "Traceback" in error.traceback and "ValueError: login failed for alice" in error.traceback
    assert failing.last_error.startswith("builtins.ValueError: login failed for alice: password=[redacted]")
    lines = list(JobLogLine.objects.filter(job=ok).order_by("seq").values_list("message", flat=True))
    assert lines == [
        "connecting as alice with password=[redacted] and auth Bearer [redacted]",
        "pin [redacted], card [redacted], key [redacted]",
    ]
    assert ok.progress_message == "checking pin [redacted] with auth Bearer [redacted]"
    # Pages read the database: the job pages, the list and the admin show the redacted text.
    for url in (f"/dashboard/jobs/{ok_id}/", f"/dashboard/jobs/{failing_id}/", "/dashboard/jobs/",
                f"/admin/workers/jobrecord/{failing.pk}/change/", "/admin/workers/joblogline/"):  # fmt: skip
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert_no_secret(response.content.decode(), url)
    assert "[redacted]" in admin_client.get(f"/dashboard/jobs/{failing_id}/").content.decode()
    metrics = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert metrics.status_code == 200 and FUNC in metrics.content.decode()
    assert_no_secret(metrics.content.decode(), "/metrics")


def test_the_worker_log_shows_the_failure_redacted(redact_pin, caplog):
    _, failing_id = enqueue_secret_jobs()
    caplog.set_level(logging.DEBUG)

    run_without_recording(simple=True)

    # The job's own handlers got what it logged; jobsite's and RQ's loggers only redacted text.
    machinery = [r for r in caplog.records if r.name.split(".")[0] in ("rq", "workers")]
    failure_log = [r.getMessage() for r in machinery if "exception raised while executing" in r.getMessage()]
    assert len(failure_log) == 1 and "ValueError: login failed for alice: password=[redacted]" in failure_log[0]
    assert_no_secret("\n".join(r.getMessage() for r in machinery), "the worker's log")
    # RQ hands the failed job's arguments to log handlers as extras: redacted too.
    extras = [(r.arguments, r.kwargs) for r in machinery if hasattr(r, "arguments")]
    assert extras and all(args == "('alice', '[redacted]', '[redacted]')" for args, _ in extras)
    assert_no_secret(repr(extras), "the log record extras")


def test_rq_keeps_a_redacted_description_and_failure(redact_pin, redis_conn):
    ok_id, failing_id = enqueue_secret_jobs()
    run_without_recording(simple=True)

    queue = django_rq.get_queue("default")
    ok, failing = queue.fetch_job(ok_id), queue.fetch_job(failing_id)
    assert ok.description.startswith("tests.jobfuncs.use_secrets('alice', '[redacted]', '[redacted]'")
    assert_no_secret(ok.description, "RQ's job description")
    failure = failing.latest_result()
    assert "password=[redacted]" in failure.exc_string
    assert_no_secret(failure.exc_string, "RQ's failure result")
    # The producer still reads the real return value.
    assert ok.return_value()["session_token"] == API_KEY


def test_a_bad_setting_skips_its_bad_entries_and_keeps_the_good_ones(settings, run_burst):
    settings.JOBSITE = {
        **settings.JOBSITE,
        "REDACT": {"names": ["(unclosed", "pin_code"], "patterns": ["[bad", r"ORDER-(?P<value>\d+)"],
                   "functions": {"tests.jobfuncs.fail": {"args": "some"}}},
    }  # fmt: skip
    job = enqueue("tests.jobfuncs.fail_with", "card ORDER-12345 of pin_code=9911 password=abc123")
    other = enqueue("tests.jobfuncs.fail", "message of a function whose rule is malformed", max_attempts=1)
    kwargs_job = enqueue("tests.jobfuncs.use_secrets", "bob", "1", "2", config={"api_key": "k", "pin_code": 4},
                         note="n", card="c")  # fmt: skip

    run_burst(simple=True)

    error = JobError.objects.get(job__job_id=job.id)
    assert error.message == "card ORDER-[redacted] of pin_code=[redacted] password=[redacted]"
    assert "'pin_code': '[redacted]'" in JobRecord.objects.get(job_id=kwargs_job.id).kwargs_repr
    # A function whose own rule cannot be read is hidden whole rather than shown.
    record = JobRecord.objects.get(job_id=other.id)
    assert record.args_repr == "('[redacted]',)"


def test_manage_py_check_reports_a_bad_setting_and_passes_a_good_one(settings):
    settings.JOBSITE = {
        **settings.JOBSITE,
        "REDACT": {"names": ["pin", "(unclosed"], "card_numbers": "yes", "functions": {"a.b": {"args": [0, -1]}}},
    }
    with pytest.raises(SystemCheckError) as raised:
        call_command("check")
    report = str(raised.value)
    assert "workers.E005" in report
    assert 'JOBSITE["REDACT"]["names"][1] \'(unclosed\' is not a valid regex' in report
    assert 'JOBSITE["REDACT"]["card_numbers"] must be True or False' in report
    assert 'JOBSITE["REDACT"]["functions"][\'a.b\']["args"] must be "all" or a list of positions' in report

    settings.JOBSITE = {**settings.JOBSITE, "REDACT": {"names": ["pin"], "functions": {"a.b": "all"}}}
    call_command("check")


def test_per_function_all_hides_every_argument_and_the_result(settings, run_burst):
    settings.JOBSITE = {**settings.JOBSITE, "REDACT": {"functions": {"tests.jobfuncs.add": "all"}}}
    job = enqueue("tests.jobfuncs.add", 40, 2)
    run_burst(simple=True)

    record = JobRecord.objects.get(job_id=job.id)
    assert (record.args_repr, record.result_repr) == ("('[redacted]', '[redacted]')", "'[redacted]'")
    assert job.return_value() == 42


def test_defaults_can_be_turned_off(settings):
    settings.JOBSITE = {**settings.JOBSITE, "REDACT": {"defaults": False, "names": ["pin"], "card_numbers": False}}
    assert redaction.redact_kwargs("a.b", {"password": "x", "pin": "1"}) == {"password": "x", "pin": "[redacted]"}
    assert redaction.redact_text("a.b", f"password=x pin=1 {CARD}") == f"password=x pin=[redacted] {CARD}"


def test_ordinary_values_are_left_alone():
    text = (
        "order 4111111111111112 (not Luhn) at 1700000000123 ms, line 1234, token == expected, "
        "Basic auth off, retry in 5 s, user=bob"
    )
    assert redaction.redact_text("a.b", text) == text
    assert redaction.redact_args("a.b", ("bob", 42, {"region": "eu"})) == ("bob", 42, {"region": "eu"})


def test_the_job_arguments_are_copied_never_changed():
    config = {"api_key": API_KEY, "nested": [{"password": DB_PASSWORD}]}
    redacted = redaction.redact_kwargs("a.b", {"config": config})
    assert redacted == {"config": {"api_key": "[redacted]", "nested": [{"password": "[redacted]"}]}}
    assert config == {"api_key": API_KEY, "nested": [{"password": DB_PASSWORD}]}


@pytest.mark.parametrize(
    "text, shown",
    [
        ("login failed: password=hunter2 user=bob", "login failed: password=[redacted] user=bob"),
        ("{'note': 'db_password=hunter2', 'n': 1}", "{'note': 'db_password=[redacted]', 'n': 1}"),
        ('{"Api-Key": "AbC123", "region": "eu"}', '{"Api-Key": "[redacted]", "region": "eu"}'),
        ("GET /x?api_key=abc123&page=2", "GET /x?api_key=[redacted]&page=2"),
        ("Authorization: Bearer abcdefghijkl.mnop", "Authorization: [redacted] [redacted]"),
        ("connect postgres://app:s3cr3t@db:5432/app", "connect postgres://app:[redacted]@db:5432/app"),
        ("paid with 5555-5555-5555-4444 and 378282246310005", "paid with [redacted] and [redacted]"),
        ("key ghp_abcdefghijklmnopqrstuvwxyz0123456789 sk_live_abcdefghijkl", "key [redacted] [redacted]"),
        ("password=[redacted] again", "password=[redacted] again"),
    ],
)
def test_text_forms_of_a_secret_are_masked(text, shown):
    assert redaction.redact_text("a.b", text) == shown


def test_a_setting_of_the_wrong_shape_falls_back_to_the_built_in_rules(settings):
    settings.JOBSITE = {**settings.JOBSITE, "REDACT": ["pin"]}
    assert redaction.setting_errors(["pin"]) == [
        "JOBSITE[\"REDACT\"] must be a dict (keys: card_numbers, defaults, functions, names, patterns), not ['pin']"
    ]
    assert redaction.redact_kwargs("a.b", {"password": "x", "pin": "1"}) == {"password": "[redacted]", "pin": "1"}
