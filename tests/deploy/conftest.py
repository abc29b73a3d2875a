"""Pieces the deployment tests share: a certificate, a redis-server, a gunicorn they own."""

from __future__ import annotations

import http.client
import shutil
import signal
import ssl
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT, wait_for
from tests.redis_servers import OwnRedis


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def client_context(self) -> ssl.SSLContext:
        """Verifies the server for real: this certificate is the only one trusted."""
        return ssl.create_default_context(cafile=str(self.cert))


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1 and localhost, made with the openssl CLI."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is missing: scripts/system-packages.sh --browser installs it")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return Certificate(cert, key)


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


class Server:
    """A process serving HTTP(S) on 127.0.0.1:port (gunicorn here), stopped by the test."""

    def __init__(self, argv: list[str], env: Mapping[str, str], port: int, log: Path, tls: Certificate | None) -> None:
        self.argv, self.env, self.port, self.log, self.tls = argv, dict(env), port, log, tls
        self.base_url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        self.process = subprocess.Popen(
            self.argv, cwd=ROOT, env=self.env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT
        )
        wait_for(self._answers, timeout=60, interval=0.2)
        return self

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"the server exited ({self.process.returncode}):\n{self.log.read_text()[-3000:]}")
        try:
            self.get("/healthz")
        except OSError:
            return False
        return True

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> Answer:
        """One GET, redirects not followed; over TLS the certificate is verified."""
        if self.tls:
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                "127.0.0.1", self.port, timeout=30, context=self.tls.client_context()
            )
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", path, headers={"Host": f"127.0.0.1:{self.port}", **(headers or {})})
            response = conn.getresponse()
            return Answer(response.status, response.headers, response.read())
        finally:
            conn.close()

    def stop(self) -> None:
        # SIGTERM: gunicorn's graceful stop, which also stops its workers.
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path, persist=False)
    server.start()
    yield server
    server.stop()
