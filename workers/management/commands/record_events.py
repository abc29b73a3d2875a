"""Apply jobsite's tracking events to the database, beside or instead of the workers."""

from __future__ import annotations

import signal
import socket
import time
from typing import Any

from django.core.management.base import BaseCommand

from workers.conf import setting
from workers.recorder import Recorder
from workers.tracking import redis_connection


class Command(BaseCommand):
    help = "Apply pending tracking events to the database (--burst: apply what is pending and exit)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--burst", action="store_true", help="Apply what is pending now, then exit.")

    def handle(self, *args: Any, **options: Any) -> None:
        recorder = Recorder(
            redis_connection(),
            name=f"record_events:{socket.gethostname()}:{id(self)}",
            batch_size=setting("RECORDER_BATCH"),
        )
        if options["burst"]:
            applied = recorder.drain()
            self.stdout.write(f"applied {applied} events")
            return
        stopping = False

        def stop(*_: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        last_claim = 0.0
        while not stopping:
            try:
                if time.monotonic() - last_claim > 5:
                    recorder.claim_stale()
                    last_claim = time.monotonic()
                applied = recorder.step(block_ms=1000)
                if 0 < applied < recorder.batch_size:
                    # Let events gather: fewer, larger transactions cost the machine (and
                    # the workers beside this process) far less per job.
                    time.sleep(setting("RECORDER_PAUSE", 0.2))
            except Exception as exc:  # the database or Redis is away: keep trying
                self.stderr.write(f"record_events: {exc!r}; retrying")
                time.sleep(1)
