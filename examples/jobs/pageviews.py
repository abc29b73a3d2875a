"""Page views: the flush a schedule runs every few seconds."""

from __future__ import annotations

from workers.registry import schedulable

from .. import services


@schedulable
def page_views_flush() -> str:
    result = services.page_views_flush()
    return (
        f"{result.views} views of {result.articles} articles in {result.flushes} flushes ({result.reapplied} reapplied)"
    )
