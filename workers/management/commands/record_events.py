"""Apply jobsite's tracking events to the database, beside or instead of the workers."""

from __future__ import annotations

import signal
import socket
import threading
from typing import Any

from django.core.management.base import BaseCommand

from workers.conf import setting
from workers.management.base import SettingsChecked
from workers.recording.consumer import Recorder
from workers.redis import UNAPPLIED_KEY, new_connection


class Command(SettingsChecked, BaseCommand):
    help = "Apply pending tracking events to the database (--burst: apply what is pending and exit)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--burst", action="store_true", help="Apply what is pending now, then exit.")

    def handle(self, *args: Any, **options: Any) -> None:
        recorder = Recorder(
            new_connection(),
            name=f"record_events:{socket.gethostname()}:{id(self)}",
            batch_size=setting("RECORDER_BATCH"),
        )
        if options["burst"]:
            read = recorder.drain()
            applied = read - recorder.set_aside - recorder.held
            self.stdout.write(
                f"read {read} events: {applied} applied, {recorder.set_aside} set aside ({UNAPPLIED_KEY}), "
                f"{recorder.held} held for a job with no record yet"
            )
            return
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        recorder.run(stop, block_ms=1000)
