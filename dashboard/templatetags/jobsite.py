"""Template filters and tags of the dashboard."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString, mark_safe

register = template.Library()


@register.filter
def percent(share: float | None) -> str:
    """A share from 0 to 1 (a failure rate, say) as "12.5%"; "–" when there is none."""
    if share is None:
        return "–"
    return f"{share * 100:.1f}%"


@register.filter
def tail(name: object, length: int = 44) -> str:
    """A dotted name (a function's path) cut to at most ``length`` characters from its
    start, since its end is what tells such names apart:
    ``examples.jobs.campaigns.campaign_send_one`` -> ``…campaigns.campaign_send_one``.
    Where it loses little, the cut falls after a dot, so the parts kept are whole."""
    text = "" if name is None else str(name)
    if len(text) <= length:
        return text
    kept = text[-(length - 1) :]
    dot = kept.find(".")
    if 0 <= dot < len(kept) // 3:
        kept = kept[dot + 1 :]
    return "…" + kept


@register.filter(needs_autoescape=True)
def breakable(text: object, autoescape: bool = True) -> SafeString:
    """``text`` escaped, and allowed to break after each dot: a long exception or module
    path (``smtplib.SMTPServerDisconnected``) wraps at its dots in a narrow column."""
    value = "" if text is None else str(text)
    escaped = conditional_escape(value) if autoescape else value
    return mark_safe(escaped.replace(".", ".<wbr>"))  # escaped above: only <wbr> is added


@register.inclusion_tag("dashboard/_job_id.html")
def job_id(value: str, link: bool = True) -> dict[str, Any]:
    """A job id, whole, with a button that copies it; a link to the job's page unless
    ``link=False`` (on that page itself)."""
    return {"job_id": value, "link": link}
