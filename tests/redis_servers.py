"""Real redis-server processes a test owns: masters, replicas and sentinels on free ports
of 127.0.0.1, data in memory only, each in the test's own directory, and all stopped when
the test ends (``RedisServers`` is a context manager)."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from redis import Redis

from tests.conftest import wait_for

MASTER_NAME = "jobsite"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OwnRedis:
    """A redis-server of a test's own on a free port, which the test stops and starts again
    on the same port. ``persist`` (the default) keeps its data in an append-only file, so
    that a restart keeps the queues as a production Redis would, and ``stop(wipe=True)``
    throws it away, as a restart without persistence or a fail-over to an empty replica
    does; DEBUG SLEEP is allowed (a server that stops answering)."""

    def __init__(self, workdir: Path, *, persist: bool = True) -> None:
        self.port, self.workdir, self.persist = free_port(), workdir, persist
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        storage = ["--appendonly", "yes", "--appendfsync", "always"] if self.persist else ["--appendonly", "no"]
        self.process = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--bind", "127.0.0.1", "--port", str(self.port),
             "--save", "", *storage, "--dir", str(self.workdir), "--enable-debug-command", "local"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(self._answers, timeout=10)

    def _answers(self) -> bool:
        try:
            return bool(Redis.from_url(self.url, socket_timeout=0.5).ping())
        except Exception:
            return False

    def stop(self, *, wipe: bool = False) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        if wipe:
            shutil.rmtree(self.workdir / "appendonlydir", ignore_errors=True)
            for dump in self.workdir.glob("*.rdb"):
                dump.unlink()

    def client(self) -> Redis:
        return Redis.from_url(self.url)


class RedisProcess:
    def __init__(self, workdir: Path, args: list[str], *, port: int, password: str) -> None:
        self.workdir, self.args, self.port, self.password = workdir, args, port, password
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisProcess:
        self.process = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._answers, timeout=10)
        return self

    def client(self, **kwargs: object) -> Redis:
        return Redis(port=self.port, password=self.password or None, socket_timeout=2, **kwargs)  # type: ignore[arg-type]

    def _answers(self) -> bool:
        try:
            with self.client(socket_connect_timeout=0.5) as client:
                return bool(client.ping())
        except Exception:
            return False

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no last write to anyone."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a stopped process cannot handle SIGTERM
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


class RedisServers:
    """A master with ``replicas`` replicas and ``sentinels`` sentinels watching it as
    ``MASTER_NAME``, all requiring ``password`` (sentinels ``sentinel_password``)."""

    def __init__(
        self,
        workdir: Path,
        *,
        replicas: int = 1,
        sentinels: int = 0,
        password: str = "",
        sentinel_password: str = "",
        down_after_ms: int = 1500,
    ) -> None:
        self.workdir, self.password, self.sentinel_password = workdir, password, sentinel_password
        self.down_after_ms = down_after_ms
        self.master = self._server()
        self.replicas = [self._server(replica_of=self.master.port) for _ in range(replicas)]
        self.sentinels = [self._sentinel(n) for n in range(sentinels)]

    def _server(self, *, replica_of: int | None = None) -> RedisProcess:
        port = free_port()
        args = [shutil.which("redis-server") or "redis-server", "--bind", "127.0.0.1", "--port", str(port),
                "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
                "--repl-diskless-sync-delay", "0"]  # fmt: skip
        if self.password:
            # masterauth too: a master demoted by a fail-over must log in to the new one.
            args += ["--requirepass", self.password, "--masterauth", self.password]
        if replica_of is not None:
            args += ["--replicaof", "127.0.0.1", str(replica_of)]
        return RedisProcess(self.workdir, args, port=port, password=self.password)

    def _sentinel(self, n: int) -> RedisProcess:
        port = free_port()
        config = self.workdir / f"sentinel-{n}.conf"  # a sentinel rewrites its file: one each
        lines = [
            f"port {port}",
            "bind 127.0.0.1",
            f"dir {self.workdir}",
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master.port} 2",
            f"sentinel down-after-milliseconds {MASTER_NAME} {self.down_after_ms}",
            f"sentinel failover-timeout {MASTER_NAME} 10000",
            f"sentinel parallel-syncs {MASTER_NAME} 1",
        ]
        if self.password:
            lines.append(f"sentinel auth-pass {MASTER_NAME} {self.password}")
        if self.sentinel_password:
            lines += [f"requirepass {self.sentinel_password}", f"sentinel sentinel-pass {self.sentinel_password}"]
        config.write_text("\n".join(lines) + "\n")
        args = [shutil.which("redis-server") or "redis-server", str(config), "--sentinel"]
        return RedisProcess(self.workdir, args, port=port, password=self.sentinel_password)

    def __enter__(self) -> RedisServers:
        self.master.start()
        for replica in self.replicas:
            replica.start()
        wait_for(lambda: all(self._link_up(r) for r in self.replicas), timeout=20)
        for sentinel in self.sentinels:
            sentinel.start()
        if self.sentinels:
            # Sentinels find each other and the replicas through the master (every 2 s);
            # until they do, no fail-over could be agreed on.
            wait_for(lambda: all(self._sees_everyone(s) for s in self.sentinels), timeout=30, interval=0.2)
        return self

    def __exit__(self, *exc: object) -> None:
        for process in [*self.sentinels, *self.replicas, self.master]:
            process.stop()

    @staticmethod
    def _link_up(replica: RedisProcess) -> bool:
        return replica.client().info("replication").get("master_link_status") == "up"

    def _sees_everyone(self, sentinel: RedisProcess) -> bool:
        state = sentinel.client().sentinel_master(MASTER_NAME)
        return state["num-other-sentinels"] == len(self.sentinels) - 1 and state["num-slaves"] == len(self.replicas)

    @property
    def sentinel_addresses(self) -> str:
        """As REDIS_SENTINELS wants them: ``127.0.0.1:p1,127.0.0.1:p2,...``."""
        return ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)

    def master_port_by_sentinels(self) -> set[int]:
        """The master's port as each sentinel that answers names it."""
        ports = set()
        for sentinel in self.sentinels:
            try:
                ports.add(int(sentinel.client().sentinel_get_master_addr_by_name(MASTER_NAME)[1]))
            except Exception:
                pass
        return ports

    def freeze_replicas(self) -> None:
        """SIGSTOP the replicas: still linked to the master, but acknowledging nothing."""
        for replica in self.replicas:
            replica.signal(signal.SIGSTOP)

    def partition_replicas(self) -> None:
        """Cut the replicas off the master, as a network partition would: each replica is
        frozen (SIGSTOP) so that it cannot reconnect, and the master drops its link to
        them. From now on the master acknowledges writes no replica will ever have."""
        self.freeze_replicas()
        self.master.client().client_kill_filter(_type="replica")
        time.sleep(0.05)  # the link is gone before the caller's next write

    def heal_replicas(self) -> None:
        for replica in self.replicas:
            replica.signal(signal.SIGCONT)
