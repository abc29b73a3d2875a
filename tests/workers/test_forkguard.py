"""A fork taken while another thread imports a module or parses a date: the copy must not
hang on the lock that thread holds.

Seen under load: the companion thread was importing a job's module (to redact its
arguments) when the worker forked a horse for a job of that module; the horse waited
forever for an import lock held by a thread it does not have.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

IMPORTING = """
    started = threading.Event()

    def busy():
        started.set()
        import slow_module  # its body sleeps: the import lock is held meanwhile

    def in_the_child():
        import slow_module
        return slow_module.VALUE == 42
    """

PARSING = """
    import _strptime

    started = threading.Event()

    def busy():
        with _strptime._cache_lock:  # what a thread inside datetime.strptime holds
            started.set()
            time.sleep(1.5)

    def in_the_child():
        from datetime import datetime
        return datetime.strptime("2026-12-03T10:00:00Z", "%Y-%m-%dT%H:%M:%SZ").year == 2026
    """

SCENARIO = """
import os, sys, threading, time
sys.path.insert(0, {folder!r})
{setup}
{busy}
threading.Thread(target=busy, daemon=True).start()
started.wait()
time.sleep(0.2)  # well inside the other thread's work
pid = os.fork()
if pid == 0:
    os._exit(0 if in_the_child() else 3)
deadline = time.monotonic() + {wait}
while time.monotonic() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        sys.exit(os.waitstatus_to_exitcode(status))
    time.sleep(0.05)
os.kill(pid, 9)
os.waitpid(pid, 0)
sys.exit(9)  # the child hung
"""


def _run(tmp_path: Path, setup: str, wait: float, busy: str = IMPORTING) -> int:
    (tmp_path / "slow_module.py").write_text("import time\ntime.sleep(1.5)\nVALUE = 42\n")
    script = SCENARIO.format(folder=str(tmp_path), setup=setup, wait=wait, busy=textwrap.dedent(busy))
    done = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[2], timeout=60)
    return done.returncode


def test_a_fork_during_another_threads_import_waits_for_it_and_the_child_imports(tmp_path):
    code = _run(tmp_path, "import workers.rq.forkguard", wait=20)
    assert code == 0, "the forked child hung or failed importing a module another thread was importing"


def test_without_the_guard_the_same_fork_hangs_the_child(tmp_path):
    # The scenario above is a real one: without the guard, the child waits for good.
    code = _run(tmp_path, "pass", wait=4)
    assert code == 9


def test_a_fork_while_another_thread_parses_a_date_waits_for_it_and_the_child_parses(tmp_path):
    # Seen under load: RQ's scheduler process, forked while the companion thread was in
    # datetime.strptime (RQ's date parsing), hung for good at its own first parse.
    code = _run(tmp_path, "import workers.rq.forkguard", wait=20, busy=PARSING)
    assert code == 0, "the forked child hung or failed parsing a date while another thread was"


def test_without_the_guard_a_fork_while_another_thread_parses_a_date_hangs_the_child(tmp_path):
    code = _run(tmp_path, "pass", wait=4, busy=PARSING)
    assert code == 9
