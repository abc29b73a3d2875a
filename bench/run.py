"""Run the benchmarks, print one table of ratios, write bench/results.json.

``python -m bench.run [--merge] [enqueue enqueue_wait roundtrips instructions throughput ordering
pageviews record_lag memory apply pages]`` (default: all). scripts/bench.sh sets up what
this expects: REDIS_URL pointing at a redis-server of its own (with a replica, for
enqueue_wait) and DATABASE_URL at a fresh PostgreSQL database, both emptied freely here.
With ``--merge`` the results replace those of the same name in bench/results.json and the
others stay (`make bench-scale` adds its 10M figures so).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobsite.settings.base")
django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from redis import Redis  # noqa: E402

from .common import Result, log  # noqa: E402

# Quick ones first, the million-row load last.
ITEMS = {
    "enqueue": ("enqueue latency", "<= 1.3"),
    "enqueue_wait": ("enqueue latency ENQUEUE_WAIT 1 replica/none", "<= 1.5"),
    "roundtrips": ("Redis round trips per job tracked - bare", "<= 1"),
    "instructions": ("CPU instructions per job bare/tracked (callgrind)", ">= 0.95"),
    "throughput": ("throughput", ">= 0.90"),
    "ordering": ("ordered/unordered throughput", ">= 0.8"),
    "pageviews": ("page views Redis/direct UPDATE: visits/s, statements, p99", ">= 20"),
    "record_lag": ("finish-to-record latency p95 in ms at 200 jobs/s", "<= 250"),
    "memory": ("worker memory after 100k jobs / after 1k", "<= 1.10"),
    "apply": ("recorder apply rate with/without search indexes and status-count triggers", ">= 0.90"),
    "pages": ("server time of pages and searches N/10k", "<= 1.5"),
}
MODULES = {"apply": "apply_rate"}
RESULTS = Path(__file__).resolve().parent / "results.json"


def _run_item(name: str, connection: Redis) -> list[Result]:
    label, target = ITEMS[name]
    started = time.monotonic()
    log(f"== {name}")
    try:
        results = importlib.import_module(f"bench.{MODULES.get(name, name)}").run(connection)
    except Exception as exc:
        traceback.print_exc()
        results = [Result(name=label, ratio=None, target=target, note=f"error: {type(exc).__name__}: {exc}")]
    for result in results:
        result.detail.setdefault("seconds", round(time.monotonic() - started, 1))
    return results


def table(results: list[Result]) -> str:
    rows = [("benchmark", "ratio", "target", "meets", "detail")]
    for r in results:
        meets = {True: "yes", False: "NO", None: "-"}[r.meets]
        rows.append((r.name, "-" if r.ratio is None else f"{r.ratio:.2f}", r.target, meets, r.note))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for n, row in enumerate(rows):
        lines.append(" | ".join(cell.ljust(widths[i]) if i < 4 else cell for i, cell in enumerate(row)))
        if n == 0:
            lines.append("-+-".join("-" * w for w in widths) + "-+-" + "-" * 20)
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    merge = "--merge" in argv
    names = [a for a in argv if a != "--merge"] or list(ITEMS)
    unknown = [n for n in names if n not in ITEMS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(ITEMS)}", file=sys.stderr)
        return 2
    if not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        print("the benchmarks need PostgreSQL: run them with `make bench`", file=sys.stderr)
        return 2
    call_command("migrate", verbosity=0)
    connection = Redis.from_url(settings.REDIS_URL)
    started = time.monotonic()
    results: list[Result] = []
    for name in names:
        results.extend(_run_item(name, connection))
    measured = time.strftime("%Y-%m-%d %H:%M")
    written = [{**r.as_json(), "measured": measured} for r in results]
    if merge and RESULTS.exists():
        names_now = {r["name"] for r in written}
        kept = [r for r in json.loads(RESULTS.read_text()) if r.get("name") not in names_now]
        written = kept + written
    RESULTS.write_text(json.dumps(written, indent=2) + "\n")
    print()
    print(table(results))
    print(f"\n{len(results)} results in {time.monotonic() - started:.0f} s; written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
