"""Keeps a worker from forking while another of its threads is inside the database driver
or in the middle of an import.

A forking worker's horse (and RQ's scheduler process) is a copy of the worker taken at
fork time, with only the thread that forked. Any lock another thread held then stays held
in the copy, by a thread the copy does not have: its first use hangs for good.

- The database: had the companion thread (recorder, watchdog) been inside the driver
  (SQLite's file mutex, a half-done write transaction), the horse would hang or fail with
  "database is locked" at its first write. The companion holds this guard around its
  database work; every fork of the process waits for it (os.register_at_fork), so a fork
  copies the process between two batches, never in the middle of one.
- Imports: each module being imported is locked until its import is done. The companion
  imports lazily too (a job's module, to redact its arguments by parameter name; RQ's date
  parsing imports ``_strptime`` on first use). A horse forked in the middle of such an
  import hung at its own import of the same module (seen under load: the horse of
  ``tests.jobfuncs`` never started its job). So a fork also waits, up to IMPORT_WAIT
  seconds, until no other thread is importing, and holds Python's import lock across the
  fork so that no import starts in between.
- Dates: ``datetime.strptime`` holds a module-level lock of ``_strptime`` while it parses,
  and RQ parses every job's dates as it reads the job. RQ's scheduler process, forked while
  the companion was parsing, hung for good at its first parse (seen under load: no due
  job moved again). So a fork also takes that lock (up to IMPORT_WAIT seconds) and gives
  it back on both sides.
"""

from __future__ import annotations

import _imp
import _strptime
import logging
import os
import threading
import time
from importlib import _bootstrap  # type: ignore[attr-defined]

log = logging.getLogger(__name__)

IMPORT_WAIT = 5.0
_STRPTIME_LOCK = _strptime._cache_lock  # type: ignore[attr-defined]


def _imports_of_other_threads() -> list[str]:
    """Modules another thread is importing right now (their import locks are held)."""
    me = threading.get_ident()
    busy = []
    for ref in list(_bootstrap._module_locks.values()):  # type: ignore[attr-defined]
        lock = ref()
        if lock is not None and lock.count > 0 and lock.owner not in (None, me):
            busy.append(lock.name)
    return busy


def _import_lock_when_no_import_runs(wait: float = IMPORT_WAIT) -> None:
    """Take Python's import lock once no other thread is in the middle of an import.

    Holding it, no new import can start (every import takes it to find its module's lock);
    one already started holds its module's lock instead, so that is what is waited for.
    Gives up waiting (and forks anyway) after ``wait`` seconds, with a warning."""
    deadline = time.monotonic() + wait
    while True:
        _imp.acquire_lock()
        try:
            busy = _imports_of_other_threads()
        except BaseException:
            _imp.release_lock()  # never leave the process unable to import
            raise
        if not busy:
            return
        if time.monotonic() >= deadline:
            log.warning("forking while another thread still imports %s: the child may hang importing it", busy)
            return
        _imp.release_lock()
        time.sleep(0.001)


class _ForkGuard:
    def __init__(self) -> None:
        # Reentrant: the thread that forks may already hold it.
        self._lock = threading.RLock()
        self._import_lock_held = self._strptime_lock_held = False
        os.register_at_fork(before=self._before, after_in_parent=self._after_in_parent, after_in_child=self._reset)

    def _before(self) -> None:
        self._lock.acquire()
        # Before the import lock: a thread inside strptime never waits for our guard.
        self._strptime_lock_held = _STRPTIME_LOCK.acquire(timeout=IMPORT_WAIT)
        if not self._strptime_lock_held:
            log.warning("forking while another thread still parses a date: the child may hang parsing one")
        try:
            _import_lock_when_no_import_runs()
            self._import_lock_held = True
        except Exception:  # Python's import internals changed: fork as before
            log.exception("could not wait for imports before forking")

    def _release_locks(self) -> None:
        if self._import_lock_held:
            self._import_lock_held = False
            _imp.release_lock()
        if self._strptime_lock_held:
            self._strptime_lock_held = False
            _STRPTIME_LOCK.release()

    def _after_in_parent(self) -> None:
        self._release_locks()
        self._lock.release()

    def _reset(self) -> None:
        # The child inherits the locks taken in _before (Python re-creates the import lock
        # held by the child's only thread; the strptime lock is a copy, held): give them
        # back, and start with a fresh guard.
        self._release_locks()
        self._lock = threading.RLock()

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


FORK_GUARD = _ForkGuard()
