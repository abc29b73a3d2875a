"""Server-rendered SVG charts: geometry computed here, drawn by templates (no chart library)."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils import timezone

from workers.reads.rollups import Bucket, failure_rate


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    finished_y: float
    finished_h: float
    failed_y: float
    failed_h: float
    label: str
    finished: int
    failed: int


@dataclass(frozen=True)
class Chart:
    title: str
    width: int
    height: int
    bars: list[Bar]
    peak: int
    finished: int
    failed: int
    first_label: str
    last_label: str
    rate_points: str  # SVG polyline points of the failure rate (0-100 % mapped to the height)

    @property
    def failure_rate(self) -> float | None:
        return failure_rate(self.failed, self.finished)


def throughput_chart(buckets: list[Bucket], *, title: str, fmt: str, width: int = 480, height: int = 120) -> Chart:
    """Stacked bars (finished below, failed on top) per bucket, plus the failure-rate line."""
    peak = max((b.finished + b.failed for b in buckets), default=0)
    scale = (height - 4) / peak if peak else 0.0
    slot = width / max(len(buckets), 1)
    gap = 1.0 if slot > 4 else 0.0
    bars, points = [], []
    for i, bucket in enumerate(buckets):
        finished_h = bucket.finished * scale
        failed_h = bucket.failed * scale
        finished_y = height - finished_h
        local = timezone.localtime(bucket.start)
        bars.append(
            Bar(
                x=round(i * slot, 2),
                width=round(max(slot - gap, 0.5), 2),
                finished_y=round(finished_y, 2),
                finished_h=round(finished_h, 2),
                failed_y=round(finished_y - failed_h, 2),
                failed_h=round(failed_h, 2),
                label=local.strftime(fmt),
                finished=bucket.finished,
                failed=bucket.failed,
            )
        )
        rate = bucket.failure_rate
        if rate is not None:
            points.append(f"{round(i * slot + slot / 2, 2)},{round(height - rate * (height - 4), 2)}")
    return Chart(
        title=title,
        width=width,
        height=height,
        bars=bars,
        peak=peak,
        finished=sum(b.finished for b in buckets),
        failed=sum(b.failed for b in buckets),
        first_label=bars[0].label if bars else "",
        last_label=bars[-1].label if bars else "",
        rate_points=" ".join(points),
    )
