"""CPU instructions per job in the worker process: bare RQ's ``SimpleWorker`` against
jobsite's ``TrackingSimpleWorker`` (recorder off, as ``rqworker --no-recorder``), counted by
valgrind's callgrind: the same figures on a loaded machine (issue 15).

    python -m bench.instructions measure [--jobs N] [--sides bare tracked] [--outcomes finishing failing]
    python -m bench.instructions enqueue SIDE OUTCOME N
    python -m bench.instructions work SIDE OUTCOME N [--cprofile FILE]

``measure`` (not itself under valgrind) runs, per side and outcome, N then 2N jobs: it
empties the configured (private) Redis, enqueues the jobs, then runs ``work`` under
``valgrind --tool=callgrind --separate-threads=yes``, which burst-works them in one process.
Per job: (instructions(2N) - instructions(N)) / N of the main thread, so that start-up
(Python, Django, imports) and stop cancel out. The sides are set up as bench/roundtrips.py
sets them up (bare: rq's Queue, Job, SimpleWorker; tracked: TrackedQueue, TrackedJob,
TrackingSimpleWorker), with the same jobs (bench/jobs.py: noop, fail; no retry).

The threads beside the jobs (jobsite's companion: liveness, watchdogs; RQ's pubsub thread)
are paced by time, not by jobs, and valgrind runs ~50x slower: their instructions are
counted apart (callgrind's other threads) and the companion's intervals are set long
(``QUIET``) so that none of its passes but the first, at start, falls in a run. RQ's
maintenance, also paced by time (MAINTENANCE_INTERVAL for jobsite), is kept out the same way.

``work --cprofile FILE`` (not under valgrind) writes the profile of ``worker.work`` for
pstats: which functions one job calls, and how often.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobsite.settings.base")
django.setup()

from django.conf import settings  # noqa: E402
from redis import Redis  # noqa: E402
from rq import Queue, SimpleWorker  # noqa: E402
from rq.job import Job  # noqa: E402

from workers.redis import STREAM_GROUP, STREAM_KEY  # noqa: E402
from workers.rq.job import TrackedJob  # noqa: E402
from workers.rq.queue import TrackedQueue  # noqa: E402
from workers.runtime.worker import TrackingMixin, TrackingSimpleWorker  # noqa: E402

from .common import Result, log, not_available  # noqa: E402
from .roundtrips import FUNCS, QUEUE  # noqa: E402

SIDES = ("bare", "tracked")
# The companion's and RQ's timed work, pushed past the end of a run (seconds).
QUIET = {"WATCHDOG_INTERVAL": 3600, "RECONCILE_INTERVAL": 3600, "WORKER_ALIVE_TTL": 3600, "MAINTENANCE_INTERVAL": 3600}
LOGGING_LEVEL = "WARNING"  # as bench/throughput.py: RQ's per-job INFO lines are not written
ROOT = Path(__file__).resolve().parent.parent


def classes(side: str) -> tuple[type[Queue], type[Job], type[SimpleWorker]]:
    if side == "tracked":
        return TrackedQueue, TrackedJob, TrackingSimpleWorker
    return Queue, Job, SimpleWorker


def enqueue(side: str, outcome: str, count: int) -> None:
    """Empty Redis and enqueue ``count`` jobs that end as ``outcome`` for ``side``."""
    connection = Redis.from_url(settings.REDIS_URL)
    connection.flushdb()
    connection.xgroup_create(STREAM_KEY, STREAM_GROUP, id="0", mkstream=True)
    queue_class, job_class, _ = classes(side)
    queue = queue_class(QUEUE, connection=connection, job_class=job_class)
    queue.enqueue_many([Queue.prepare_data(FUNCS[outcome]) for _ in range(count)])
    connection.close()


def work(side: str, outcome: str, count: int, cprofile: str | None = None) -> None:
    """Burst-work the queue (``count`` jobs enqueued by ``enqueue``) in this process."""
    settings.JOBSITE = {**settings.JOBSITE, **QUIET}
    TrackingMixin.run_recorder = False  # as `rqworker --no-recorder`
    connection = Redis.from_url(settings.REDIS_URL)
    queue_class, job_class, worker_class = classes(side)
    queue = queue_class(QUEUE, connection=connection, job_class=job_class)
    worker = worker_class(
        [queue], connection=connection, job_class=job_class, queue_class=queue_class,
        name=f"bench-{uuid.uuid4().hex[:8]}",
    )  # fmt: skip
    if cprofile is None:
        worker.work(burst=True, with_scheduler=False, logging_level=LOGGING_LEVEL)
    else:
        with cProfile.Profile() as profile:
            worker.work(burst=True, with_scheduler=False, logging_level=LOGGING_LEVEL)
        profile.dump_stats(cprofile)
    ended = queue.finished_job_registry if outcome == "finishing" else queue.failed_job_registry
    if (ended.count, queue.count) != (count, 0):
        raise AssertionError(f"{side} {outcome}: {ended.count} of {count} jobs ended, {queue.count} queued")


def thread_totals(out_file: Path) -> list[int]:
    """Instructions per thread (main thread first) of a callgrind run with separate threads."""
    totals = []
    for part in sorted(out_file.parent.glob(f"{out_file.name}-*")):
        for line in part.read_text().splitlines():
            if line.startswith(("summary:", "totals:")):
                totals.append(int(line.split()[1]))
                break
    if not totals:
        raise RuntimeError(f"no callgrind output at {out_file}-*")
    return totals


def callgrind(side: str, outcome: str, count: int, out_dir: Path) -> list[int]:
    enqueue(side, outcome, count)
    out_file = out_dir / f"{side}-{outcome}-{count}.out"
    command = [
        "valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={out_file}",
        sys.executable, "-m", "bench.instructions", "work", side, outcome, str(count),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return thread_totals(out_file)


def measure(count: int, sides: list[str], outcomes: list[str], out_dir: Path) -> dict[tuple[str, str], float]:
    """Instructions per job (main thread) by (side, outcome)."""
    per_job: dict[tuple[str, str], float] = {}
    for outcome in outcomes:
        for side in sides:
            small = callgrind(side, outcome, count, out_dir)
            large = callgrind(side, outcome, 2 * count, out_dir)
            per_job[side, outcome] = (large[0] - small[0]) / count
            log(
                f"{side} {outcome}: {per_job[side, outcome] / 1e6:.3f} M instructions per job (main thread; "
                f"{count} jobs {small[0]:,}, {2 * count} jobs {large[0]:,}; other threads {small[1:]} / {large[1:]})"
            )
        if set(sides) == set(SIDES):
            ratio = per_job["tracked", outcome] / per_job["bare", outcome]
            log(f"{outcome}: instructions per job tracked/bare {ratio:.3f} (CPU-bound rate ratio {1 / ratio:.3f})")
    return per_job


def run(connection: Redis) -> list[Result]:
    """For ``make bench``: bare/tracked instructions per job, as a rate ratio (the target is
    issue 15's for the SimpleWorker: 0.95 of bare RQ's)."""
    if shutil.which("valgrind") is None:
        return [not_available("CPU instructions per job bare/tracked", ">= 0.95", "valgrind is not installed")]
    count = int(os.environ.get("BENCH_INSTRUCTION_JOBS", "200"))
    with tempfile.TemporaryDirectory(prefix="jobsite-callgrind-") as out_dir:
        per_job = measure(count, list(SIDES), list(FUNCS), Path(out_dir))
    return [
        Result(
            name=f"CPU instructions per job bare/tracked, SimpleWorker, {outcome} job (callgrind)",
            ratio=per_job["bare", outcome] / per_job["tracked", outcome],
            target=">= 0.95",
            detail={
                "jobs_each_run": [count, 2 * count],
                "bare_instructions_per_job": round(per_job["bare", outcome]),
                "tracked_instructions_per_job": round(per_job["tracked", outcome]),
            },
            note=f"{per_job['bare', outcome] / 1e6:.2f} M vs {per_job['tracked', outcome] / 1e6:.2f} M per job",
        )
        for outcome in FUNCS
    ]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions")
    commands = parser.add_subparsers(dest="command", required=True)
    measure_parser = commands.add_parser("measure")
    measure_parser.add_argument("--jobs", type=int, default=200)
    measure_parser.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES))
    measure_parser.add_argument("--outcomes", nargs="+", choices=list(FUNCS), default=list(FUNCS))
    measure_parser.add_argument("--out-dir", type=Path, default=None, help="keep the callgrind files here")
    for name in ("enqueue", "work"):
        sub = commands.add_parser(name)
        sub.add_argument("side", choices=SIDES)
        sub.add_argument("outcome", choices=list(FUNCS))
        sub.add_argument("count", type=int)
        if name == "work":
            sub.add_argument("--cprofile", default=None, help="write the profile of worker.work here")
    args = parser.parse_args(argv)
    if args.command == "enqueue":
        enqueue(args.side, args.outcome, args.count)
    elif args.command == "work":
        work(args.side, args.outcome, args.count, args.cprofile)
    elif args.out_dir is not None:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        measure(args.jobs, args.sides, args.outcomes, args.out_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="jobsite-callgrind-") as out_dir:
            measure(args.jobs, args.sides, args.outcomes, Path(out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
