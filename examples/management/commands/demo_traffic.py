"""`manage.py demo_traffic`: realistic, rate-limited work so the dashboard looks like a live system."""

from __future__ import annotations

import random
import time
from typing import Any

from django.core.management import get_commands
from django.core.management.base import BaseCommand, CommandParser

from examples.conf import example_setting
from examples.demo import DemoTraffic, demo_data_seed


class Command(BaseCommand):
    help = (
        "Seed demo data, then enqueue a realistic mix of jobs on several queues: quick, slow, "
        "flaky, broken, long with progress, scheduled and keyed; page views, campaigns, new ETL rows."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rate", type=float, default=2.0, help="actions per second (default 2)")
        parser.add_argument("--duration", type=float, default=0, help="seconds to run; 0 = until stopped")
        parser.add_argument("--once", action="store_true", help="seed, one action of every kind, then exit")
        parser.add_argument("--campaign-every", type=float, default=300, help="seconds between campaigns")
        parser.add_argument("--pace", type=float, default=1.0, help="scales how long slow and long jobs take")
        parser.add_argument("--seed", type=int, default=None, help="random seed, for a repeatable mix")
        parser.add_argument(
            "--drive-schedules",
            choices=["auto", "yes", "no"],
            default="auto",
            help="fire the examples' interval schedules from here (auto: when no `run_scheduler` command exists)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["rate"] <= 0:
            self.stderr.write("--rate must be > 0")
            return
        seeded = demo_data_seed()
        self.stdout.write("demo data: " + ", ".join(f"{v} {k}" for k, v in seeded.items()))
        traffic = DemoTraffic(rng=random.Random(options["seed"]), pace=options["pace"], log=self.stdout.write)
        if options["once"]:
            traffic.every_kind()
            self._summary(traffic)
            return
        drive = options["drive_schedules"] == "yes" or (
            options["drive_schedules"] == "auto" and "run_scheduler" not in get_commands()
        )
        if drive:
            self.stdout.write("no scheduler process: demo_traffic fires the examples' interval schedules itself")
        started = time.monotonic()
        last_campaign = -options["campaign_every"]
        # A first ETL run as soon as the seeded rows are old enough for one (see ETL_LAG_SECONDS).
        etl_due: float | None = example_setting("ETL_LAG_SECONDS") + 1.0
        last_summary = 0.0
        fired: dict[str, float] = {}
        interval = 1.0 / options["rate"]
        try:
            while options["duration"] <= 0 or time.monotonic() - started < options["duration"]:
                elapsed = time.monotonic() - started
                if drive:
                    traffic.schedules_drive(elapsed, fired)
                if elapsed - last_campaign >= options["campaign_every"]:
                    last_campaign = elapsed
                    traffic.campaign()
                if etl_due is not None and elapsed >= etl_due:
                    etl_due = None
                    traffic.etl_run()
                traffic.step()
                if elapsed - last_summary >= 30:
                    last_summary = elapsed
                    self._summary(traffic)
                time.sleep(interval)
        except KeyboardInterrupt:
            pass
        self._summary(traffic)

    def _summary(self, traffic: DemoTraffic) -> None:
        self.stdout.write("demo traffic so far: " + ", ".join(f"{n} {k}" for k, n in sorted(traffic.counts.items())))
