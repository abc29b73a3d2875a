"""Gives the test run a redis-server of its own on a free port, before Django loads.

Loaded with ``-p tests.services_plugin`` (pyproject.toml) so that REDIS_URL is set before
pytest-django imports the settings. Nothing the run did not create is touched: the
server is new, its data in memory only, and it is shut down when the run ends.
Set JOBSITE_TEST_REDIS_URL to use a server you own instead (its database is flushed).
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import time


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_redis() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: `apt-get install redis-server` (make test does this)")
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="jobsite-test-redis-")
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def stop() -> None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(workdir, ignore_errors=True)

    atexit.register(stop)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the test redis-server on port {port} did not answer")


if os.environ.get("PYTEST_XDIST_WORKER") is None and "JOBSITE_TEST_REDIS_PROCESS" not in os.environ:
    os.environ["REDIS_URL"] = os.environ.get("JOBSITE_TEST_REDIS_URL") or _start_redis()
    os.environ["JOBSITE_TEST_REDIS_PROCESS"] = str(os.getpid())
