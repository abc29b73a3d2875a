"""Where Redis is: REDIS_URL, or REDIS_SENTINELS + REDIS_SENTINEL_MASTER (and passwords).
A malformed value stops the process with a message saying what to fix; good ones next to
it are read as meant."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from jobsite.settings.base import parse_sentinels
from tests.conftest import ROOT
from workers.conf import enqueue_wait, redis_settings


def manage_check(**env: str) -> subprocess.CompletedProcess[str]:
    """`manage.py check` in a process whose Redis environment is exactly ``env``."""
    redis_names = ("REDIS_URL", "REDIS_SENTINELS", "REDIS_SENTINEL_MASTER", "REDIS_PASSWORD",
                   "REDIS_SENTINEL_PASSWORD", "REDIS_DB", "JOBSITE_ENQUEUE_WAIT_REPLICAS")  # fmt: skip
    inherited = {k: v for k, v in os.environ.items() if k not in redis_names}
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**inherited, "DJANGO_SETTINGS_MODULE": "jobsite.settings.test", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_sentinel_addresses_are_read_as_host_port_pairs():
    assert parse_sentinels(" 10.0.0.1:26379, sentinel-2.internal:26380 ,[::1]:26381,") == [
        ("10.0.0.1", 26379),
        ("sentinel-2.internal", 26380),
        ("::1", 26381),
    ]
    assert parse_sentinels("") == []


@pytest.mark.parametrize("bad", ["10.0.0.1", "10.0.0.1:", ":26379", "10.0.0.1:port", "10.0.0.1:70000"])
def test_a_malformed_sentinel_address_among_good_ones_is_named(bad):
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="is not host:port") as info:
        parse_sentinels(f"10.0.0.1:26379,{bad},10.0.0.3:26379")
    assert repr(bad) in str(info.value)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"REDIS_SENTINELS": "127.0.0.1:26379,sentinel-two"}, "'sentinel-two' is not host:port"),
        ({"REDIS_SENTINELS": "127.0.0.1:26379"}, "REDIS_SENTINEL_MASTER is not"),
        (
            {"REDIS_SENTINELS": "127.0.0.1:26379", "REDIS_SENTINEL_MASTER": "jobsite", "REDIS_URL": "redis://x"},
            "Set REDIS_URL or REDIS_SENTINELS, not both",
        ),
        ({"REDIS_URL": "redis://127.0.0.1:6390/0", "REDIS_PASSWORD": "secret"}, "put the password and database"),
        ({"REDIS_SENTINELS": "127.0.0.1:26379", "REDIS_SENTINEL_MASTER": "m", "REDIS_DB": "one"}, "REDIS_DB must"),
        ({"JOBSITE_ENQUEUE_WAIT_REPLICAS": "all"}, "JOBSITE_ENQUEUE_WAIT_REPLICAS must be a whole number"),
    ],
)
def test_a_bad_redis_environment_stops_every_command_with_what_to_fix(env, message):
    result = manage_check(**env)

    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.slow
def test_the_sentinel_environment_of_the_deploy_example_is_accepted():
    """deploy/jobsite.env.example's commented Sentinel lines, uncommented, as the README says."""
    example = (ROOT / "deploy" / "jobsite.env.example").read_text().splitlines()
    env = dict(line[1:].split("=", 1) for line in example if re.match(r"#(REDIS_|JOBSITE_ENQUEUE_WAIT_)\w+=", line))
    assert {"REDIS_SENTINELS", "REDIS_SENTINEL_MASTER", "REDIS_PASSWORD", "JOBSITE_ENQUEUE_WAIT_REPLICAS"} <= set(env)

    result = manage_check(**env)

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_settings_give_the_factory_either_a_url_or_the_sentinels(settings):
    settings.REDIS_URL = "redis://127.0.0.1:6390/3"
    assert redis_settings().url == "redis://127.0.0.1:6390/3" and not redis_settings().sentinels

    settings.REDIS_SENTINELS = [("10.0.0.1", 26379), ("10.0.0.2", 26379)]
    settings.REDIS_SENTINEL_MASTER = "jobsite"
    settings.REDIS_PASSWORD = "secret"
    settings.REDIS_DB = 2
    where = redis_settings()
    assert where.sentinels == (("10.0.0.1", 26379), ("10.0.0.2", 26379))
    assert (where.master, where.password, where.db, where.url) == ("jobsite", "secret", 2, "")


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("REDIS_SENTINELS", [("10.0.0.1", 26379), ("10.0.0.2", "26379")], "is not a (host, port) pair"),
        ("REDIS_SENTINEL_MASTER", "", "REDIS_SENTINEL_MASTER must name"),
        ("REDIS_DB", "0", "REDIS_DB must be a database number"),
        ("ENQUEUE_WAIT", {"replicas": 0, "timeout_ms": 100}, 'JOBSITE["ENQUEUE_WAIT"] must be None or'),
        ("ENQUEUE_WAIT", {"replicas": 1, "timeout_ms": 0}, "not {'replicas': 1, 'timeout_ms': 0}"),
        ("ENQUEUE_WAIT", {"replicas": 1}, 'JOBSITE["ENQUEUE_WAIT"] must be None or'),
        ("ENQUEUE_WAIT", 1, 'JOBSITE["ENQUEUE_WAIT"] must be None or'),
    ],
)
def test_manage_check_reports_a_bad_redis_setting(settings, setting, value, message):
    settings.REDIS_SENTINELS = [("10.0.0.1", 26379)]
    settings.REDIS_SENTINEL_MASTER = "jobsite"
    settings.JOBSITE = {**settings.JOBSITE, "ENQUEUE_WAIT": {"replicas": 1, "timeout_ms": 100}}
    call_command("check")  # the good ones pass
    assert enqueue_wait() == (1, 100)

    if setting == "ENQUEUE_WAIT":
        settings.JOBSITE = {**settings.JOBSITE, "ENQUEUE_WAIT": value}
    else:
        setattr(settings, setting, value)
    with pytest.raises(SystemCheckError, match="workers.E002") as info:
        call_command("check")
    assert message in str(info.value)
