"""The claim fence: a worker whose job was claimed again (a watchdog presumed it dead and
the job went to another worker) writes nothing of its late outcome; a worker presumed dead
takes no job until it has registered again."""

from __future__ import annotations

import logging

import pytest
from rq import SimpleWorker
from rq.job import Job

from tests.conftest import wait_for
from tests.faults.conftest import mentions, wait_for_mention
from workers import enqueue, events
from workers.models import JobRecord, JobStatus
from workers.redis import ALIVE_KEY, CLAIM_KEY, STREAM_KEY
from workers.rq.claims import Claim, FencedRedis, claim_holder, claim_revoke, claim_take, claim_take_over_dead
from workers.rq.job import TrackedJob

pytestmark = pytest.mark.django_db(transaction=True)

DROPPED = "dropped its late outcome of job"


def _events_of(redis_conn, job_id: str) -> list[tuple[str, int]]:
    """(event, attempt) of every tracking event of ``job_id`` still in the stream."""
    found = []
    for _id, fields in redis_conn.xrange(STREAM_KEY):
        event = events.decode(fields)
        if event["id"] == job_id:
            found.append((event["e"], int(event["a"])))
    return found


@pytest.mark.parametrize("simple", [False, True], ids=["forking", "simple"])
@pytest.mark.parametrize("fail", [False, True], ids=["finished", "failed"])
def test_a_late_outcome_is_dropped_once_the_job_was_claimed_again(run_burst, redis_conn, tmp_path, simple, fail):
    job = enqueue("tests.jobfuncs.claimed_elsewhere", fail=fail)
    # A file, not caplog: the forking worker's horse logs in a process of its own.
    handler = logging.FileHandler(tmp_path / "worker.log")
    logging.getLogger("rq.worker").addHandler(handler)
    try:
        run_burst("default", simple=simple)
    finally:
        logging.getLogger("rq.worker").removeHandler(handler)
        handler.close()

    # RQ's job hash and registries are as the other worker left them: no status, result,
    # retry or failed entry from the late attempt 1.
    status, worker = redis_conn.hmget(job.key, "status", "worker_name")
    assert (status, worker) == (b"started", b"elsewhere")
    assert not redis_conn.zcard("rq:failed:default")
    assert not redis_conn.zcard("rq:scheduled:default")
    assert not redis_conn.lrange("rq:queue:default", 0, -1)
    assert TrackedJob.fetch(job.id, connection=redis_conn).latest_result() is None
    assert redis_conn.get(CLAIM_KEY.format(job.id)) == b"2 elsewhere 0000"
    # No outcome event for attempt 1 that could overwrite attempt 2's record.
    assert not {kind for kind, _a in _events_of(redis_conn, job.id)} - {"queued", "started"}
    assert JobRecord.objects.get(job_id=job.id).status == JobStatus.STARTED
    # Logged once (by the work horse, or the simple worker itself), at WARNING.
    dropped = [line for line in (tmp_path / "worker.log").read_text().splitlines() if DROPPED in line]
    assert len(dropped) == 1 and f"job {job.id} attempt 1: the job was claimed again" in dropped[0]


def test_an_outcome_whose_claim_holds_is_written_and_releases_the_claim(run_burst, redis_conn):
    job = enqueue("tests.jobfuncs.add", 2, 3)
    run_burst("default")
    assert TrackedJob.fetch(job.id, connection=redis_conn).get_status() == "finished"
    assert JobRecord.objects.get(job_id=job.id).status == JobStatus.FINISHED
    assert redis_conn.get(CLAIM_KEY.format(job.id)) is None


def test_a_plain_rq_worker_keeps_rq_semantics_whatever_claim_there_is(redis_conn):
    from rq import Queue

    queue = Queue("default", connection=redis_conn)
    job = queue.enqueue("tests.jobfuncs.add", 1, 1)
    redis_conn.set(CLAIM_KEY.format(job.id), "9 someone-else 0000 revoked")
    SimpleWorker([queue], connection=redis_conn).work(burst=True)
    assert Job.fetch(job.id, connection=redis_conn).get_status() == "finished"


def test_a_fenced_transaction_is_not_sent_when_the_claim_changes_after_it_was_read(redis_conn):
    claim, refused = claim_take(redis_conn, Claim("job-x", 1, "w1"), timeout=60)
    assert refused is None
    fenced = FencedRedis(redis_conn, claim)
    pipe = fenced.pipeline()
    pipe.watch("unrelated")
    pipe.multi()  # the claim is read and watched here
    pipe.set("outcome", "attempt 1")
    with redis_conn.pipeline() as watchdog:  # the watchdog revokes it in between
        claim_revoke(watchdog, "job-x", attempt=1, worker="w1")
        watchdog.execute()
    with pytest.raises(Exception, match="Watch"):
        pipe.execute()
    assert redis_conn.get("outcome") is None
    # Retried, the transaction now finds the claim revoked: ClaimLost, nothing written.
    with pytest.raises(Exception, match="claim of attempt 1"):
        fenced.pipeline().set("outcome", "attempt 1").execute()
    assert redis_conn.get("outcome") is None


def test_a_claim_checked_ahead_fences_the_whole_transaction_it_hands_on(redis_conn):
    """A failure's claim is checked before RQ's code runs (FencedRedis.arm): the pipeline
    RQ then gets still sends its commands as one transaction, which a revoke in between
    stops whole; a claim already lost is named ahead and nothing is held back."""
    claim, _ = claim_take(redis_conn, Claim("job-a", 1, "w1"), timeout=60)
    fenced = FencedRedis(redis_conn, claim)
    assert fenced.arm() is None
    pipe = fenced.pipeline()
    pipe.set("status", "failed")
    pipe.xadd("events", {"e": "dead"})
    assert redis_conn.get("status") is None  # queued for the transaction, not sent one by one
    with redis_conn.pipeline() as watchdog:
        claim_revoke(watchdog, "job-a", attempt=1, worker="w1")
        watchdog.execute()
    with pytest.raises(Exception, match="Watch"):
        pipe.execute()
    assert redis_conn.get("status") is None and redis_conn.exists("events") == 0
    late = FencedRedis(redis_conn, claim)
    assert late.arm() == f"{claim.value} revoked"
    assert late.lost is None


def test_a_revoked_claim_cannot_be_taken_back_by_a_late_take_but_the_next_attempt_can(redis_conn):
    late = Claim("job-y", 1, "cut-off")
    claim_revoke(redis_conn, "job-y", attempt=1, worker="cut-off")  # before its take arrived
    assert claim_take(redis_conn, late, timeout=60)[1] == "1 cut-off * revoked"
    newer, refused = claim_take(redis_conn, Claim("job-y", 2, "other"), timeout=60)
    assert refused is None and newer.after_revoked
    assert claim_take(redis_conn, Claim("job-y", 1, "cut-off"), timeout=60)[1] is not None  # older attempt
    assert claim_take(redis_conn, Claim("job-y", 2, "third"), timeout=60)[1] is not None  # another live one's

    # Attempt 2 ends: its claim stays (a day), so that attempt 1's outcome, arriving even
    # later, still finds the job claimed by someone else.
    FencedRedis(redis_conn, newer).pipeline().set("outcome", "attempt 2").execute()
    assert redis_conn.get(newer.key) == newer.value.encode() and redis_conn.ttl(newer.key) > 3600
    with pytest.raises(Exception, match="claim of attempt 1"):
        FencedRedis(redis_conn, late).pipeline().set("outcome", "attempt 1").execute()
    assert redis_conn.get("outcome") == b"attempt 2"


def test_a_worker_takes_over_its_own_earlier_claim_on_the_same_attempt(redis_conn):
    # Its horse was killed before the job started; the job went back to its queue and came
    # back to the same worker, attempt 1 again, after a watchdog had revoked another's claim.
    claim_revoke(redis_conn, "job-z", attempt=1, worker="died-first")
    first, refused = claim_take(redis_conn, Claim("job-z", 1, "w8"), timeout=60)
    assert refused is None and first.after_revoked
    again, refused = claim_take(redis_conn, Claim("job-z", 1, "w8"), timeout=60)
    assert refused is None and again.after_revoked
    assert redis_conn.get(again.key).decode() == again.value
    # Another worker's live claim on the same attempt is still refused.
    assert claim_take(redis_conn, Claim("job-z", 1, "w9"), timeout=60)[1] == again.value
    # But that very claim, once revoked, is not taken back by a take reaching Redis late.
    claim_revoke(redis_conn, "job-z", attempt=1, worker="w8")
    assert claim_take(redis_conn, again, timeout=60)[1] == f"{again.value} revoked"


def test_another_workers_live_claim_on_the_same_attempt_is_taken_over_only_when_that_worker_is_dead(redis_conn):
    # The job came back to a queue without a watchdog's revoke: its first worker was killed
    # after taking the claim, and RQ put the job back from that worker's intermediate list.
    redis_conn.set(Claim("job-d", 1, "x").key, "1 killed-worker abcd")
    redis_conn.set(Claim("job-l", 1, "x").key, "1 live-worker abcd")
    redis_conn.set(Claim("job-n", 1, "x").key, "2 killed-worker abcd")  # a later attempt's
    alive = {"live-worker"}.__contains__

    for job_id in ("job-d", "job-l", "job-n"):
        claim = Claim(job_id, 1, "w8")
        refused = claim_take(redis_conn, claim, timeout=60)[1]
        assert refused is not None
        taken, held = claim_take_over_dead(redis_conn, claim, refused, timeout=60, alive=alive)
        if job_id == "job-d":
            assert held is None and taken.after_revoked
            assert redis_conn.get(claim.key).decode() == claim.value
        else:  # a live worker's claim, or a later attempt: still refused, and left as it was
            assert held == refused and redis_conn.get(claim.key).decode() == refused
    # A malformed holder is never taken over by this path (the take itself handles it).
    assert claim_take_over_dead(redis_conn, Claim("job-m", 1, "w8"), "garbage", timeout=60, alive=alive)[1] == "garbage"


@pytest.mark.parametrize("holder_alive", [False, True], ids=["holder-dead", "holder-alive"])
def test_a_worker_finishes_a_job_whose_claim_a_dead_worker_left_behind(run_burst, redis_conn, holder_alive):
    job = enqueue("tests.jobfuncs.add", 2, 3)
    redis_conn.set(CLAIM_KEY.format(job.id), "1 killed-worker abcd", ex=600)
    if holder_alive:
        redis_conn.set(ALIVE_KEY.format("killed-worker"), "1", ex=600)

    run_burst("default")

    status = TrackedJob.fetch(job.id, connection=redis_conn).get_status()
    record = JobRecord.objects.get(job_id=job.id)
    if holder_alive:  # a live execution holds the attempt: this one's outcome is not written
        assert status == "started" and record.status == JobStatus.STARTED
        assert redis_conn.get(CLAIM_KEY.format(job.id)) == b"1 killed-worker abcd"
    else:
        assert status == "finished" and record.status == JobStatus.FINISHED
        assert TrackedJob.fetch(job.id, connection=redis_conn).return_value() == 5


def test_a_hand_written_malformed_claim_is_taken_over_and_other_jobs_claims_are_untouched(redis_conn):
    # Not "<attempt> <worker> <token>", and not even UTF-8: written by hand or another tool.
    redis_conn.set(Claim("job-bad", 1, "w").key, b"\xff\xfe garbage")
    good, refused = claim_take(redis_conn, Claim("job-good", 1, "w"), timeout=60)
    assert refused is None
    taken, refused = claim_take(redis_conn, Claim("job-bad", 1, "w"), timeout=60)
    assert refused is None and redis_conn.get(taken.key).decode() == taken.value
    assert redis_conn.get(good.key).decode() == good.value
    # Read back while it is still malformed, it names a holder instead of raising.
    redis_conn.set(taken.key, b"\xff\xfe garbage")
    assert claim_holder(redis_conn, taken) == "\ufffd\ufffd garbage"


def test_a_worker_whose_claim_is_taken_abandons_its_job_and_registers_again(start_worker, redis_conn):
    worker = start_worker("default", name="cut-off-worker")
    job = enqueue("tests.jobfuncs.hang_and_report_pid", "claimed", 60)
    wait_for(lambda: redis_conn.get("test:pid:claimed"), timeout=30)
    claim = wait_for(lambda: redis_conn.get(CLAIM_KEY.format(job.id)), timeout=10).decode()
    assert claim.startswith("1 cut-off-worker ")

    # What a watchdog does to a worker it presumes dead, and another worker taking attempt 2.
    redis_conn.delete(ALIVE_KEY.format("cut-off-worker"))
    redis_conn.set(CLAIM_KEY.format(job.id), "2 elsewhere 0000")
    redis_conn.hset(job.key, mapping={"status": "started", "worker_name": "elsewhere"})

    wait_for_mention(worker, "abandoning job", timeout=20)
    wait_for_mention(worker, DROPPED, timeout=20)
    after = enqueue("tests.jobfuncs.add", 20, 22)
    wait_for_mention(worker, "registered again after being presumed dead", timeout=20)
    wait_for(lambda: TrackedJob.fetch(after.id, connection=redis_conn).get_status() == "finished", timeout=30)
    wait_for_mention(worker, f"Job OK ({after.id})", timeout=20)  # RQ logs it after the status is written

    log = worker.log.read_text(errors="replace")
    assert mentions(worker, DROPPED) == 1
    presumed, again = log.index("presumed dead by the other workers"), log.index("registered again")
    assert presumed < again < log.index(f"Job OK ({after.id})")
    assert redis_conn.hmget(job.key, "status", "worker_name") == [b"started", b"elsewhere"]
    assert redis_conn.exists(ALIVE_KEY.format("cut-off-worker"))
    assert redis_conn.hget("rq:worker:cut-off-worker", "birth")
    assert worker.process.poll() is None


def test_an_idle_worker_whose_liveness_key_expired_registers_again_before_its_next_job(start_worker, redis_conn):
    worker = start_worker("default", name="frozen-worker")
    wait_for(lambda: redis_conn.exists(ALIVE_KEY.format("frozen-worker")), timeout=30)
    born = redis_conn.hget("rq:worker:frozen-worker", "birth")
    redis_conn.delete(ALIVE_KEY.format("frozen-worker"))  # as if it had expired

    wait_for_mention(worker, "its liveness key had expired", timeout=20)
    job = enqueue("tests.jobfuncs.add", 1, 2)
    wait_for(lambda: TrackedJob.fetch(job.id, connection=redis_conn).get_status() == "finished", timeout=30)
    wait_for_mention(worker, f"Job OK ({job.id})", timeout=20)  # RQ logs it after the status is written
    log = worker.log.read_text(errors="replace")
    assert log.index("registered again after being presumed dead") < log.index(f"Job OK ({job.id})")
    assert redis_conn.hget("rq:worker:frozen-worker", "birth") != born
