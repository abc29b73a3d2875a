"""Job functions the Redis outage tests enqueue: importable by worker processes."""

from __future__ import annotations

import time
from pathlib import Path


def hold(cue: str) -> str:
    """Says it runs (creates ``cue``.running), then waits for ``cue``.go: the test takes Redis
    away in between, so the job returns, and its outcome is written, while Redis is away."""
    Path(f"{cue}.running").touch()
    deadline = time.monotonic() + 120
    while not Path(f"{cue}.go").exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no cue at {cue}.go")
        time.sleep(0.05)
    return "held"
