"""What the Redis outage tests share: a redis-server of the test's own that it can stop,
wipe and start again, long-running commands as real processes, and a way to hold the
database's writes so that a process waits at a chosen point."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from django.conf import settings as django_settings
from django.db import connection

from tests.conftest import ROOT, WorkerProcess, database_url, process_env, wait_for
from tests.redis_servers import OwnRedis


@pytest.fixture
def own_redis(tmp_path: Path, settings, monkeypatch) -> Iterator[OwnRedis]:
    """The test's own Redis, which this process and the processes it starts use."""
    workdir = tmp_path / "redis"
    workdir.mkdir()
    server = OwnRedis(workdir)
    server.start()
    settings.REDIS_URL = server.url
    for name in django_settings.RQ_QUEUES:
        monkeypatch.setitem(
            django_settings.RQ_QUEUES[name], "URL", server.url + "?socket_connect_timeout=2&socket_timeout=5"
        )
    yield server
    server.stop()


@pytest.fixture
def start_command(transactional_db: None, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start a long-running management command (run_scheduler, record_events) as a real
    process against the test database and Redis; its output goes to a log file."""
    started: list[WorkerProcess] = []

    def start(command: str, *args: str, name: str | None = None) -> WorkerProcess:
        name = name or f"{command}-{len(started)}-{os.getpid()}"
        env = process_env(name)
        log = tmp_path / f"{name}.log"
        process = subprocess.Popen(
            [sys.executable, "manage.py", command, *args], cwd=ROOT, env=env, stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        started.append(WorkerProcess(process, name, log))
        return started[-1]

    yield start
    for process in started:
        process.stop()


@contextlib.contextmanager
def database_writes_held(*tables: str) -> Iterator[None]:
    """Hold writes to ``tables`` (PostgreSQL; SQLite: the whole file) until the block ends:
    a process that writes there waits, where the test wants it, for as long as the test
    says. Plain reads go on."""
    if connection.vendor == "postgresql":
        holder = psycopg.connect(database_url())
        try:
            for table in tables:
                holder.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
            yield
        finally:
            holder.rollback()
            holder.close()
    else:
        # Every writer takes SQLite's write lock at BEGIN (transaction_mode IMMEDIATE) and
        # waits up to 30 s for it (the settings' timeout).
        holder_file = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None, timeout=30)
        try:
            holder_file.execute("BEGIN IMMEDIATE")
            yield
        finally:
            holder_file.execute("ROLLBACK")
            holder_file.close()


def mentions(process: WorkerProcess, text: str) -> int:
    """How many times ``text`` is in the process's log so far."""
    return process.log.read_text(errors="replace").count(text)


def wait_for_mention(process: WorkerProcess, text: str, *, more_than: int = 0, timeout: float = 60) -> None:
    wait_for(lambda: mentions(process, text) > more_than or process.process.poll() is not None, timeout=timeout)
    assert process.process.poll() is None, process.log.read_text(errors="replace")[-4000:]
