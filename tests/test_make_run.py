"""`make run` as a newcomer runs it: a quiet terminal, the login shown, and SIGINT or
SIGTERM to make's own process stopping every service it started."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.services_plugin import _free_port

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("manage.py runserver", "manage.py rqworker", "manage.py run_scheduler", "manage.py demo_traffic")


def _ours(tag: str) -> list[str]:
    """Command lines of processes that belong to this run (they carry its Redis port)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if tag.encode() in environ and (any(s in cmdline for s in SERVICES) or "redis-server" in cmdline):
            found.append(cmdline)
    return found


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_make_run_is_quiet_shows_the_login_and_stops_on_a_signal_to_make(tmp_path, sig):
    redis_port, web_port = _free_port(), _free_port()
    tag = f"REDIS_URL=redis://127.0.0.1:{redis_port}/0"
    env = {
        **os.environ,
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "JOBSITE_RUN_PORT": str(web_port),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'run.sqlite3'}",
        "DJANGO_SETTINGS_MODULE": "jobsite.settings.base",
        "JOBSITE_RUN_DIR": str(tmp_path / "run"),
    }
    out = tmp_path / "terminal.txt"
    make = subprocess.Popen(
        ["make", "--no-print-directory", "run"],
        cwd=ROOT,
        env=env,
        stdout=out.open("w"),
        stderr=subprocess.STDOUT,
        # As in a terminal: SIGINT is not ignored (a background job of a script ignores it).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 120
        while "Ctrl-C stops everything" not in out.read_text() and time.monotonic() < deadline:
            assert make.poll() is None, out.read_text()
            time.sleep(0.5)
        time.sleep(3)  # demo traffic and workers busy
        assert len(_ours(tag)) >= 6, _ours(tag)  # web, 2 workers, scheduler, demo, redis

        make.send_signal(sig)
        make.wait(timeout=15)
        stopped = time.monotonic()
        while _ours(tag) and time.monotonic() - stopped < 2:
            time.sleep(0.1)
        assert _ours(tag) == []
    finally:
        if make.poll() is None:
            make.kill()
    terminal = out.read_text()
    lines = [line for line in terminal.splitlines() if line.strip()]
    assert len(lines) < 25, terminal  # the services' output is in .run/*.log, not here
    assert "Traceback" not in terminal
    assert terminal.count("dashboard login: admin") == 2  # at the start and again once up
    assert f"http://127.0.0.1:{web_port}/dashboard/" in terminal
    assert "web up · worker-1 up · worker-2 up" in terminal
    assert "stopped." in terminal
    assert {p.name for p in (tmp_path / "run").glob("*.log")} >= {"web.log", "worker-1.log", "scheduler.log"}
