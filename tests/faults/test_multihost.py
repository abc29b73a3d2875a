"""Several hosts: network namespaces joined by a bridge, as machines on one network.

A "data" host runs Redis, a delaying TCP proxy in front of it and a PostgreSQL cluster of
the test's own (initdb into a temporary folder); three worker hosts each run `manage.py
rqworker --no-recorder` (tracking workers with RQ's scheduler), and the third also
`manage.py record_events`. Every process reaches Redis through the proxy, which forwards
at once until the test turns its delay on. Settings: jobsite.settings.test
(WORKER_ALIVE_TTL 3 s, WATCHDOG_INTERVAL 1 s, MAINTENANCE_INTERVAL 2 s).

(a) The host whose worker runs a 4 s job is cut off (`ip link set ... down`) for 8 s: the
    job is failed as WorkerDied and retried elsewhere; back, the cut-off worker's late
    outcome of attempt 1 is dropped (claim fence), it notices it was presumed dead,
    registers again and takes jobs again.
(b) 200 ms latency each way between every process and Redis: every job recorded once,
    finished, executions == attempts.
(c) The data host's link goes down for 10 s while jobs run: nothing lost, nothing run or
    recorded twice, every worker still up.

Each phase prints its jobs, executions, attempts and outcomes. The jobs count their
executions in files on the disk the hosts share: a count kept in Redis would cross the
links the test cuts, and a job whose count met the cut would fail for the test's sake.
Root and iproute2 are needed (skipped otherwise); the test brings its own PostgreSQL, so
scripts/test.sh runs it in its SQLite pass only (``-m "not multihost"`` in the PostgreSQL pass).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from django.conf import settings as django_settings
from redis import Redis

from tests.conftest import ROOT, wait_for
from workers import enqueue
from workers.redis import ALIVE_KEY, connection_reset

# enqueue() pushes on commit: no test transaction around it.
pytestmark = [pytest.mark.multihost, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PRESUMED = "presumed dead by the other workers"
REJOINED = "registered again after being presumed dead"
DROPPED = "dropped its late outcome of job"
CUT_A = 8.0  # at least: > WORKER_ALIVE_TTL (3 s) + WATCHDOG_INTERVAL (1 s) + the retry's start
CUT_C = 10.0
DELAY_B = 0.2


def _run(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60, **kwargs)


def _initdb() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


class Hosts:
    """Namespaces on a bridge of their own, addresses on a private /24, named per run."""

    def __init__(self, workdir: Path) -> None:
        pid = os.getpid()
        self.tag = str(pid)[-6:]
        self.subnet = f"10.{200 + pid % 50}.{pid // 50 % 250}"
        self.bridge = f"jsb{self.tag}"
        self.workdir = workdir
        self.namespaces: dict[str, str] = {}
        self.links: dict[str, str] = {}
        self.addresses: dict[str, str] = {}
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: dict[str, Path] = {}

    def _ip(self, *args: str) -> None:
        done = _run("ip", *args)
        if done.returncode:
            raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")

    def make(self, names: list[str]) -> None:
        self._ip("link", "add", self.bridge, "type", "bridge")
        self._ip("addr", "add", f"{self.subnet}.1/24", "dev", self.bridge)
        self._ip("link", "set", self.bridge, "up")
        for n, name in enumerate(names, start=2):
            ns, outside, inside = f"js{self.tag}-{name}", f"js{self.tag}h{n}", f"js{self.tag}p{n}"
            self._ip("netns", "add", ns)
            self.namespaces[name] = ns
            self._ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            self.links[name] = outside
            self._ip("link", "set", inside, "netns", ns)
            self._ip("link", "set", outside, "master", self.bridge)
            self._ip("link", "set", outside, "up")
            self._ip("-n", ns, "addr", "add", f"{self.subnet}.{n}/24", "dev", inside)
            self._ip("-n", ns, "link", "set", inside, "up")
            self._ip("-n", ns, "link", "set", "lo", "up")
            self.addresses[name] = f"{self.subnet}.{n}"

    def cut(self, name: str) -> None:
        self._ip("link", "set", self.links[name], "down")

    def heal(self, name: str) -> None:
        self._ip("link", "set", self.links[name], "up")

    def spawn(self, host: str, label: str, args: list[str], *, env: dict[str, str] | None = None) -> Path:
        log = self.workdir / f"{label}.log"
        self.processes.append(
            subprocess.Popen(
                ["ip", "netns", "exec", self.namespaces[host], *args],
                cwd=ROOT,
                env=env,
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        )
        self.logs[label] = log
        return log

    def close(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in self.processes:
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                process.kill()
        for ns in self.namespaces.values():
            # Whatever is left in our namespaces is ours (work horses, RQ's schedulers).
            pids = _run("ip", "netns", "pids", ns).stdout.split()
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(int(pid), signal.SIGKILL)
            _run("ip", "netns", "del", ns)
        _run("ip", "link", "del", self.bridge)


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    if os.geteuid() != 0:
        pytest.skip("multi-host test: network namespaces (ip netns) need root")
    if shutil.which("ip") is None:
        pytest.skip("multi-host test: `ip` is missing (Debian's iproute2; scripts/system-packages.sh installs it)")
    if _initdb() is None:
        pytest.skip("multi-host test: no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb)")
    workdir = Path(tempfile.mkdtemp(prefix="jobsite-multihost-"))
    workdir.chmod(0o755)  # the postgres user reads its cluster's folder in here
    made = Hosts(workdir)
    try:
        try:
            made.make(["data", "w1", "w2", "w3"])
        except RuntimeError as exc:
            pytest.skip(f"multi-host test: network namespaces cannot be made here ({exc})")
        yield made
    finally:
        made.close()
        if os.environ.get("JOBSITE_MULTIHOST_KEEP"):  # the processes' logs, to see what went wrong
            print(f"multi-host test: logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _as_postgres(*args: str) -> list[str]:
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", *args]


def _start_data_host(hosts: Hosts) -> tuple[str, str, str]:
    """Redis, the delaying proxy and PostgreSQL on the data host; returns the Redis URL
    straight, the Redis URL through the proxy, and the database URL."""
    address = hosts.addresses["data"]
    (hosts.workdir / "redis").mkdir()
    redis_server = shutil.which("redis-server") or "redis-server"
    hosts.spawn("data", "redis", [redis_server, "--bind", address, "--port", "6379", "--save", "", "--appendonly",
                                  "no", "--protected-mode", "no", "--dir", str(hosts.workdir / "redis")])  # fmt: skip
    hosts.spawn("data", "proxy", [sys.executable, "tests/faults/delay_proxy.py", f"{address}:6380", f"{address}:6379",
                                  str(DELAY_B), str(hosts.workdir / "delay-on")])  # fmt: skip
    pg_bin, cluster = _initdb(), hosts.workdir / "pg"
    assert pg_bin is not None
    cluster.mkdir()
    shutil.chown(cluster, "postgres", "postgres")
    initdb = _run(*_as_postgres(str(pg_bin / "initdb"), "-D", str(cluster / "data"), "--auth=trust", "-U", "postgres",
                                "--no-sync", "--encoding=UTF8"))  # fmt: skip
    assert initdb.returncode == 0, initdb.stdout + initdb.stderr
    with (cluster / "data" / "pg_hba.conf").open("a") as hba:  # the hosts' network, as a private LAN
        hba.write(f"host all all {hosts.subnet}.0/24 trust\n")
    hosts.spawn("data", "postgres", _as_postgres(
        str(pg_bin / "postgres"), "-D", str(cluster / "data"), "-p", "5432", "-c", f"listen_addresses={address}",
        "-c", f"unix_socket_directories={cluster}", "-c", "fsync=off", "-c", "synchronous_commit=off",
        "-c", "full_page_writes=off", "-c", "max_connections=100",
    ))  # fmt: skip
    wait_for(lambda: _answers(Redis.from_url(f"redis://{address}:6380/0", socket_timeout=1).ping), timeout=30)
    admin = f"host={address} port=5432 user=postgres dbname=postgres"
    wait_for(lambda: _answers(lambda: psycopg.connect(admin, connect_timeout=2).close()), timeout=60, interval=0.3)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("CREATE DATABASE jobsite")
    return (
        f"redis://{address}:6379/0",
        f"redis://{address}:6380/0",
        f"postgres://postgres@{address}:5432/jobsite",
    )


def _answers(call: Callable[[], object]) -> bool:
    try:
        call()
        return True
    except Exception:
        return False


def _env(redis_url: str, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "JOBSITE_TEST"))}
    return {**env, "DJANGO_SETTINGS_MODULE": "jobsite.settings.test", "DATABASE_URL": database_url,
            "REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1"}  # fmt: skip


class Books:
    """What the data host says (RQ's job hashes, the records in the test's PostgreSQL) and
    the executions the jobs counted on the hosts' shared disk."""

    def __init__(self, redis: Redis, database_url: str, runs_dir: Path) -> None:
        self.redis, self.database_url, self.runs_dir = redis, database_url, runs_dir

    def job(self, job_id: str) -> tuple[str, str]:
        status, worker = self.redis.hmget(f"rq:job:{job_id}", "status", "worker_name")
        return (status or b"").decode(), (worker or b"").decode()

    def runs(self, name: str) -> int:
        try:
            return len((self.runs_dir / name).read_text().splitlines())
        except FileNotFoundError:
            return 0

    def records(self, ids: list[str]) -> dict[str, tuple[str, int, str, list[tuple[int, str]]]]:
        """job id -> (status, attempts, worker, [(attempt, exception type) of each error])."""
        with psycopg.connect(self.database_url, connect_timeout=3) as conn:
            rows = conn.execute(
                "SELECT r.job_id, r.status, r.attempts, r.worker, e.attempt, e.exc_type FROM workers_jobrecord r"
                " LEFT JOIN workers_joberror e ON e.job_id = r.id WHERE r.job_id = ANY(%s) ORDER BY e.attempt",
                [ids],
            ).fetchall()
        found: dict[str, tuple[str, int, str, list[tuple[int, str]]]] = {}
        for job_id, status, attempts, worker, attempt, exc_type in rows:
            errors = found.get(job_id, (status, attempts, worker, []))[3]
            if attempt is not None:
                errors.append((attempt, exc_type))
            found[job_id] = (status, attempts, worker, errors)
        return found

    def all_finished(self, ids: list[str]) -> bool:
        try:
            found = self.records(ids)
        except psycopg.OperationalError:
            return False
        return len(found) == len(ids) and all(row[0] == "finished" for row in found.values())


def _mentions(log: Path, text: str) -> int:
    return log.read_text(errors="replace").count(text)


def _load(
    runs_dir: Path, prefix: str, *, quick: int, slow: int, flaky: int, slow_s: float = 1.5
) -> dict[str, tuple[str, int]]:
    """Enqueue a mix; returns job id -> (counter name, executions expected)."""
    jobs: dict[str, tuple[str, int]] = {}
    for kind, count, seconds, fails in (("q", quick, 0.1, 0), ("s", slow, slow_s, 0), ("f", flaky, 0.2, 1)):
        for n in range(count):
            name = f"{prefix}-{kind}{n}"
            job = enqueue("tests.jobfuncs.run_counted", str(runs_dir), name, seconds, fails, max_attempts=3)
            jobs[job.id] = (name, 1 + fails)
    return jobs


def _check_phase(books: Books, jobs: dict[str, tuple[str, int]], label: str, say: Callable[[str], None]) -> None:
    """Every job recorded once, finished, with as many attempts as it ran and one error per
    failed attempt (only the flaky jobs' own); prints the counts."""
    records = books.records(list(jobs))
    executions = {job_id: books.runs(name) for job_id, (name, _expected) in jobs.items()}
    statuses = Counter(row[0] for row in records.values())
    errors = Counter(exc for row in records.values() for _a, exc in row[3])
    say(
        f"({label}) jobs {len(jobs)}, records {len(records)}, executions {sum(executions.values())} "
        f"(expected {sum(e for _n, e in jobs.values())}), attempts {sum(r[1] for r in records.values())}, "
        f"outcomes {dict(statuses)}, errors {dict(errors)}"
    )
    assert len(records) == len(jobs), f"{label}: records missing"
    for job_id, (name, expected) in jobs.items():
        status, attempts, _worker, errs = records[job_id]
        ran = executions[job_id]
        assert (status, attempts, ran) == ("finished", expected, expected), (label, name, ran, records[job_id])
        assert [a for a, _e in errs] == list(range(1, expected)), (label, name, errs)


NOTABLE = ("Work-horse", "failed outside the job", "worker died", PRESUMED, REJOINED, DROPPED, "abandoning",
           "Redis is unavailable", "Error", "error")  # fmt: skip


def test_workers_on_three_hosts_ride_out_partitions(hosts: Hosts, settings, monkeypatch, capsys):
    try:
        _phases(hosts, settings, monkeypatch, capsys)
    except BaseException:
        # What the processes said that matters, since their logs go with the hosts.
        for label, log in hosts.logs.items():
            lines = log.read_text(errors="replace").splitlines()
            notable = [line for line in lines if any(word in line for word in NOTABLE)]
            print(f"--- {label}: {len(lines)} lines, notable:\n" + "\n".join(notable[-40:]), file=sys.stderr)
        raise


def _phases(hosts: Hosts, settings, monkeypatch, capsys) -> None:
    direct_url, proxied_url, database_url = _start_data_host(hosts)
    migrate = _run(sys.executable, "manage.py", "migrate", "--noinput", cwd=ROOT, env=_env(direct_url, database_url))
    assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]
    # This process enqueues straight to the data host's Redis (the producers' side).
    settings.REDIS_URL = direct_url
    for name in django_settings.RQ_QUEUES:
        monkeypatch.setitem(django_settings.RQ_QUEUES[name], "URL", direct_url)
    connection_reset()

    env = _env(proxied_url, database_url)
    names = {f"w{n}": f"mh{hosts.tag}-w{n}" for n in (1, 2, 3)}
    rqworker = [sys.executable, "manage.py", "rqworker", "--no-recorder", "--name"]
    logs = {host: hosts.spawn(host, name, [*rqworker, name], env=env) for host, name in names.items()}
    hosts.spawn("w3", "recorder", [sys.executable, "manage.py", "record_events"], env=env)
    redis = Redis.from_url(direct_url, socket_timeout=5)
    runs_dir = hosts.workdir / "runs"  # the hosts share a disk: the count crosses no cut link
    runs_dir.mkdir()
    books = Books(redis, database_url, runs_dir)
    wait_for(lambda: all(redis.exists(ALIVE_KEY.format(n)) for n in names.values()), timeout=90, interval=0.3)

    def say(line: str) -> None:
        with capsys.disabled():
            print(f"\nmulti-host {line}", flush=True)

    # --- (a) a worker host cut off mid-job for longer than WORKER_ALIVE_TTL ----------------
    warm = _load(runs_dir, "warm", quick=3, slow=0, flaky=0)
    wait_for(lambda: books.all_finished(list(warm)), timeout=90, interval=0.3)
    victim = enqueue("tests.jobfuncs.run_counted", str(runs_dir), "victim", 4.0, max_attempts=3)
    wait_for(lambda: books.job(victim.id)[0] == "started" and books.runs("victim") == 1, timeout=30, interval=0.05)
    cut_worker = books.job(victim.id)[1]
    cut_host = next(host for host, name in names.items() if name == cut_worker)
    cut_at = time.monotonic()
    hosts.cut(cut_host)
    declared_dead_after = retried_after = None
    # Down for longer than WORKER_ALIVE_TTL, and until attempt 2 has started elsewhere.
    while time.monotonic() - cut_at < CUT_A or retried_after is None:
        assert time.monotonic() - cut_at < 60, f"not retried elsewhere within 60 s: {books.job(victim.id)}"
        status, worker = books.job(victim.id)
        moment = time.monotonic() - cut_at
        if declared_dead_after is None and (status != "started" or worker != cut_worker):
            declared_dead_after = moment
        if retried_after is None and status in ("started", "finished") and worker not in ("", cut_worker):
            retried_after = moment
        time.sleep(0.05)
    assert declared_dead_after is not None and retried_after is not None, books.job(victim.id)
    hosts.heal(cut_host)
    healed_at = time.monotonic()
    cut_for = healed_at - cut_at
    cut_log = logs[cut_host]
    wait_for(lambda: _mentions(cut_log, PRESUMED), timeout=60, interval=0.1)
    noticed_after = time.monotonic() - healed_at
    wait_for(lambda: _mentions(cut_log, REJOINED), timeout=60, interval=0.1)
    rejoined_after = time.monotonic() - healed_at
    wait_for(lambda: books.all_finished([victim.id]), timeout=60, interval=0.3)
    status, attempts, worker, errors = books.records([victim.id])[victim.id]
    # The newer attempt's record and RQ hash stand: the late attempt 1 changed neither.
    assert (status, attempts, errors) == ("finished", 2, [(1, "WorkerDied")])
    assert worker not in ("", cut_worker)
    assert books.job(victim.id) == ("finished", worker)
    assert books.runs("victim") == 2
    wait_for(lambda: _mentions(cut_log, f"{DROPPED} {victim.id} attempt 1"), timeout=60, interval=0.2)
    assert _mentions(cut_log, DROPPED) == 1
    # ... and the cut-off worker goes on taking jobs.
    after = _load(runs_dir, "after-a", quick=0, slow=9, flaky=0, slow_s=0.5)
    wait_for(lambda: books.all_finished(list(after)), timeout=120, interval=0.3)
    takers = Counter(row[2] for row in books.records(list(after)).values())
    assert takers[cut_worker] >= 1, takers
    say(
        f"(a) {cut_host} ({cut_worker}) cut off {cut_for:.1f} s mid-job: job declared dead-worker after "
        f"{declared_dead_after:.1f} s, attempt 2 started on {worker} after {retried_after:.1f} s; link back: the "
        f"cut-off worker noticed after {noticed_after:.1f} s, registered again after {rejoined_after:.1f} s, "
        f"dropped its late outcome ({_mentions(cut_log, DROPPED)} line), then ran {takers[cut_worker]} of "
        f"{len(after)} jobs; victim: executions {books.runs('victim')}, record {status}/{attempts} attempts by {worker}"
    )
    _check_phase(books, {**warm, **after}, "a, other jobs", say)

    # --- (b) 200 ms between every process and Redis ------------------------------------------
    took = {}
    for label, delay in (("b0", False), ("b", True)):  # the same load without, then with the delay
        if delay:
            (hosts.workdir / "delay-on").touch()
        started = time.monotonic()
        delayed = _load(runs_dir, label, quick=3, slow=0, flaky=1)
        wait_for(lambda: books.all_finished(list(delayed)), timeout=300, interval=0.5)  # noqa: B023
        took[label] = time.monotonic() - started
        _check_phase(books, delayed, label, say)
    (hosts.workdir / "delay-on").unlink()
    say(f"(b) {DELAY_B * 1000:.0f} ms each way: {len(delayed)} jobs in {took['b']:.1f} s "
        f"({len(delayed) / took['b']:.2f} jobs/s); without the delay {took['b0']:.1f} s")  # fmt: skip

    # --- (c) the data host's network down for 10 s while jobs run ----------------------------
    presumed_before = {host: _mentions(log, PRESUMED) for host, log in logs.items()}
    waited_before = {host: _mentions(log, "Redis is unavailable") for host, log in logs.items()}
    during = _load(runs_dir, "c", quick=3, slow=6, flaky=3)
    wait_for(lambda: sum(books.runs(name) for name, _e in during.values()) >= 3, timeout=60, interval=0.05)
    ran_before = sum(books.runs(name) for name, _e in during.values())
    hosts.cut("data")
    time.sleep(CUT_C)
    hosts.heal("data")
    healed_at = time.monotonic()
    wait_for(lambda: books.all_finished(list(during)), timeout=180, interval=0.3)
    caught_up = time.monotonic() - healed_at
    _check_phase(books, during, "c", say)
    assert all(p.poll() is None for p in hosts.processes), "a process exited"
    wait_for(lambda: all(redis.exists(ALIVE_KEY.format(n)) for n in names.values()), timeout=30)
    presumed = {host: _mentions(log, PRESUMED) - presumed_before[host] for host, log in logs.items()}
    waited = {host: _mentions(log, "Redis is unavailable") - waited_before[host] for host, log in logs.items()}
    say(
        f"(c) data host cut {CUT_C:.0f} s with {ran_before} executions begun: every record finished "
        f"{caught_up:.1f} s after the link came back; workers that logged Redis unavailable: "
        f"{sum(1 for n in waited.values() if n)} of 3; workers that re-registered (liveness key expired): "
        f"{sum(1 for n in presumed.values() if n)} of 3; no job declared dead-worker"
    )
