"""Staged ETL: a scheduled job cuts new source rows into pages; a job per page runs the stages."""

from __future__ import annotations

from workers.registry import schedulable

from .. import services
from .attempts import current_job_id, is_final_attempt


@schedulable
def etl_run_start() -> str:
    run = services.etl_run_start(job_id=current_job_id())
    if run is None:
        return "nothing new to load"
    return f"run {run.pk}: source ids {run.lo + 1}..{run.hi} in {run.pages.count()} pages"


def etl_page_process(page_id: int) -> str:
    page = services.etl_page_process(page_id=page_id, job_id=current_job_id(), final=is_final_attempt())
    if page is None:
        return "superseded by a rerun"
    return f"page [{page.lo}, {page.hi}): {page.rows} rows loaded"
