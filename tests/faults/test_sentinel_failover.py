"""Redis Sentinel fail-over in mid-run: a real master, a replica and three sentinels (the
test's own, with passwords), 500 jobs on two `rqworker` processes (their recorders and
RQ's schedulers) and a `run_scheduler`, all configured with REDIS_SENTINELS only.

The master is killed while jobs flow. Just before, the replica is cut off from it (a
partition: frozen, link dropped), so the master acknowledges jobs no replica will ever
have: what an asynchronous-replication fail-over loses. Everything must reconnect to the
promoted replica on its own, and every job acknowledged before the partition must end
recorded. Jobs acknowledged during the partition are counted and printed as lost; with
JOBSITE["ENQUEUE_WAIT"] none is acknowledged then, so none may be lost.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from tests.conftest import ROOT, database_url, wait_for
from tests.redis_servers import MASTER_NAME, RedisServers
from workers import enqueue
from workers.api import QueueUnavailable
from workers.models import JobOrigin, JobRecord, JobStatus, Schedule
from workers.redis import ALIVE_KEY, STREAM_KEY
from workers.redis import connection as redis_connection
from workers.scheduling.sync import schedule_save

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

JOBS = 500
PASSWORD, SENTINEL_PASSWORD = "master-secret", "sentinel-secret"
WAIT = {"replicas": 1, "timeout_ms": 100}


class Producer(threading.Thread):
    """Enqueues JOBS jobs one after another, as a web app would, retrying an enqueue that
    raised (QueueUnavailable: not acknowledged) until one is acknowledged."""

    def __init__(self, trace: Path) -> None:
        super().__init__(daemon=True)
        self.trace = trace
        self.phase = "before"  # "cutting", "partition" while the replica is cut off, "after" the kill
        self.acknowledged: list[tuple[str, str, str]] = []  # job id, expected end, phase
        self.refused = 0
        self.first_after: float | None = None  # when the first enqueue after the kill was acknowledged
        self.error: BaseException | None = None

    def _one(self, n: int) -> tuple[str, str]:
        if n % 50 == 7:  # fails every attempt: retried through RQ's scheduler, then dead
            return enqueue("tests.jobfuncs.fail", "fails on purpose").id, JobStatus.DEAD
        # Delayed (the last one too): RQ's scheduler moves it to its queue.
        delay = timedelta(seconds=1) if n % 25 == 3 or n == JOBS - 1 else None
        return enqueue("tests.jobfuncs.note_run", str(self.trace), delay=delay).id, JobStatus.FINISHED

    def run(self) -> None:
        try:
            for n in range(JOBS):
                while True:
                    began = self.phase
                    try:
                        job_id, end = self._one(n)
                    except QueueUnavailable:
                        self.refused += 1
                        time.sleep(0.05)
                        continue
                    # One that straddles a change ("before>cutting") may or may not have
                    # reached the replica: counted apart, as "cutting" is.
                    self.acknowledged.append((job_id, end, began if began == self.phase else f"{began}>{self.phase}"))
                    if self.phase == "after" and self.first_after is None:
                        self.first_after = time.monotonic()
                    break
                time.sleep(0.005)
        except BaseException as exc:  # the test reports it
            self.error = exc


def start(args: list[str], *, servers: RedisServers, wait: bool, log: Path) -> subprocess.Popen[bytes]:
    """A manage.py command that knows Redis only through the sentinels."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(
        DJANGO_SETTINGS_MODULE="jobsite.settings.test",
        DATABASE_URL=database_url(),
        PYTHONUNBUFFERED="1",
        REDIS_SENTINELS=servers.sentinel_addresses,
        REDIS_SENTINEL_MASTER=MASTER_NAME,
        REDIS_PASSWORD=PASSWORD,
        REDIS_SENTINEL_PASSWORD=SENTINEL_PASSWORD,
    )
    if wait:
        env.update(JOBSITE_ENQUEUE_WAIT_REPLICAS=str(WAIT["replicas"]), JOBSITE_ENQUEUE_WAIT_TIMEOUT_MS="100")
    return subprocess.Popen(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )


def entries_added(client) -> int:
    return int(client.xinfo_stream(STREAM_KEY)["entries-added"])


def status_of(job_ids: list[str]) -> dict[str, str]:
    return dict(JobRecord.objects.filter(job_id__in=job_ids).values_list("job_id", "status"))


@pytest.mark.parametrize("wait", [False, True], ids=["async-replication", "enqueue-wait"])
def test_everything_follows_a_sentinel_failover_and_every_acknowledged_job_ends_recorded(
    wait, tmp_path, settings, client
):
    trace = tmp_path / "runs.txt"
    trace.touch()
    with RedisServers(
        tmp_path, replicas=1, sentinels=3, password=PASSWORD, sentinel_password=SENTINEL_PASSWORD
    ) as servers:
        replica = servers.replicas[0]
        settings.REDIS_SENTINELS = [("127.0.0.1", s.port) for s in servers.sentinels]
        settings.REDIS_SENTINEL_MASTER = MASTER_NAME
        settings.REDIS_PASSWORD = PASSWORD
        settings.REDIS_SENTINEL_PASSWORD = SENTINEL_PASSWORD
        settings.JOBSITE = {**settings.JOBSITE, "ENQUEUE_WAIT": WAIT if wait else None}
        schedule_save(schedule=Schedule(name="every second", func="workers.jobs.maintenance.prune", interval=1))
        processes = [
            start(["rqworker", "--name", f"failover-{n}"], servers=servers, wait=wait, log=tmp_path / f"worker-{n}.log")
            for n in range(2)
        ] + [start(["run_scheduler", "--no-sync"], servers=servers, wait=wait, log=tmp_path / "scheduler.log")]

        def logs() -> str:
            return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(tmp_path.glob("*.log")))

        try:
            producer = Producer(trace)
            producer.start()
            wait_for(lambda: len(producer.acknowledged) >= 150 or producer.error, timeout=60)
            assert client.get("/healthz").json()["redis"] == "ok"

            # "cutting" while the cut is being made: an enqueue then (or one that straddles a
            # change, "before>cutting") may have reached the replica or not.
            producer.phase = "cutting"
            servers.partition_replicas()
            producer.phase = "partition"
            time.sleep(0.5)
            events_on_master = entries_added(servers.master.client())
            killed = time.monotonic()
            servers.master.kill()  # mid-run: jobs queued, running, and on their way
            producer.phase = "after"
            servers.heal_replicas()
            time.sleep(0.3)  # the replica takes in what reached it before the cut
            events_lost = events_on_master - entries_added(replica.client())

            wait_for(lambda: servers.master_port_by_sentinels() == {replica.port}, timeout=60, interval=0.05)
            promoted = time.monotonic() - killed
            # As systemd would, start the old master again (empty: no persistence here): the
            # sentinels make it a replica of the new master, so WAIT has a replica again.
            servers.master.start()

            def writable() -> bool:
                try:
                    return bool(redis_connection().set("test:failover:probe", 1))
                except Exception:
                    return False

            wait_for(writable, timeout=60, interval=0.05)
            reconnected = time.monotonic() - killed
            after_failover = timezone.now()

            producer.join(timeout=240)
            assert not producer.is_alive() and producer.error is None, producer.error
            late = producer.acknowledged[-1][0]  # enqueued with a delay: RQ's scheduler on the new master
            new_master = replica.client()
            expected = {job_id: end for job_id, end, _ in producer.acknowledged}
            # An acknowledged job the new master never heard of can only end recorded if it
            # ran to its end on the old master in time; every other must end recorded.
            unknown = {j for j in expected if not new_master.exists(f"rq:job:{j}")}

            def ended() -> bool:
                statuses = status_of([j for j in expected if j not in unknown])
                return all(statuses.get(j) == end for j, end in expected.items() if j not in unknown)

            try:
                wait_for(ended, timeout=120, interval=0.5)
            except AssertionError:
                statuses = status_of(list(expected))
                stuck = [(j, end, statuses.get(j)) for j, end in expected.items() if j not in unknown]
                stuck = [(j, end, now) for j, end, now in stuck if end != now]
                raise AssertionError(f"{len(stuck)} acknowledged jobs did not end as expected: {stuck[:10]}") from None
            wait_for(lambda: status_of([late]).get(late) == JobStatus.FINISHED, timeout=60)
            # Both workers (their companions) report in to the new master, one of them holds
            # RQ's scheduler locks there, and the scheduler fires schedules through it.
            names = [f"failover-{n}" for n in range(2)]
            wait_for(lambda: all(new_master.exists(ALIVE_KEY.format(name)) for name in names), timeout=30)
            holders = {name.encode() for name in names}
            wait_for(
                lambda: {new_master.get(f"rq:scheduler-lock:{q}") for q in settings.JOBSITE_QUEUES} <= holders,
                timeout=30,
            )
            wait_for(
                lambda: JobRecord.objects.filter(
                    origin=JobOrigin.SCHEDULE, enqueued_at__gt=after_failover, status=JobStatus.FINISHED
                ).exists(),
                timeout=60,
            )
            assert client.get("/healthz").json()["redis"] == "ok"
            assert all(p.poll() is None for p in processes), logs()
        except BaseException:
            print(logs())
            raise
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()

    statuses = status_of(list(expected))
    lost = sorted(j for j, end in expected.items() if statuses.get(j) != end)
    by_phase = Counter(phase for _, _, phase in producer.acknowledged)
    lost_by_phase = Counter(phase for j, _, phase in producer.acknowledged if j in lost)
    runs = Counter(trace.read_text().split())
    mode = f"ENQUEUE_WAIT {WAIT}" if wait else "asynchronous replication"
    first_ack = (producer.first_after or killed) - killed
    print(
        f"\nSentinel fail-over ({mode}): master killed; the sentinels named the replica after {promoted:.2f} s, "
        f"jobsite's client wrote to it after {reconnected:.2f} s, the first enqueue was acknowledged after "
        f"{first_ack:.2f} s. Jobs acknowledged: {len(expected)} ({by_phase['before']} before the partition, "
        f"{by_phase['partition']} during it, {by_phase['after']} after the kill, "
        f"{sum(n for phase, n in by_phase.items() if phase == 'cutting' or '>' in phase)} while cutting or across a "
        f"change); enqueues refused and retried: "
        f"{producer.refused}. Acknowledged but lost: {len(lost)}. Tracking events the new master never got: "
        f"{events_lost}. Jobs that ran twice: {sum(1 for n in runs.values() if n > 1)}."
    )
    assert not JobRecord.objects.filter(job_id__in=list(expected), status=JobStatus.STARTED).exists()
    assert lost_by_phase["before"] == 0 and lost_by_phase["after"] == 0  # only the partition's jobs can be lost
    if wait:
        # No replica could confirm: nothing begun and answered within the partition was
        # acknowledged (one begun before it may have been, replicated before the cut).
        assert by_phase["partition"] == 0
        assert not unknown and lost == []
    else:
        assert by_phase["partition"] > 0  # the master acknowledged what no replica had
