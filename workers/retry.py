"""Retry policy: how many attempts a job gets and how long to wait between them."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any

from .conf import setting


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts in all (the first run included) and exponential backoff with jitter."""

    max_attempts: int = 3
    base: float = 5.0
    factor: float = 2.0
    cap: float = 3600.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValueError(f"max_attempts must be a whole number >= 1, not {self.max_attempts!r}")
        if self.base < 0 or self.cap < 0:
            raise ValueError("base and cap of a retry policy must not be negative")
        if self.factor < 1:
            raise ValueError(f"factor must be >= 1, not {self.factor!r}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), not {self.jitter!r}")

    def delay(self, attempt: int, rand: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        raw = min(self.cap, self.base * self.factor ** max(attempt - 1, 0))
        spread = (2 * (random.random() if rand is None else rand) - 1) * self.jitter
        return max(raw * (1 + spread), 0.0)

    def as_meta(self) -> dict[str, Any]:
        return asdict(self)


def policy_for(queue: str, override: dict[str, Any] | None = None) -> RetryPolicy:
    """Settings' default, then the queue's override, then the job's own."""
    values = dict(setting("RETRY"))
    values.update(setting("QUEUE_RETRY", {}).get(queue, {}))
    values.update(override or {})
    return RetryPolicy(**values)
