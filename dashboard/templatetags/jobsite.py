"""Template filters of the dashboard."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def percent(share: float | None) -> str:
    """A share from 0 to 1 (a failure rate, say) as "12.5%"; "–" when there is none."""
    if share is None:
        return "–"
    return f"{share * 100:.1f}%"
