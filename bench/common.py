"""What every benchmark reports, and small timing helpers."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Result:
    name: str
    ratio: float | None
    target: str  # ">= 0.90", "<= 1.3"
    detail: dict[str, Any] = field(default_factory=dict)
    note: str = ""  # why there is no ratio, or what was measured

    @property
    def meets(self) -> bool | None:
        if self.ratio is None:
            return None
        op, bound = self.target.split()
        ok = self.ratio >= float(bound) if op == ">=" else self.ratio <= float(bound)
        extra = self.detail.get("extra_target_met")
        return ok and (extra is None or bool(extra))

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ratio": None if self.ratio is None else round(self.ratio, 3),
            "target": self.target,
            "meets": self.meets,
            "note": self.note,
            **self.detail,
        }


def not_available(name: str, target: str, why: str) -> Result:
    return Result(name=name, ratio=None, target=target, note=f"not available: {why}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def median(values: list[float]) -> float:
    return statistics.median(values)


@contextmanager
def stopwatch() -> Iterator[Callable[[], float]]:
    start = time.perf_counter()
    end: list[float] = []
    yield lambda: (end[0] if end else time.perf_counter()) - start
    end.append(time.perf_counter())


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)
