"""Fire due schedules. Run one or several: each due time fires exactly once either way."""

from __future__ import annotations

import os
import signal
import socket
import threading
from typing import Any

from django.core import checks
from django.core.management.base import BaseCommand, SystemCheckError
from django.db import close_old_connections
from django.utils import timezone

from workers.conf import setting
from workers.management.base import SettingsChecked
from workers.reads.schedules import schedulers_alive
from workers.redis import REDIS_DOWN, SCHEDULER_HEARTBEAT_KEY, RedisOutage, backoff
from workers.redis import connection as redis_connection
from workers.scheduling.sync import schedules_sync
from workers.scheduling.tick import REDIS_AWAY, scheduler_heartbeat, schedules_fire_due
from workers.scheduling.validation import DECLARED_SCHEDULES_CHECK


class Command(SettingsChecked, BaseCommand):
    help = "Run the jobsite scheduler: sync JOBSITE_SCHEDULES, then fire due schedules until stopped."
    # The system checks run in handle(), all but the one on JOBSITE_SCHEDULES: a bad entry
    # must not stop every other schedule (the sync skips it and says why).
    requires_system_checks: list[str] = []
    stealth_options = ("skip_checks",)

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--once", action="store_true", help="Fire what is due now, then exit.")
        parser.add_argument("--no-sync", action="store_true", help="Do not sync JOBSITE_SCHEDULES at start.")
        parser.add_argument("--name", default=f"{socket.gethostname()}.{os.getpid()}", help="This scheduler's name.")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options.get("skip_checks"):
            serious = [
                message
                for message in checks.run_checks()
                if message.is_serious() and not message.is_silenced() and message.id != DECLARED_SCHEDULES_CHECK
            ]
            if serious:
                raise SystemCheckError("\n".join(str(message) for message in serious))
        connection = redis_connection()
        name = options["name"]
        if not options["no_sync"]:
            result = schedules_sync()
            self.stdout.write(
                f"schedules declared in code: {len(result.created)} created, {len(result.updated)} updated, "
                f"{len(result.disabled)} disabled"
            )
            if result.invalid:
                self.stderr.write(
                    "JOBSITE_SCHEDULES entries skipped, fix them (`manage.py check` lists them too):\n  "
                    + "\n  ".join(result.invalid)
                )
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        interval = float(setting("SCHEDULER_INTERVAL"))
        # Redis being away (at start too) is waited out, logged once; only a signal stops it.
        outage = RedisOutage(f"scheduler {name}")
        failures = 0
        started = False
        while not stop.is_set():
            wait = interval
            try:
                scheduler_heartbeat(connection, name, ttl=max(int(interval * 5), 5))
                if not started:
                    others = [n for n in schedulers_alive(connection) if n != name]
                    self.stdout.write(f"scheduler {name} started" + (f" beside {', '.join(others)}" if others else ""))
                    started = True
                for run in schedules_fire_due(now=timezone.now()):
                    self.stdout.write(f"fired {run.schedule.name}: job {run.job_id}")
                outage.ended()
                failures = 0
            except REDIS_AWAY as exc:
                failures += 1
                outage.began(exc)
                wait = backoff(failures)
            except Exception as exc:  # the database is away: try again next tick
                self.stderr.write(f"scheduler tick failed: {type(exc).__name__}: {exc}")
            finally:
                close_old_connections()
            if options["once"]:
                break
            stop.wait(wait)
        try:
            connection.delete(SCHEDULER_HEARTBEAT_KEY.format(name))
        except REDIS_DOWN:
            pass  # stopping while Redis is away: the heartbeat key expires on its own
