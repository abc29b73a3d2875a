"""Evaluate the alert rules: open one incident per firing rule and subject, notify once,
resolve it and send a recovery message when the condition clears."""

from __future__ import annotations

import json
import logging
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.mail import mail_admins
from django.db import IntegrityError, transaction
from django.utils import timezone

from workers.models import AuditAction
from workers.services.audit import Actor, audited

from .models import Alert
from .rules import Reading, configured_rules, read

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Transition:
    alert: Alert
    event: str  # "firing" or "resolved"


def _config() -> dict[str, Any]:
    return getattr(settings, "JOBSITE_ALERTS", {})


def _webhook_post(url: str, payload: dict[str, Any]) -> None:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "jobsite-alerts"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=float(_config().get("WEBHOOK_TIMEOUT", 5))) as response:
        response.read()


def alert_notify(*, alert: Alert, event: str) -> str:
    """Send ``alert``'s firing or recovery through every configured channel; returns what
    was delivered ("mail, webhook") or why not. A failing channel never stops the others."""
    config = _config()
    state = "FIRING" if event == "firing" else "RESOLVED"
    where = f" [{alert.subject}]" if alert.subject else ""
    subject = f"{state}: {alert.rule}{where}"  # mail_admins adds EMAIL_SUBJECT_PREFIX
    if event == "firing":
        body = f"{alert.message}\n\nOpened at {alert.opened_at:%Y-%m-%d %H:%M:%S %Z}."
    else:
        body = (
            f"Recovered: {alert.message}\n\n"
            f"Opened {alert.opened_at:%H:%M:%S}, resolved {alert.resolved_at:%H:%M:%S %Z}."
        )
    delivered = []
    if config.get("MAIL_ADMINS", True) and settings.ADMINS:
        try:
            mail_admins(subject, body, fail_silently=False)
            delivered.append("mail")
        except Exception as exc:
            log.exception("alert %s: mail_admins failed", alert.pk)
            delivered.append(f"mail failed: {type(exc).__name__}")
    url = config.get("WEBHOOK_URL")
    if url:
        payload = {
            "event": event,
            "rule": alert.rule,
            "kind": alert.kind,
            "subject": alert.subject,
            "message": alert.message,
            "value": alert.value,
            "threshold": alert.threshold,
            "opened_at": alert.opened_at.isoformat(),
            "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
            "alert_id": alert.pk,
        }
        try:
            _webhook_post(url, payload)
            delivered.append("webhook")
        except Exception as exc:
            log.warning("alert %s: webhook %s failed: %s", alert.pk, url, exc)
            delivered.append(f"webhook failed: {type(exc).__name__}")
    return ", ".join(delivered) or "no channel configured"


def _open(reading: Reading, now: datetime) -> Alert | None:
    try:
        with transaction.atomic():
            return Alert.objects.create(
                rule=reading.rule,
                kind=reading.kind,
                subject=reading.subject,
                message=reading.message,
                value=reading.value,
                threshold=reading.threshold,
                opened_at=now,
            )
    except IntegrityError:
        return None  # another evaluator opened it a moment ago: one alert per incident


def alerts_evaluate(*, now: datetime | None = None) -> list[Transition]:
    """Check every rule once; returns the incidents that opened or resolved (notified)."""
    now = now or timezone.now()
    readings = [reading for rule in configured_rules() for reading in read(rule, now=now)]
    transitions: list[Transition] = []
    for reading in readings:
        current = Alert.objects.filter(rule=reading.rule, subject=reading.subject, resolved_at__isnull=True).first()
        if reading.firing and current is None:
            alert = _open(reading, now)
            if alert is not None:
                transitions.append(Transition(alert, "firing"))
        elif reading.firing and current is not None:
            Alert.objects.filter(pk=current.pk).update(value=reading.value)
        elif not reading.firing and current is not None:
            # Only the evaluator whose UPDATE matched sends the recovery.
            if Alert.objects.filter(pk=current.pk, resolved_at__isnull=True).update(
                resolved_at=now, value=reading.value
            ):
                current.refresh_from_db()
                transitions.append(Transition(current, "resolved"))
    for transition in transitions:
        delivered = alert_notify(alert=transition.alert, event=transition.event)
        field = "notified" if transition.event == "firing" else "recovery_notified"
        Alert.objects.filter(pk=transition.alert.pk).update(**{field: delivered[:255]})
    return transitions


# --- operator actions ------------------------------------------------------------------

# How long an operator may mute an incident for, in minutes.
MUTE_CHOICES = (60, 240, 1440)


class AlertActionError(Exception):
    """An action on an alert that cannot be done; the message says why."""


class AlertNotFound(AlertActionError):
    pass


def _locked_open(alert_id: int) -> Alert:
    alert = Alert.objects.select_for_update().filter(pk=alert_id).first()
    if alert is None:
        raise AlertNotFound(f"no alert with id {alert_id}")
    if not alert.is_open:
        raise AlertActionError(f"{alert}: already resolved at {alert.resolved_at:%Y-%m-%d %H:%M:%S}")
    return alert


def alert_acknowledge(*, alert_id: int, actor: Actor, now: datetime | None = None) -> Alert:
    """Someone is on it: the incident leaves the banner (it stays open until it recovers).
    Acknowledging twice keeps the first acknowledgement."""
    action = AuditAction.ALERT_ACKNOWLEDGE
    with audited(
        actor=actor, action=action, target_kind="alert", target_id=alert_id, refusals=(AlertActionError,)
    ) as note:
        alert = _locked_open(alert_id)
        if alert.acknowledged_at is not None:
            note.detail = f"{alert}: already acknowledged by {alert.acknowledged_by}"
            return alert
        alert.acknowledged_by, alert.acknowledged_at = actor.username[:150], now or timezone.now()
        alert.save(update_fields=["acknowledged_by", "acknowledged_at"])
        note.detail = f"{alert}: acknowledged"
    return alert


def alert_mute(*, alert_id: int, actor: Actor, minutes: int, now: datetime | None = None) -> Alert:
    """Keep the incident out of the banner for ``minutes`` (one of MUTE_CHOICES)."""
    action = AuditAction.ALERT_MUTE
    with audited(
        actor=actor, action=action, target_kind="alert", target_id=alert_id, refusals=(AlertActionError,)
    ) as note:
        if minutes not in MUTE_CHOICES:
            raise AlertActionError(f"Mute for {', '.join(map(str, MUTE_CHOICES))} minutes.")
        alert = _locked_open(alert_id)
        alert.muted_until = (now or timezone.now()) + timedelta(minutes=minutes)
        alert.save(update_fields=["muted_until"])
        note.detail = f"{alert}: muted until {alert.muted_until:%Y-%m-%d %H:%M %Z}"
    return alert
