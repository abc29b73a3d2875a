"""Alert history: one row per incident, from the moment a rule fires until it recovers."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone


class Alert(models.Model):
    rule = models.CharField(max_length=100)
    kind = models.CharField(max_length=32)
    # What the rule looked at: a queue name, or "" for rules about the whole system.
    subject = models.CharField(max_length=100, blank=True, default="")
    message = models.TextField()
    value = models.FloatField(null=True, blank=True, help_text="The measured value when it fired (or last checked).")
    threshold = models.FloatField(null=True, blank=True)
    opened_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    # How the firing and the recovery were delivered ("mail, webhook"), or why not.
    notified = models.CharField(max_length=255, blank=True, default="")
    recovery_notified = models.CharField(max_length=255, blank=True, default="")
    # An operator took it on (alerts.services.alert_acknowledge): the banner lets it be.
    acknowledged_by = models.CharField(max_length=150, blank=True, default="")
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    # Out of the banner until then (alerts.services.alert_mute); it stays on the alerts page.
    muted_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            # One open incident per rule and subject: a second evaluator cannot open another.
            models.UniqueConstraint(
                fields=["rule", "subject"], condition=Q(resolved_at__isnull=True), name="alert_one_open_per_subject"
            )
        ]
        indexes = [models.Index(fields=["-opened_at", "-id"], name="alert_newest")]

    def __str__(self) -> str:
        state = "resolved" if self.resolved_at else "firing"
        return f"{self.rule}{f' [{self.subject}]' if self.subject else ''}: {state}"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None

    @property
    def is_muted(self) -> bool:
        return self.muted_until is not None and self.muted_until > timezone.now()
