"""Keeps a worker from forking its work horse while another of its threads is in a database
transaction.

SQLite does not survive that: the horse inherits the process's lock bookkeeping, sees a
lock that nobody in it will ever release, and every write it tries fails with "database is
locked" after the busy timeout (30 s each). The worker's companion thread (recorder,
watchdog) holds this guard around its database work; the worker holds it while it forks.
"""

from __future__ import annotations

import threading

FORK_GUARD = threading.RLock()
