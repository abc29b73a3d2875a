"""Poison isolation in running recorders: `record_events` (burst and running) and a worker's
companion take malformed stream entries and go on recording real jobs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db.models import Q
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.conftest import ROOT, database_url, wait_for
from workers import enqueue, events
from workers.models import JobRecord, JobStatus
from workers.redis import STREAM_GROUP, STREAM_KEY, UNAPPLIED_KEY

pytestmark = pytest.mark.django_db(transaction=True)

# What wedged every recorder before (valid JSON that is not an object), and what was dropped.
POISON = [
    {b"d": b"null"},
    {b"d": b"[1,2]"},
    {b"d": b'"str"'},
    {b"d": b"7"},
    {b"d": b"{not json"},
    {b"data": b"no d"},
    {b"\xff\xfe": b"\x00\x80"},
    {b"d": json.dumps({"e": "progress", "id": "ghost", "a": 1, "t": time.time(), "p": 5}).encode()},
]


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "jobsite.settings.test",
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "PYTHONUNBUFFERED": "1",
    }


def _recorded(job_ids: list[str]) -> bool:
    return JobRecord.objects.filter(job_id__in=job_ids, status=JobStatus.FINISHED).count() == len(job_ids)


def _no_phantoms() -> bool:
    return not JobRecord.objects.filter(Q(queue="") | Q(func="")).exists()


def test_record_events_burst_sets_poison_aside_and_exits_0(redis_conn):
    redis_conn.xadd(STREAM_KEY, events.encode({"e": "queued", "id": "good-1", "a": 1, "q": "default", "f": "a.b"}))
    for fields in POISON:
        redis_conn.xadd(STREAM_KEY, fields)
    redis_conn.xadd(STREAM_KEY, events.encode({"e": "queued", "id": "good-2", "a": 1, "q": "default", "f": "a.b"}))

    done = subprocess.run(
        [sys.executable, "manage.py", "record_events", "--burst"], cwd=ROOT, env=_env(), capture_output=True, timeout=60
    )

    assert done.returncode == 0, done.stderr.decode()[-2000:]
    # The ghost's progress waits a while (RECORDER_HOLD) for its job's record.
    assert "10 events: 2 applied, 7 set aside" in done.stdout.decode()
    assert "1 held" in done.stdout.decode()
    assert set(JobRecord.objects.values_list("job_id", flat=True)) == {"good-1", "good-2"}
    assert redis_conn.llen(UNAPPLIED_KEY) == len(POISON) - 1
    assert redis_conn.xlen(STREAM_KEY) == 0


@pytest.fixture
def recorder_process(transactional_db, tmp_path: Path):
    """`manage.py record_events` running on its own, as deploy/ runs it."""
    log = tmp_path / "record_events.log"
    args = [sys.executable, "manage.py", "record_events"]
    process = subprocess.Popen(args, cwd=ROOT, env=_env(), stdout=log.open("wb"), stderr=subprocess.STDOUT)
    yield process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_a_running_record_events_keeps_recording_after_poison(redis_conn, recorder_process, start_worker):
    start_worker("default", simple=True, extra=("--no-recorder",))
    for fields in POISON:
        redis_conn.xadd(STREAM_KEY, fields)
    jobs = [enqueue("tests.jobfuncs.add", n, 1).id for n in range(5)]

    wait_for(lambda: _recorded(jobs), timeout=40)

    wait_for(lambda: redis_conn.llen(UNAPPLIED_KEY) == len(POISON) - 1)
    assert _no_phantoms()
    assert recorder_process.poll() is None  # still running
    recorder_process.send_signal(signal.SIGTERM)
    assert recorder_process.wait(timeout=15) == 0


def test_a_workers_companion_keeps_recording_after_poison(redis_conn, start_worker):
    for fields in POISON:
        redis_conn.xadd(STREAM_KEY, fields)
    worker = start_worker("default", simple=True)
    jobs = [enqueue("tests.jobfuncs.add", n, 1).id for n in range(5)]

    wait_for(lambda: _recorded(jobs), timeout=40)

    wait_for(lambda: redis_conn.llen(UNAPPLIED_KEY) == len(POISON) - 1)
    assert _no_phantoms()
    assert worker.process.poll() is None
    assert b"Traceback" not in worker.log.read_bytes()


# --- arbitrary field maps -----------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
# Objects shaped like events (known keys, any values), so that the checks of every field
# are reached, not only the JSON parser.
EVENT_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "e": st.sampled_from(sorted(events.KINDS)) | JSON,
        "id": st.text(max_size=140) | JSON,
        "a": st.integers(-2, 2**33) | JSON,
        "t": st.floats(allow_nan=True) | st.just(time.time()) | JSON,
        **{name: JSON | st.text(max_size=300) for name in ("q", "f", "w", "xm", "origin", "key")},
        "p": st.integers(-5, 200) | JSON,
        "lines": st.lists(st.lists(JSON, max_size=6), max_size=3) | JSON,
        "max": JSON,
        "start": JSON,
    },
)
D_VALUES = st.one_of(st.binary(max_size=200), (JSON | EVENT_LIKE).map(lambda v: json.dumps(v).encode()))
FIELD_MAPS = st.dictionaries(
    st.just(b"d") | st.binary(max_size=8), st.binary(max_size=64) | D_VALUES, min_size=1, max_size=4
)


def test_arbitrary_entries_never_stop_a_live_recorder(redis_conn, recorder_process, start_worker):
    start_worker("default", simple=True, extra=("--no-recorder",))

    @hypothesis_settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(entries=st.lists(FIELD_MAPS, min_size=1, max_size=5))
    def check(entries):
        for fields in entries:
            redis_conn.xadd(STREAM_KEY, fields)
        job = enqueue("tests.jobfuncs.add", 2, 3)

        wait_for(lambda: _recorded([job.id]), timeout=30)

        # Everything before the job's events was read and acknowledged: applied, held or set aside.
        wait_for(lambda: redis_conn.xlen(STREAM_KEY) == 0)
        assert redis_conn.xpending(STREAM_KEY, STREAM_GROUP)["pending"] == 0
        assert _no_phantoms()
        assert recorder_process.poll() is None

    check()
