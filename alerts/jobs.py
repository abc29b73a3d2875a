"""Jobs of the alerts app: the periodic evaluation (see JOBSITE_SCHEDULES in settings)."""

from __future__ import annotations

from workers.registry import schedulable

from .services import alerts_evaluate


@schedulable
def alerts_check() -> str:
    """Evaluate every alert rule once; notify on new incidents and recoveries."""
    transitions = alerts_evaluate()
    return ", ".join(f"{t.event}: {t.alert}" for t in transitions) or "no change"
