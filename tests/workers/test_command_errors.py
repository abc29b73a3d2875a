"""Bad command-line input and bad settings end jobsite's commands with one clear line and
exit status 2, never a traceback; each next to the same command run well."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.conf import settings

from tests.conftest import ROOT, database_url

pytestmark = pytest.mark.django_db(transaction=True)

COMMANDS = {
    "rqworker": ["rqworker", "--burst", "--name", "cli-test-worker"],
    "record_events": ["record_events", "--burst"],
    "run_scheduler": ["run_scheduler", "--once", "--no-sync", "--name", "cli-test"],
    "prune_jobs": ["prune_jobs"],
}
BAD_SETTINGS = [
    pytest.param({"REDIS_URL": "notaurl"}, "REDIS_URL 'notaurl' is not a Redis URL", id="redis-no-scheme"),
    pytest.param(
        {"REDIS_URL": "redis://:99999"},
        "REDIS_URL 'redis://:99999' is not a Redis URL (ValueError: Port out of range",
        id="redis-bad-port",
    ),
    pytest.param({"DATABASE_URL": "garbage"}, "DATABASE_URL 'garbage' is not a database URL", id="database-garbage"),
    pytest.param(
        {"JOBSITE_SERIALIZER": "no.such.Serializer"},
        "JOBSITE_SERIALIZER 'no.such.Serializer' is not a serializer",
        id="unknown-serializer",
    ),
]


def manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "jobsite.settings.test",
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        **env,
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60
    )


def assert_one_line_error(done: subprocess.CompletedProcess[str], expected: str, status: int = 2) -> None:
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert expected in lines[0], output
    assert done.returncode == status, output


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_runs_with_good_settings(command):
    done = manage(*COMMANDS[command])
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(("env", "expected"), BAD_SETTINGS)
def test_bad_settings_are_one_line_and_exit_status_2(command, env, expected):
    assert_one_line_error(manage(*COMMANDS[command], **env), expected)


def test_a_password_in_a_bad_url_is_not_shown():
    done = manage("prune_jobs", DATABASE_URL="postgres://jobsite:s3cret@db:port/jobsite")
    assert_one_line_error(done, "DATABASE_URL 'postgres://***@db:port/jobsite' is not a database URL")
    assert "s3cret" not in done.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["rqworker", "nosuchqueue"], "unknown queue 'nosuchqueue'; configured queues: high, default, low"),
        (["rqworker", "default", "nope", "nada"], "unknown queues 'nope', 'nada'; configured queues: high, default"),
        (["rqworker", "--worker-class", "no.such.Worker"], "--worker-class 'no.such.Worker' cannot be imported"),
        (["rqworker", "--worker-class", "workers.conf.setting"], "is not a subclass of rq.worker.BaseWorker"),
        (["rqworker", "--job-class", "rq.queue.Queue"], "--job-class 'rq.queue.Queue' is not a subclass of rq.job.Job"),
        (["rqworker", "--serializer", "nope"], "--serializer 'nope' is not a serializer"),
        (["prune_jobs", "--older-than", "a month"], "a month"),
        (["prune_jobs", "--batch-size", "0"], "--batch-size must be at least 1"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_status_2(args, expected):
    assert_one_line_error(manage(*args, "--burst") if args[0] == "rqworker" else manage(*args), expected)


def test_a_good_queue_and_worker_class_run():
    done = manage("rqworker", "default", "--burst", "--worker-class", "workers.runtime.worker.TrackingSimpleWorker")
    assert done.returncode == 0, done.stdout + done.stderr


def test_redis_out_of_reach_is_one_line_and_exit_status_1():
    done = manage("record_events", "--burst", REDIS_URL="redis://127.0.0.1:1/0")
    assert_one_line_error(done, "Redis is out of reach (redis://127.0.0.1:1/0): ConnectionError", status=1)


def test_manage_check_reports_bad_jobsite_settings_as_system_check_errors():
    assert manage("check").returncode == 0

    done = manage("check", REDIS_URL="notaurl", JOBSITE_SERIALIZER="nope")

    assert done.returncode == 1
    assert "(workers.E002) REDIS_URL 'notaurl' is not a Redis URL" in done.stderr
    assert "(workers.E002) JOBSITE_SERIALIZER 'nope' is not a serializer" in done.stderr
    assert "Traceback" not in done.stderr
