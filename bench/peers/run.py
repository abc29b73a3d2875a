"""Drive `make bench-peers`: every worker on the same three workloads, one worker process
each, interleaved, median of 3; print the table and write the ratios to bench/results.json.

``python -m bench.peers.run [--scale F] [--reps N] [ROW ...]`` in the project's venv;
scripts/bench-peers.sh makes the venvs, a redis-server of the run's own (REDIS_URL) and a
PostgreSQL database per row (``jobsite_peers_<row>``) first.

Each run: Redis emptied and the row's tables truncated; the jobs enqueued (not timed); the
worker started; then the driver counts the jobs that have *ended where the user would read
them* (the record in PostgreSQL for every row that keeps history; RQ's finished and failed
registries for bare RQ, which keeps none) every 50 ms. The rate is the jobs that ended
between the first count above zero and the last count, over that time: a worker's start-up
(Django, imports, a pool forking) is left out, and a recorder that falls behind is not.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from redis import Redis

ROOT = Path(__file__).resolve().parents[2]
VENVS = ROOT / ".bench-peers"
RESULTS = ROOT / "bench" / "results.json"
WORKLOADS = {"noop": 2000, "sleep5": 1000, "fail": 500}  # the three
LABELS = {"noop": "no-op", "sleep5": "5 ms", "fail": "failing"}
POLL = 0.05
TIMEOUT = 900  # s for one run: far above the slowest row's 2,000 jobs


@dataclass(frozen=True)
class Row:
    key: str  # also BENCH_PEER and the database's suffix
    label: str
    venv: str | None  # None: the project's own
    worker: tuple[str, ...]  # argv after the venv's python
    ended_sql: str | None  # None: bare RQ, counted in Redis
    tables: tuple[str, ...] = ()
    isolates: bool = False  # a job that crashes its process takes down only itself
    jobsite: bool = False
    env: dict[str, str] = field(default_factory=dict)


DJANGO = {"DJANGO_SETTINGS_MODULE": "bench.peers.settings"}
JOBSITE = {"DJANGO_SETTINGS_MODULE": "jobsite.settings.base", "DJANGO_DEBUG": "0", "DJANGO_LOG_LEVEL": "WARNING"}
RQ_WORKER = ("-m", "rq.cli", "worker", "--burst", "--logging_level", "WARNING", "--worker-class")
JOBSITE_ENDED = "SELECT count(*) FROM workers_jobrecord WHERE status IN ('finished', 'dead')"
CELERY = (
    "-m",
    "celery",
    "-A",
    "bench.peers.apps",
    "worker",
    "-Q",
    "bench",
    "--concurrency",
    "1",
    "--without-gossip",
    "--without-mingle",
    "--without-heartbeat",
    "--loglevel",
    "WARNING",
    "--pool",
)
CELERY_ENDED = "SELECT count(*) FROM django_celery_results_taskresult WHERE status IN ('SUCCESS', 'FAILURE')"

ROWS = [
    Row("rq-simple", "bare RQ SimpleWorker (no history)", None, (*RQ_WORKER, "rq.worker.SimpleWorker", "bench"), None),
    Row(
        "rq-forking",
        "bare RQ Worker, forking (no history)",
        None,
        (*RQ_WORKER, "rq.worker.Worker", "bench"),
        None,
        isolates=True,
    ),
    Row(
        "jobsite-simple",
        "jobsite TrackingSimpleWorker (`rqworker --simple`)",
        None,
        ("manage.py", "rqworker", "--simple", "--burst", "default"),
        JOBSITE_ENDED,
        ("workers\\_%",),
        jobsite=True,
        env=JOBSITE,
    ),
    Row(
        "jobsite-forking",
        "jobsite TrackingWorker, forking (`rqworker`)",
        None,
        ("manage.py", "rqworker", "--burst", "default"),
        JOBSITE_ENDED,
        ("workers\\_%",),
        isolates=True,
        jobsite=True,
        env=JOBSITE,
    ),
    Row(
        "celery-solo",
        "Celery + django-celery-results, solo pool",
        "celery",
        (*CELERY, "solo"),
        CELERY_ENDED,
        ("django_celery_results_taskresult",),
        env=DJANGO,
    ),
    Row(
        "celery-prefork",
        "Celery + django-celery-results, prefork pool of 1",
        "celery",
        (*CELERY, "prefork"),
        CELERY_ENDED,
        ("django_celery_results_taskresult",),
        isolates=True,
        env=DJANGO,
    ),
    Row(
        "django-q2",
        "django-q2 (Redis broker, results in the ORM), 1 worker",
        "django-q2",
        ("-m", "django", "qcluster"),
        "SELECT count(*) FROM django_q_task",
        ("django_q_task",),
        isolates=True,
        env=DJANGO,
    ),
    Row(
        "procrastinate",
        "procrastinate (PostgreSQL), concurrency 1",
        "procrastinate",
        ("-m", "procrastinate", "--app", "bench.peers.apps.procrastinate", "worker", "-q", "bench", "-c", "1"),
        "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('succeeded', 'failed')",
        ("procrastinate_jobs", "procrastinate_events"),
        env={"PROCRASTINATE_VERBOSITY": "0"},
    ),
    Row(
        "django-tasks",
        "django-tasks + django-tasks-db (`db_worker`)",
        "django-tasks",
        ("-m", "django", "db_worker"),
        "SELECT count(*) FROM django_tasks_database_dbtaskresult WHERE status IN ('SUCCESSFUL', 'FAILED')",
        ("django_tasks_database_dbtaskresult",),
        env=DJANGO,
    ),
]
BASELINE = "rq-simple"
STATS_FLUSH = 1.2  # s: a PostgreSQL backend reports its counts at most once a second


@dataclass(frozen=True)
class Measured:
    rate: float  # jobs per second
    commands: float  # Redis commands per job, the worker's start-up and idle polling included
    transactions: float  # transactions committed per job in the row's database, likewise


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Bench:
    def __init__(self, redis_url: str, pg_url: str, workdir: Path) -> None:
        self.redis_url, self.pg_url, self.workdir = redis_url, pg_url, workdir
        self.redis = Redis.from_url(redis_url)
        self.pg = urlsplit(pg_url)

    def create_database(self, row: Row, *, drop_only: bool = False) -> None:
        with psycopg.connect(f"{self.pg_url}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.database(row)}" WITH (FORCE)')
            if not drop_only:
                admin.execute(f'CREATE DATABASE "{self.database(row)}"')

    def database(self, row: Row) -> str:
        return f"jobsite_peers_{row.key.replace('-', '_')}"

    def python(self, row: Row) -> str:
        return str(VENVS / row.venv / "bin" / "python") if row.venv else sys.executable

    def env(self, row: Row) -> dict[str, str]:
        db = self.database(row)
        return {
            **os.environ,
            **row.env,
            "BENCH_PEER": row.key,
            "BENCH_PEER_DB": db,
            "REDIS_URL": self.redis_url,
            "DATABASE_URL": f"{self.pg_url}/{db}",
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            "BENCH_PG_HOST": self.pg.hostname or "127.0.0.1",
            "BENCH_PG_PORT": str(self.pg.port or 5432),
            "BENCH_PG_USER": self.pg.username or "postgres",
        }

    def client(self, row: Row, *args: str) -> None:
        subprocess.run(
            [self.python(row), "-m", "bench.peers.client", row.key, *args], cwd=ROOT, env=self.env(row), check=True
        )

    def connect(self, row: Row) -> psycopg.Connection:
        return psycopg.connect(f"{self.pg_url}/{self.database(row)}", autocommit=True)

    def ended(self, row: Row, db: psycopg.Connection | None) -> int:
        if row.ended_sql is None:
            return int(self.redis.zcard("rq:finished:bench")) + int(self.redis.zcard("rq:failed:bench"))
        assert db is not None
        found = db.execute(row.ended_sql).fetchone()
        return int(found[0]) if found else 0

    def reset(self, row: Row, db: psycopg.Connection | None) -> None:
        self.redis.flushall()
        if db is None or not row.tables:
            return
        tables = []
        for name in row.tables:  # a name, or a LIKE pattern of names
            found = db.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE %s", (name,)
            ).fetchall()
            if not found:
                raise RuntimeError(f"{row.key}: no table {name!r} in {self.database(row)}")
            tables += [table for (table,) in found]
        db.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")

    def counters(self, row: Row) -> tuple[int, int]:
        """(commands Redis has processed, transactions committed in the row's database)."""
        commands = int(self.redis.info("stats")["total_commands_processed"])
        with psycopg.connect(f"{self.pg_url}/postgres", autocommit=True) as admin:
            found = admin.execute(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (self.database(row),)
            ).fetchone()
        return commands, int(found[0]) if found else 0

    def run(self, row: Row, workload: str, count: int) -> Measured:
        """One run (see the module's docstring)."""
        db = self.connect(row) if row.ended_sql else None
        try:
            self.reset(row, db)
            self.client(row, "enqueue", workload, str(count))
            time.sleep(STATS_FLUSH)  # every backend's counts reach pg_stat_database
            before = self.counters(row)
            output = (self.workdir / f"{row.key}-{workload}.log").open("ab")
            worker = subprocess.Popen(
                [self.python(row), *row.worker],
                cwd=ROOT,
                env=self.env(row),
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                rate, polls = self._watch(row, db, worker, count)
            finally:
                _stop(worker)
                output.close()
        finally:
            if db is not None:
                db.close()
        time.sleep(STATS_FLUSH)
        after = self.counters(row)
        # Less the driver's own: a counting query per poll (two ZCARDs in Redis for bare RQ,
        # one transaction in the database otherwise) and the first INFO.
        commands = after[0] - before[0] - 1 - (2 * polls if row.ended_sql is None else 0)
        transactions = after[1] - before[1] - (polls if row.ended_sql is not None else 0)
        return Measured(rate, commands / count, transactions / count)

    def _watch(
        self, row: Row, db: psycopg.Connection | None, worker: subprocess.Popen[bytes], count: int
    ) -> tuple[float, int]:
        """(jobs per second, polls made)."""
        deadline = time.monotonic() + TIMEOUT
        first: tuple[float, int] | None = None
        polls = 0
        while True:
            now, done = time.monotonic(), self.ended(row, db)
            polls += 1
            if first is None and done > 0:
                first = (now, done)
            if done >= count:
                break
            if now > deadline:
                raise RuntimeError(f"{row.key}: {done} of {count} jobs ended in {TIMEOUT} s")
            if worker.poll() is not None and worker.returncode != 0:
                raise RuntimeError(f"{row.key}: the worker exited {worker.returncode} with {done} of {count} ended")
            time.sleep(POLL)
        if first is None or now <= first[0] or done <= first[1]:
            raise RuntimeError(f"{row.key}: the jobs ended too fast to time; enqueue more")
        return (done - first[1]) / (now - first[0]), polls


def _stop(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
    try:
        os.killpg(worker.pid, signal.SIGKILL)  # whatever the worker left (a pool's children)
    except ProcessLookupError:
        pass


def _markdown(rates: dict[tuple[str, str], float], rows: list[Row]) -> str:
    base = rates.get((BASELINE, "noop"))
    lines = [
        "| worker | " + " | ".join(f"{LABELS[w]} jobs/s" for w in WORKLOADS) + " | vs bare RQ SimpleWorker (no-op) |",
        "|---|" + "---|" * (len(WORKLOADS) + 1),
    ]
    for row in rows:
        cells = [f"{rates[(row.key, w)]:.0f}" if (row.key, w) in rates else "-" for w in WORKLOADS]
        mine = rates.get((row.key, "noop"))
        ratio = f"{mine / base:.2f}" if mine and base else "-"
        label = f"**{row.label}**" if row.jobsite else row.label
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {ratio} |")
    return "\n".join(lines)


def _jobs(workload: str, scale: float) -> int:
    return max(50, round(WORKLOADS[workload] * scale))


def _ratio(rates: dict[tuple[str, str], float], workload: str, a: str | None, b: str | None) -> float | None:
    if a is None or b is None or (a, workload) not in rates or (b, workload) not in rates:
        return None
    return rates[(a, workload)] / rates[(b, workload)]


def _fastest(rates: dict[tuple[str, str], float], workload: str, rows: list[Row]) -> str | None:
    measured = [r.key for r in rows if (r.key, workload) in rates]
    return max(measured, key=lambda key: rates[(key, workload)], default=None)


def _results(
    rates: dict[tuple[str, str], float],
    runs: dict[tuple[str, str], list[float]],
    costs: dict[tuple[str, str], tuple[float, float]] | None = None,
    scale: float = 1.0,
) -> list[dict]:
    """The issue's targets, per workload, each with every row's median and runs (and its
    Redis commands and database transactions per job, when given)."""
    results = []
    peers = [r for r in ROWS if not r.jobsite and not r.key.startswith("rq-")]
    isolating = [r for r in ROWS if r.jobsite and r.isolates]
    for workload in WORKLOADS:
        label = LABELS[workload]
        detail = {
            "workload": f"{_jobs(workload, scale)} {label} jobs",
            "jobs_per_s": {r.key: round(rates[(r.key, workload)], 1) for r in ROWS if (r.key, workload) in rates},
            "runs_jobs_per_s": {r.key: runs[(r.key, workload)] for r in ROWS if (r.key, workload) in runs},
        }
        if costs:
            mine = {r.key: costs[(r.key, workload)] for r in ROWS if (r.key, workload) in costs}
            detail["redis_commands_per_job"] = {key: round(c, 1) for key, (c, _) in mine.items()}
            detail["db_transactions_per_job"] = {key: round(x, 2) for key, (_, x) in mine.items()}
        best_peer, best_isolating = _fastest(rates, workload, peers), _fastest(rates, workload, isolating)
        for name, value, target in (
            (
                f"peers {label}: jobsite SimpleWorker / bare RQ SimpleWorker",
                _ratio(rates, workload, "jobsite-simple", "rq-simple"),
                ">= 0.95",
            ),
            (
                f"peers {label}: jobsite forking Worker / bare RQ forking Worker (the fork-once worker's target)",
                _ratio(rates, workload, "jobsite-forking", "rq-forking"),
                ">= 3",
            ),
            (
                f"peers {label}: jobsite's best isolating worker / the fastest peer ({best_peer})",
                _ratio(rates, workload, best_isolating, best_peer),
                ">= 1.0",
            ),
        ):
            bound = float(target.split()[1])
            meets = None if value is None else value >= bound
            ratio = None if value is None else round(value, 3)
            results.append({"name": name, "ratio": ratio, "target": target, "meets": meets, "note": "", **detail})
    return results


Runs = dict[tuple[str, str], list[Measured]]


def _measure(bench: Bench, rows: list[Row], reps: int, scale: float) -> Runs:
    for row in rows:
        log(f"setting up {row.key}")
        if row.ended_sql is not None:
            bench.create_database(row)
        bench.client(row, "setup")
    runs: Runs = {}
    for rep in range(reps):
        order = rows[rep % len(rows) :] + rows[: rep % len(rows)]  # each rep starts with another row
        for workload in WORKLOADS:
            for row in order:
                measured = bench.run(row, workload, _jobs(workload, scale))
                runs.setdefault((row.key, workload), []).append(measured)
                log(
                    f"rep {rep + 1}/{reps} {workload:6} {row.key:16} {measured.rate:7.1f} jobs/s, "
                    f"{measured.commands:5.1f} Redis commands and {measured.transactions:5.2f} transactions per job"
                )
    return runs


def _costs_markdown(runs: Runs, rows: list[Row]) -> str:
    """Redis commands and database transactions per job (medians): counts, not times."""
    shown = ("noop", "fail")
    lines = [
        "| worker | " + " | ".join(f"Redis commands per job ({LABELS[w]})" for w in shown) + " | "
        + " | ".join(f"database transactions per job ({LABELS[w]})" for w in shown) + " |",
        "|---|" + "---|" * (2 * len(shown)),
    ]  # fmt: skip
    for row in rows:
        commands = [statistics.median(m.commands for m in runs[(row.key, w)]) for w in shown if (row.key, w) in runs]
        xacts = [statistics.median(m.transactions for m in runs[(row.key, w)]) for w in shown if (row.key, w) in runs]
        if len(commands) == len(shown):
            label = f"**{row.label}**" if row.jobsite else row.label
            lines.append(
                f"| {label} | " + " | ".join(f"{c:.1f}" for c in commands) + " | "
                + " | ".join(f"{x:.2f}" for x in xacts) + " |"
            )  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="bench.peers.run", description=__doc__.split("\n")[0])
    parser.add_argument("rows", nargs="*", help=f"rows to run (default: all): {', '.join(r.key for r in ROWS)}")
    parser.add_argument("--reps", type=int, default=3, help="runs of each row and workload; the median is kept")
    parser.add_argument("--scale", type=float, default=1.0, help="job counts times this (a quick look: 0.1)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.rows) - {r.key for r in ROWS})
    if unknown or args.reps < 1 or not 0 < args.scale <= 10:
        parser.error(f"unknown rows: {', '.join(unknown)}" if unknown else "--reps >= 1 and 0 < --scale <= 10")
    rows = [r for r in ROWS if not args.rows or r.key in args.rows]
    bench = Bench(os.environ["REDIS_URL"], os.environ["BENCH_PG_URL"], Path(os.environ["BENCH_WORKDIR"]))
    try:
        runs = _measure(bench, rows, args.reps, args.scale)
    finally:
        for row in rows:
            bench.create_database(row, drop_only=True)
    rates = {key: statistics.median(m.rate for m in values) for key, values in runs.items()}
    table = _markdown(rates, rows) + "\n\n" + _costs_markdown(runs, rows)
    print(table)
    if not args.rows:  # every row: the comparison is whole (its job counts are in each result)
        measured = time.strftime("%Y-%m-%d %H:%M")
        rounded = {key: [round(m.rate, 1) for m in values] for key, values in runs.items()}
        costs = {
            key: (statistics.median(m.commands for m in values), statistics.median(m.transactions for m in values))
            for key, values in runs.items()
        }
        written = [
            {**r, "measured": measured, "reps": args.reps, "scale": args.scale}
            for r in _results(rates, rounded, costs, args.scale)
        ]
        kept = [r for r in json.loads(RESULTS.read_text()) if not r.get("name", "").startswith("peers ")]
        RESULTS.write_text(json.dumps(kept + written, indent=2) + "\n")
        (ROOT / "bench" / "peers" / "table.md").write_text(table + "\n")
        log(f"written to {RESULTS} and bench/peers/table.md")
    else:
        log("some rows only: bench/results.json left as it was")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
