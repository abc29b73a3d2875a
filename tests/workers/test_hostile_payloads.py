"""Arguments, results and errors no job should send, recorded anyway (real workers)."""

from __future__ import annotations

import json
import zlib

import pytest
from rq import Queue

from tests.conftest import wait_for
from workers import enqueue
from workers.api import EnqueueError
from workers.conf import setting
from workers.models import JobRecord, JobStatus
from workers.redis import connection as redis_connection

pytestmark = pytest.mark.django_db(transaction=True)

TEN_MB = 10 * 1024 * 1024


def test_ten_megabyte_arguments_are_truncated_in_storage(run_burst):
    job = enqueue("tests.jobfuncs.blob_size", "x" * TEN_MB)

    run_burst(simple=True)

    record = JobRecord.objects.get(job_id=job.id)
    assert record.status == JobStatus.FINISHED
    assert record.result_repr == str(TEN_MB)  # the job itself got all of it
    limit = setting("REPR_LIMIT")
    assert len(record.args_repr) < limit + 60
    assert record.args_repr.startswith("('xxxx")
    assert record.args_repr.endswith(f"… [{TEN_MB + 5 - limit} more characters]")


@pytest.mark.parametrize("simple", [False, True], ids=["forking", "simple"])
def test_nul_and_non_utf8_text_in_errors_and_results_is_recorded(run_burst, simple):
    surrogates = b"caf\xe9 \xff".decode("utf-8", "surrogateescape")
    failing = enqueue("tests.jobfuncs.fail_with", f"nul\x00byte and {surrogates}", max_attempts=1)
    raw = enqueue("tests.jobfuncs.raw_bytes")
    with_bytes_arg = enqueue("tests.jobfuncs.blob_size", b"\x00\xff\xfe")

    run_burst(simple=simple)

    dead = JobRecord.objects.get(job_id=failing.id)
    assert dead.status == JobStatus.DEAD  # before: the event was set aside as poison on PostgreSQL
    error = dead.errors.get()
    assert error.message == "nul\\x00byte and caf\\udce9 \\udcff"
    assert "\x00" not in error.traceback
    finished = JobRecord.objects.get(job_id=raw.id)
    assert finished.status == JobStatus.FINISHED
    assert finished.result_repr == repr(b"\xff\xfe\x00not utf-8 \xc3\x28")
    assert JobRecord.objects.get(job_id=with_bytes_arg.id).args_repr == repr((b"\x00\xff\xfe",))


def test_unpicklable_result_finishes_the_job_with_its_repr(run_burst):
    job = enqueue("tests.jobfuncs.unpicklable_result")

    run_burst()

    record = JobRecord.objects.get(job_id=job.id)
    assert record.status == JobStatus.FINISHED, record.last_error
    assert record.result_repr.startswith("<unlocked _thread.lock object")
    assert record.attempts == 1


def test_undeserializable_payload_is_recorded_not_lost(run_burst):
    # A producer on another serializer (or a corrupted payload): the worker cannot even
    # read the function name; the job must still end with its reason written.
    before = enqueue("tests.jobfuncs.add", 10, 1)
    job = Queue("default", connection=redis_connection()).enqueue("tests.jobfuncs.add", 1, 2)
    redis_connection().hset(f"rq:job:{job.id}", "data", b"\x80\x05not a pickle")
    after = enqueue("tests.jobfuncs.add", 20, 2)

    run_burst()

    record = JobRecord.objects.get(job_id=job.id)
    assert record.status == JobStatus.DEAD  # a plain-RQ job without Retry: failed once, as RQ does
    error = record.errors.get()
    assert error.exc_type.endswith("DeserializationError") or "pickle" in error.message.lower(), error.message
    # The good jobs on either side of it run as usual, in the same worker.
    for good, result in ((before, "11"), (after, "22")):
        assert (JobRecord.objects.get(job_id=good.id).status, JobRecord.objects.get(job_id=good.id).result_repr) == (
            JobStatus.FINISHED,
            result,
        )


def test_json_serializer_keeps_pickle_out_of_redis(start_worker, settings, monkeypatch):
    settings.JOBSITE_SERIALIZER = "json"
    for name in settings.RQ_QUEUES:
        monkeypatch.setitem(settings.RQ_QUEUES[name], "SERIALIZER", "json")
    monkeypatch.setenv("JOBSITE_SERIALIZER", "json")

    job = enqueue("tests.jobfuncs.add", 2, 3)
    data = zlib.decompress(redis_connection().hget(f"rq:job:{job.id}", "data"))  # RQ compresses it
    assert json.loads(data)[0] == "tests.jobfuncs.add"  # JSON all the way: no pickle in Redis

    with pytest.raises(EnqueueError, match="cannot be serialized with 'json'"):
        enqueue("tests.jobfuncs.blob_size", {1, 2, 3})

    start_worker()
    record = wait_for(lambda: JobRecord.objects.filter(job_id=job.id, status=JobStatus.FINISHED).first(), timeout=30)
    assert record.result_repr == "5"
    assert record.args_repr == "(2, 3)"


def test_names_longer_than_their_columns_are_cut_to_fit_and_recorded(run_burst):
    from tests.jobfuncs import LONG_NAME

    job = enqueue(f"tests.jobfuncs.{LONG_NAME}", key="k" * 400, max_attempts=1)
    run_burst(simple=True)

    record = JobRecord.objects.get(job_id=job.id)  # recorded, not set aside
    assert record.status == JobStatus.DEAD
    assert len(record.func) <= 255 and record.func.startswith("tests.jobfuncs.long_nnn")
    assert record.func.endswith("more characters]")
    assert len(record.key) <= 255 and record.key.startswith("kkkk")
    (error,) = record.errors.all()
    assert len(error.exc_type) <= 255 and "Exxxx" in error.exc_type
    assert error.message == "a long exception type"
    assert redis_connection().llen("jobsite:events:unapplied") == 0
