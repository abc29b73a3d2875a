from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import django_rq
import pytest
from django.conf import settings
from django.db import connection
from redis import Redis

from workers.recording.consumer import drain
from workers.runtime.worker import TrackingSimpleWorker, TrackingWorker

ROOT = Path(__file__).resolve().parent.parent
WORKER_APPNAME = "jobsite-test-worker"  # application_name of a started worker's PostgreSQL sessions


@pytest.fixture(scope="session", autouse=True)
def _test_database_left_alone_at_the_end(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """Before the PostgreSQL test database is dropped, end the sessions still on it.

    A thread of this process can keep a connection until the process exits (Django closes
    connections per request, not per thread), and PostgreSQL refuses to drop a database
    in use. The database is this run's own; how many sessions were ended is printed.
    """
    yield
    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        ended = len(cursor.fetchall())
    if ended:
        print(f"\nended {ended} session(s) still open on the test database before dropping it", file=sys.stderr)


@pytest.fixture(autouse=True)
def redis_conn() -> Iterator[Redis]:
    """The run's private Redis (tests/services_plugin.py), emptied before every test."""
    conn = Redis.from_url(settings.REDIS_URL)
    conn.flushdb()
    yield conn
    conn.close()


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


@pytest.fixture
def run_burst(transactional_db: None) -> Callable[..., None]:
    """Run a real jobsite worker in this process until the queues are empty, then record."""

    def run(*queues: str, simple: bool = False) -> None:
        worker = django_rq.get_worker(
            *(queues or settings.JOBSITE_QUEUES),
            worker_class=TrackingSimpleWorker if simple else TrackingWorker,
        )
        worker.work(burst=True, with_scheduler=False)
        drain()

    return run


def child_pids(pid: int) -> list[int]:
    """The pids of a process's children (a worker's work horse and scheduler), from /proc."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def scheduler_pid(worker: WorkerProcess, redis: Redis, timeout: float = 60, queue: str = "default") -> int:
    """The pid of a worker's RQ scheduler process, once it holds the queue's lock and has
    registered (RQ's scheduler hash names its pid). Not just "a child of the worker": at
    start a worker also runs short-lived programs (platform.architecture() runs `file`)."""
    wait_for(lambda: redis.get(f"rq:scheduler-lock:{queue}") == worker.name.encode(), timeout=timeout)

    def registered() -> int | None:
        pid = redis.hget(f"rq:scheduler:{worker.name}", "pid")
        return int(pid) if pid and int(pid) in child_pids(worker.pid) else None

    return int(wait_for(registered, timeout=timeout))


def process_alive(pid: int) -> bool:
    """Running, and not a zombie waiting for a parent (or init) to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def database_url() -> str:
    """The URL of the test database, for processes this test starts."""
    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"
    host = s.get("HOST") or "127.0.0.1"
    port = s.get("PORT") or 5432
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "") + "@" if s.get("USER") else ""
    return f"postgres://{auth}{host}:{port}/{s['NAME']}"


class WorkerProcess:
    def __init__(self, process: subprocess.Popen[bytes], name: str, log: Path) -> None:
        self.process, self.name, self.log = process, name, log

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def process_env(name: str) -> dict[str, str]:
    """The environment of a management command a test starts as a real process, against
    the test database and Redis."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "jobsite.settings.test",
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "PYTHONUNBUFFERED": "1",
        # libpq names the process's database sessions, so a test can tell them apart.
        "PGAPPNAME": f"{WORKER_APPNAME}:{name}",
    }


@pytest.fixture
def start_worker(transactional_db: None, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start `manage.py rqworker` as a real process against the test database."""
    started: list[WorkerProcess] = []

    def start(
        *queues: str, simple: bool = False, name: str | None = None, extra: tuple[str, ...] = ()
    ) -> WorkerProcess:
        name = name or f"test-worker-{len(started)}-{os.getpid()}"
        env = process_env(name)
        log = tmp_path / f"{name}.log"
        args = [sys.executable, "manage.py", "rqworker", "--name", name, *(["--simple"] if simple else []), *extra]
        process = subprocess.Popen([*args, *queues], cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        worker = WorkerProcess(process, name, log)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
        # Captured output of the teardown: pytest shows it only when the test failed.
        lines = worker.log.read_text(errors="replace").splitlines() if worker.log.exists() else []
        print(f"--- last lines of {worker.name}'s log (exit {worker.process.returncode}) ---", *lines[-40:], sep="\n")


def create_operator(username: str, password: str):
    """A staff user who may act on jobs (workers.operate_jobs), as a dashboard operator is."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    user = get_user_model().objects.create_user(username, password=password, is_staff=True)
    user.user_permissions.add(Permission.objects.get(content_type__app_label="workers", codename="operate_jobs"))
    return user
