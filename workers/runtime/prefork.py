"""The fork-once worker (``rqworker --prefork``): a work horse forked once runs job after job.

RQ's forking ``Worker`` forks a horse per job, and the fork is most of what a short job
costs. Here the worker keeps everything RQ's worker does (dequeueing, its registration and
heartbeats, RQ's scheduler and maintenance, the companion, the claim fence, warm and cold
shutdown, RQ's horse monitoring with its timeouts), and only where a job runs changes:

- the worker forks a horse (after Django and the job modules it has seen are imported, with
  the fork guard held and its database connections closed) and hands it each job over a
  pipe: the job id, the queue, the execution RQ registered and the attempt's claim;
- the horse makes its own Redis client (workers.redis), fetches the job, runs it through
  RQ's ``perform_job`` exactly as a per-job horse does (events, logs, progress, retries,
  the outcome behind the claim fence) and answers on another pipe when it is done;
- the worker waits for that answer with RQ's ``monitor_work_horse``: this class only
  replaces what "the horse is done" means (an answer on the pipe, or the horse's death).

A horse is replaced after ``horse_max_jobs`` jobs, when its resident memory passed
``horse_max_rss`` MB after a job, after a job whose time ran out (the timeout is raised
inside whatever the job was doing: the horse is not trusted with another job), and when
it dies. A horse that dies mid-job fails that job as RQ's forking worker does ("work-horse
terminated unexpectedly", recorded as ``WorkerDied``, retried by the job's policy); the
next job gets a new horse.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import signal
import time
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from importlib import import_module
from typing import Any, NoReturn

from django.db import connections
from rq.executions import Execution
from rq.job import Job
from rq.timeouts import UnixSignalDeathPenalty
from rq.worker import Worker, WorkerStatus

from ..redis import new_connection
from ..rq.claims import Claim
from ..rq.forkguard import FORK_GUARD
from .worker import TrackingWorker

HORSE_MAX_JOBS = 1000
# How often an idle horse checks that its worker is still there (its pipe may be held
# open by another child of the worker, RQ's scheduler, so it cannot rely on EOF alone).
PARENT_CHECK = 1.0
# While it waits for an answer, the worker also asks the kernel whether the horse died
# this often: a horse whose pipe a job closed or handed to a child still gets noticed.
REAP_CHECK = 1.0
_MAX_MODULES = 1000


class _TimeoutNoted(UnixSignalDeathPenalty):
    """RQ's timeouts (a job's in the horse, the monitoring interval's in the worker), as
    RQ's, except that:

    - a job's timeout that went off is noted: the horse, interrupted wherever its job (or
      a callback) was, is retired after it reported the failure;
    - in the worker, an alarm that goes off while it keeps what it has just read from the
      horse (an answer, a wait status) is raised once that is kept, not in between, where
      it would lose it. Masking SIGALRM cannot do that: the worker has other threads, and
      Python runs a handler in the main thread whichever thread the signal reached.
    """

    went_off = False
    deferring = False
    deferred: _TimeoutNoted | None = None

    def handle_death_penalty(self, signum: int, frame: Any) -> None:
        _TimeoutNoted.went_off = True
        if _TimeoutNoted.deferring:
            _TimeoutNoted.deferred = self
            return
        super().handle_death_penalty(signum, frame)


@contextlib.contextmanager
def _alarm_deferred() -> Iterator[None]:
    """RQ's timeout exception held back until the block is done (see _TimeoutNoted)."""
    _TimeoutNoted.deferring = True
    try:
        yield
    finally:
        _TimeoutNoted.deferring = False
        penalty, _TimeoutNoted.deferred = _TimeoutNoted.deferred, None
        if penalty is not None:
            penalty.handle_death_penalty(signal.SIGALRM, None)


def resident_bytes() -> int:
    """This process's resident memory now (Linux), else its peak."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PreforkHorses(Worker):
    """RQ's forking worker with one long-lived horse: sits under ``TrackingWorker`` (see
    ``PreforkWorker``), whose hooks (claims, outages, cold stop) wrap what is here."""

    horse_max_jobs: int = HORSE_MAX_JOBS
    horse_max_rss: int | None = None  # MB; None: no bound
    death_penalty_class = _TimeoutNoted
    _jobsite_claim: Claim | None
    _jobsite_dropped: Claim | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._prefork_pid = 0
        self._prefork_orders = self._prefork_answers = -1  # the worker's ends of the pipes
        self._prefork_inbox = b""
        self._prefork_eof = False
        self._prefork_reaped: tuple[int, int, Any] | None = None
        self._prefork_unborn: tuple[int, int, Any] | None = None  # how the last failed horse ended
        self._prefork_leaving = False
        self._prefork_served = 0
        self._prefork_modules: dict[str, bool] = {}  # job modules seen -> imported here
        super().__init__(*args, **kwargs)

    # --- the worker's side ---------------------------------------------------------------

    def execute_job(self, job: Job, queue: Any) -> None:
        execution = self.prepare_execution(job)
        self._prefork_hand_over(job, queue, execution)
        self.monitor_work_horse(job, queue, execution)
        if self._prefork_leaving:
            self._prefork_retire()
        self.set_state(WorkerStatus.IDLE)

    def _prefork_hand_over(self, job: Job, queue: Any, execution: Any) -> None:
        claim = getattr(self, "_jobsite_claim", None)  # TrackingMixin takes it before the job runs
        order = {
            "job": job.id,
            "queue": queue.name,
            "execution": [execution.id, execution.created_at.timestamp(), execution.last_heartbeat.timestamp()],
            "claim": asdict(claim) if claim is not None else None,
        }
        line = json.dumps(order).encode() + b"\n"
        self._prefork_leaving = False
        for _ in range(3):
            if self._prefork_pid and self._prefork_poll():
                self.log.warning("Worker %s: its idle work horse died (%s)", self.name, self._prefork_reaped)
                self._prefork_forget()
            if not self._prefork_pid:
                self._prefork_fork(job)
            try:
                os.write(self._prefork_orders, line)
            except BrokenPipeError:  # it died just now: reap it and fork another
                self._prefork_poll(block=True)
                self._prefork_unborn = self._prefork_reaped
                self._prefork_forget()
                continue
            self._horse_pid = self._prefork_pid
            os.environ["RQ_WORKER_ID"] = self.name
            os.environ["RQ_JOB_ID"] = job.id
            return
        # Horses die before they can take a job: as a per-job horse that died before it
        # started the job, which goes back to its queue (wait_for_horse says how it died).
        self.log.error("Worker %s: work horses die before they can take job %s", self.name, job.id)

    def _prefork_import_job_modules(self, job: Job) -> None:
        """Import, here, the modules of the jobs horses ran (and of this one), so that the
        next horse starts with them instead of importing them again."""
        with contextlib.suppress(Exception):  # an unreadable payload fails in the horse
            self._prefork_note_module(job.func_name)
        for module, imported in list(self._prefork_modules.items()):
            if imported:
                continue
            self._prefork_modules[module] = True  # tried once, whatever comes of it
            try:
                import_module(module)
            except Exception as exc:  # the horse reports it with the job that needs it
                self.log.debug("Worker %s: job module %s does not import here: %s", self.name, module, exc)

    def _prefork_note_module(self, func_name: str | None) -> None:
        module = (func_name or "").rpartition(".")[0]
        if module and module not in self._prefork_modules and len(self._prefork_modules) < _MAX_MODULES:
            self._prefork_modules[module] = False

    def _prefork_fork(self, job: Job) -> None:
        self._prefork_import_job_modules(job)
        orders_r, orders_w = os.pipe()
        answers_r, answers_w = os.pipe()
        # The horse opens its own database connections, never shares the worker's, and is
        # not forked while the companion is inside a transaction or an import.
        with FORK_GUARD:
            connections.close_all()
            pid = os.fork()
            if pid == 0:  # the horse never leaves this block (its guard is a fresh one)
                os.close(orders_w)
                os.close(answers_r)
                self._prefork_horse(orders_r, answers_w, os.getppid())
        # Its own process group from the start (the horse does the same): a kill_horse
        # right after the fork must not find it still in the worker's group.
        with contextlib.suppress(OSError):
            os.setpgid(pid, pid)
        os.close(orders_r)
        os.close(answers_w)
        self._prefork_pid, self._prefork_orders, self._prefork_answers = pid, orders_w, answers_r
        self._prefork_inbox, self._prefork_eof, self._prefork_reaped = b"", False, None
        self._prefork_served = 0
        self.log.info("Worker %s: forked work horse %s", self.name, pid)
        self.procline(f"Forked {pid} at {time.time()}")

    def wait_for_horse(self) -> tuple[int | None, int | None, Any]:
        """Until the horse answers that its job is done (as a per-job horse exiting 0 would
        say), or it has died (its wait status). Runs inside RQ's monitoring alarm, which
        may interrupt any wait here; nothing read or reaped is lost to it."""
        pid = self._prefork_pid
        if not pid:
            unborn, self._prefork_unborn = self._prefork_unborn, None
            return unborn or (None, None, None)
        while True:
            answer = self._prefork_answer()
            if answer is not None:
                self._prefork_served += 1
                self._prefork_leaving = bool(answer.get("leaving"))
                self._prefork_note_module(answer.get("func"))
                return pid, os.EX_OK, None
            if self._prefork_poll():
                reaped = self._prefork_reaped or (pid, 1 << 8, None)
                self._prefork_forget()
                return reaped
            if self._prefork_eof:
                time.sleep(0.05)  # closed its pipe: exiting, or exited and not yet waitable
                continue
            ready, _, _ = select.select([self._prefork_answers], [], [], REAP_CHECK)
            if ready:
                with _alarm_deferred():
                    data = os.read(self._prefork_answers, 4096)
                    self._prefork_inbox += data
                    self._prefork_eof = not data

    def _prefork_answer(self) -> dict[str, Any] | None:
        line, found, rest = self._prefork_inbox.partition(b"\n")
        if not found:
            return None
        self._prefork_inbox = rest
        try:
            answer = json.loads(line)
        except ValueError:
            answer = None
        return answer if isinstance(answer, dict) else {}

    def _prefork_poll(self, *, block: bool = False) -> bool:
        """Whether the horse has ended (reaped now or before); keeps its wait status."""
        if self._prefork_reaped is not None:
            return True
        with _alarm_deferred():
            try:
                pid, status, rusage = os.wait4(self._prefork_pid, 0 if block else os.WNOHANG)
            except ChildProcessError:  # reaped by someone else: its status is unknown
                pid, status, rusage = self._prefork_pid, 1 << 8, None
            if pid:
                self._prefork_reaped = (pid, status, rusage)
        return pid != 0

    def _prefork_forget(self) -> None:
        for fd in (self._prefork_orders, self._prefork_answers):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._prefork_pid, self._prefork_orders, self._prefork_answers = 0, -1, -1
        self._prefork_reaped, self._prefork_inbox, self._prefork_eof = None, b"", False

    def _prefork_retire(self, wait: float = 5.0) -> None:
        """Let the horse go (told to exit, and its order pipe closed), killed if it lingers."""
        if not self._prefork_pid:
            return
        pid, served = self._prefork_pid, self._prefork_served
        with contextlib.suppress(OSError):
            # Said, not only closed: a child forked meanwhile (RQ's scheduler, restarted by
            # maintenance) holds a copy of this pipe, and the horse would see no end of it.
            os.write(self._prefork_orders, b'{"exit": true}\n')
        with contextlib.suppress(OSError):
            os.close(self._prefork_orders)
        self._prefork_orders = -1
        deadline = time.monotonic() + wait
        while not self._prefork_poll() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self._prefork_poll():
            self.log.warning("Worker %s: work horse %s did not exit within %s s; killing it", self.name, pid, wait)
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
            self._prefork_poll(block=True)
        self._prefork_forget()
        self.log.info("Worker %s: work horse %s retired after %s job(s)", self.name, pid, served)

    def kill_horse(self, sig: signal.Signals = signal.SIGKILL) -> None:
        if self.horse_pid:
            super().kill_horse(sig)

    def teardown(self) -> None:
        if not self.is_horse:
            self._prefork_retire()
        super().teardown()

    # --- the horse's side ----------------------------------------------------------------

    def _prefork_horse(self, orders: int, answers: int, parent: int) -> NoReturn:
        """The horse's life: job after job until it should go, then exit."""
        code = 0
        try:
            os.setpgrp()  # as RQ's horse: the worker's signals are not its own
            random.seed()
            self.setup_work_horse_signals()
            self._is_horse = True
            self._horse_pid = 0
            # Its own client, never a socket of the worker's (workers/redis.py).
            client = self._set_connection(new_connection())
            self.connection = client
            for queue in self.queues:
                queue.connection = client
            self.procline(f"Horse of {self.name}: idle")
            served, inbox = 0, b""
            while True:
                order, inbox = _next_order(orders, inbox, parent)
                if order is None or order.get("exit"):
                    break
                func = self._prefork_run(order)
                served += 1
                leaving = (
                    _TimeoutNoted.went_off
                    or served >= self.horse_max_jobs
                    or (self.horse_max_rss is not None and resident_bytes() > self.horse_max_rss * 1024 * 1024)
                )
                os.write(answers, json.dumps({"leaving": leaving, "func": func}).encode() + b"\n")
                if leaving:
                    break
                self.procline(f"Horse of {self.name}: idle after {served} job(s)")
        except BaseException:
            # As RQ's horse: anything raised outside the job ends the horse with status 1;
            # its worker fails the job (or puts it back when it never started).
            self.log.exception("Worker %s: work horse %s failed outside its job", self.name, os.getpid())
            code = 1
        os._exit(code)

    def _prefork_run(self, order: dict[str, Any]) -> str | None:
        """Run one job the worker handed over, as a per-job horse would have."""
        _TimeoutNoted.went_off = False
        claim = order.get("claim")
        self._jobsite_claim = Claim(**claim) if claim else None
        self._jobsite_dropped = None
        self.executions.clear()
        os.environ["RQ_JOB_ID"] = order["job"]
        job = self.job_class.fetch(order["job"], connection=self.connection, serializer=self.serializer)
        job.redis_server_version = self.get_redis_server_version()
        queue = next((q for q in self.queues if q.name == order["queue"]), None)
        if queue is None:
            queue = self.queue_class(
                order["queue"],
                connection=self.connection,
                job_class=self.job_class,
                serializer=self.serializer,
                death_penalty_class=self.death_penalty_class,
            )
        execution_id, created, beat = order["execution"]
        execution = Execution(execution_id, job.id, connection=self.connection, worker_name=self.name)
        execution.created_at = datetime.fromtimestamp(created, tz=UTC)
        execution.last_heartbeat = datetime.fromtimestamp(beat, tz=UTC)
        execution._job = job  # type: ignore[attr-defined]
        self.execution = execution
        self.perform_job(job, queue, execution)
        with contextlib.suppress(Exception):
            return job.func_name
        return None


def _next_order(fd: int, inbox: bytes, parent: int) -> tuple[dict[str, Any] | None, bytes]:
    """The next job the worker hands over; None once the worker closed the pipe or is gone."""
    while b"\n" not in inbox:
        if os.getppid() != parent:
            return None, b""  # the worker died: no one is left to hand jobs over
        ready, _, _ = select.select([fd], [], [], PARENT_CHECK)
        if not ready:
            continue
        data = os.read(fd, 65536)
        if not data:
            return None, b""
        inbox += data
    line, _, rest = inbox.partition(b"\n")
    return json.loads(line), rest


class PreforkWorker(TrackingWorker, PreforkHorses):  # type: ignore[misc]
    """The tracking worker on fork-once horses (``rqworker --prefork``)."""

    horse_runs_one_job = False  # its database connections live across jobs, within CONN_MAX_AGE
