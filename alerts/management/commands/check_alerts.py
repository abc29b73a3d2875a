"""Evaluate the alert rules once (cron-friendly; the scheduler runs alerts.jobs.alerts_check)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from alerts.services import alerts_evaluate


class Command(BaseCommand):
    help = "Evaluate jobsite's alert rules once: open, notify and resolve incidents."

    def handle(self, *args: Any, **options: Any) -> None:
        transitions = alerts_evaluate()
        for transition in transitions:
            self.stdout.write(f"{transition.event}: {transition.alert} — {transition.alert.message}")
        if not transitions:
            self.stdout.write("no change")
