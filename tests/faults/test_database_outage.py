"""The database goes away while a job runs: its outcome is not lost, the worker goes on.

PostgreSQL only: the test kills the worker's server connections (and refuses new ones to
its test database for a while) with pg_terminate_backend, which SQLite has no notion of.
Only the worker's sessions are cut, told apart by their application_name: this test
process's own connections (its threads', too) are not the system under test, and a killed
one would fail whichever later test used it next.
"""

from __future__ import annotations

import time

import psycopg
import pytest
from django.db import connection

from tests.conftest import WORKER_APPNAME, wait_for
from workers import enqueue
from workers.models import JobRecord, JobStatus

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def outage():
    if connection.vendor != "postgresql":
        pytest.skip("database outage is simulated with PostgreSQL's pg_terminate_backend; SQLite has no server")
    s = connection.settings_dict
    admin_dsn = f"host={s['HOST'] or '127.0.0.1'} port={s['PORT'] or 5432} user={s['USER']} dbname=postgres"
    if s.get("PASSWORD"):
        admin_dsn += f" password={s['PASSWORD']}"
    name = s["NAME"]
    admin = psycopg.connect(admin_dsn, autocommit=True)

    def begin() -> int:
        """Refuse new connections to the test database and kill the workers' ones."""
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        return kill()

    def kill() -> int:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND application_name LIKE %s",
            [name, f"{WORKER_APPNAME}:%"],
        ).fetchall()
        return len(rows)

    def end() -> None:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')

    yield begin, kill, end
    end()
    admin.close()


def test_a_job_finishing_during_a_database_outage_is_recorded_afterwards(start_worker, outage, redis_conn):
    begin, kill, end = outage
    worker = start_worker()
    warm = enqueue("tests.jobfuncs.add", 1, 1)
    wait_for(lambda: JobRecord.objects.filter(job_id=warm.id, status=JobStatus.FINISHED).exists(), timeout=60)

    job = enqueue("tests.jobfuncs.hang_and_report_pid", "outage", 2)
    wait_for(lambda: redis_conn.get("test:pid:outage"), timeout=30)
    killed = begin()
    failing = enqueue("tests.jobfuncs.fail", "during the outage", max_attempts=1)
    # The outage outlasts the job: it finishes and the failing one fails while no
    # database connection can be made; the companion keeps retrying.
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        kill()
        time.sleep(0.5)
    assert worker.process.poll() is None
    assert redis_conn.xlen("jobsite:events") > 0  # the outcomes wait in Redis
    end()

    finished = wait_for(
        lambda: JobRecord.objects.filter(job_id=job.id, status=JobStatus.FINISHED).first(), timeout=60, interval=0.5
    )
    dead = wait_for(lambda: JobRecord.objects.filter(job_id=failing.id, status=JobStatus.DEAD).first(), timeout=60)
    assert killed >= 1, "the worker's own database connections were cut"
    assert finished.attempts == 1 and finished.ended_at is not None
    assert dead.errors.get().message == "during the outage"
    # And the worker goes on with new work.
    after = enqueue("tests.jobfuncs.add", 20, 22)
    record = wait_for(lambda: JobRecord.objects.filter(job_id=after.id, status=JobStatus.FINISHED).first(), timeout=60)
    assert record.result_repr == "42"
    assert worker.process.poll() is None
