"""Keeps a worker from forking while another of its threads is inside the database driver.

A forking worker's horse is a copy of the worker taken at fork time. Had the companion
thread (recorder, watchdog) been inside the driver then (SQLite's file mutex, a half-done
write transaction), the horse would inherit a lock held by a thread it does not have, and
hang or fail with "database is locked" at its first write. The companion holds this guard
around its database work; every fork of the process waits for it (os.register_at_fork),
so a fork copies the process between two batches, never in the middle of one.
"""

from __future__ import annotations

import os
import threading


class _ForkGuard:
    def __init__(self) -> None:
        # Reentrant: the thread that forks may already hold it.
        self._lock = threading.RLock()
        os.register_at_fork(before=self._acquire, after_in_parent=self._release, after_in_child=self._reset)

    def _acquire(self) -> None:
        self._lock.acquire()

    def _release(self) -> None:
        self._lock.release()

    def _reset(self) -> None:
        self._lock = threading.RLock()

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


FORK_GUARD = _ForkGuard()
