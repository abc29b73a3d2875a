"""/readyz tells a load balancer whether to send a web process traffic, /healthz whether
the database and Redis answer. Checked on gunicorn started as deploy/jobsite-web.service
starts it (production settings, TLS), with a Redis the test stops and a database that
is not there or not migrated yet."""

from __future__ import annotations

import json
import secrets
import subprocess
from pathlib import Path

import pytest
from django.conf import settings

from tests.conftest import ROOT, wait_for
from tests.deploy.conftest import Certificate, Server
from tests.deploy.units import VENV_BIN, exec_start, unit_env
from tests.redis_servers import OwnRedis, free_port

pytestmark = pytest.mark.slow


def _web(certificate: Certificate, tmp_path: Path, *, database_url: str, redis_url: str) -> Server:
    port = free_port()
    env = unit_env(
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        DJANGO_STATIC_ROOT=str(tmp_path / "static"),
        JOBSITE_WEB_BIND=f"127.0.0.1:{port}",
        JOBSITE_WEB_WORKERS="1",
        JOBSITE_TLS_CERT=str(certificate.cert),
        JOBSITE_TLS_KEY=str(certificate.key),
    )
    return Server(exec_start("jobsite-web.service", env), env, port, tmp_path / "gunicorn.log", certificate)


def _checks(server: Server, path: str) -> tuple[int, dict[str, str]]:
    answer = server.get(path)
    return answer.status, json.loads(answer.body)


@pytest.mark.django_db
def test_readyz_answers_ready_when_database_redis_and_migrations_are(client):
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "redis": "ok", "migrations": "ok"}


def test_readyz_waits_for_migrate_and_for_redis_while_healthz_only_asks_if_they_answer(
    certificate, own_redis: OwnRedis, tmp_path
):
    database = tmp_path / "fresh.sqlite3"  # a new release's database before `migrate`
    server = _web(certificate, tmp_path, database_url=f"sqlite:///{database}", redis_url=own_redis.url).start()
    try:
        status, checks = _checks(server, "/readyz")
        assert status == 503, checks
        assert checks["database"] == "ok" and checks["redis"] == "ok"
        assert checks["migrations"].endswith(" unapplied") and int(checks["migrations"].split()[0]) > 0
        assert _checks(server, "/healthz") == (200, {"status": "ok", "database": "ok", "redis": "ok"})

        migrate = subprocess.run(
            [f"{VENV_BIN}/python", "manage.py", "migrate", "--noinput"],
            cwd=ROOT, env=server.env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert migrate.returncode == 0, migrate.stdout + migrate.stderr
        assert _checks(server, "/readyz") == (
            200,
            {"status": "ok", "database": "ok", "redis": "ok", "migrations": "ok"},
        )

        own_redis.stop()
        status, checks = _checks(server, "/readyz")
        assert status == 503
        assert checks == {
            "status": "error",
            "database": "ok",
            "redis": "error: ConnectionError",
            "migrations": "ok",
        }
        assert _checks(server, "/healthz")[0] == 503

        own_redis.start()  # the same port: the process finds Redis again by itself
        wait_for(lambda: server.get("/readyz").status == 200, timeout=30, interval=0.3)
    finally:
        server.stop()


def test_readyz_and_healthz_answer_503_while_the_database_is_unreachable(certificate, tmp_path):
    nothing_listens = f"postgres://jobsite@127.0.0.1:{free_port()}/jobsite"
    server = _web(certificate, tmp_path, database_url=nothing_listens, redis_url=settings.REDIS_URL).start()
    try:
        status, checks = _checks(server, "/readyz")
        assert status == 503
        assert checks == {
            "status": "error",
            "database": "error: OperationalError",
            "redis": "ok",
            "migrations": "not checked: no database",
        }
        assert _checks(server, "/healthz") == (
            503,
            {"status": "error", "database": "error: OperationalError", "redis": "ok"},
        )
    finally:
        server.stop()
