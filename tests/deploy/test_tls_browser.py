"""The README's deployment, run: collectstatic, then gunicorn started exactly as
deploy/jobsite-web.service starts it (production settings, DEBUG off, TLS with a
certificate the test makes), workers as deploy/jobsite-worker@.service starts them (in
burst mode), and an operator in headless Chromium on https://."""

from __future__ import annotations

import gzip
import re
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings

from tests.browser import launched_chromium
from tests.conftest import ROOT, database_url, wait_for
from tests.deploy.conftest import Certificate, Server
from tests.deploy.units import VENV_BIN, exec_start, unit_env
from tests.redis_servers import free_port
from workers import enqueue
from workers.models import JobRecord, JobStatus

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# ManifestStaticFilesStorage's names: <name>.<12 hex digits of the content's MD5>.<ext>
HASHED = re.compile(r"\.[0-9a-f]{12}\.(css|js|svg)$")


@pytest.fixture(scope="module")
def site(certificate: Certificate, tmp_path_factory: pytest.TempPathFactory, django_db_setup: None) -> Iterator[Server]:
    """collectstatic, then the web unit's gunicorn on the test database and Redis."""
    directory = tmp_path_factory.mktemp("site")
    port = free_port()
    env = unit_env(
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DATABASE_URL=database_url(),
        REDIS_URL=settings.REDIS_URL,
        DJANGO_STATIC_ROOT=str(directory / "static"),
        JOBSITE_WEB_BIND=f"127.0.0.1:{port}",
        JOBSITE_WEB_WORKERS="2",
        JOBSITE_TLS_CERT=str(certificate.cert),
        JOBSITE_TLS_KEY=str(certificate.key),
    )
    collect = subprocess.run(
        [f"{VENV_BIN}/python", "manage.py", "collectstatic", "--noinput"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert collect.returncode == 0, collect.stdout + collect.stderr
    server = Server(exec_start("jobsite-web.service", env), env, port, directory / "gunicorn.log", certificate)
    server.start()
    yield server
    server.stop()


def run_worker_burst(site: Server, instance: str) -> None:
    """deploy/jobsite-worker@<instance>.service's command, until the queues are empty."""
    argv = [*exec_start("jobsite-worker@.service", site.env, instance=instance), "--burst"]
    result = subprocess.run(argv, cwd=ROOT, env=site.env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with launched_chromium() as chromium:
        yield chromium


@pytest.fixture
def page(browser, site: Server):
    """An operator logged in over https://, with every response, console error and CSP
    violation of the visit written down."""
    # The README's step, with production's password hashers (the test settings' differ).
    create = subprocess.run(
        [f"{VENV_BIN}/python", "manage.py", "createsuperuser", "--noinput", "--username", "ops",
         "--email", "ops@example.com"],
        cwd=ROOT, env={**site.env, "DJANGO_SUPERUSER_PASSWORD": "correct horse battery"}, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert create.returncode == 0, create.stdout + create.stderr
    # The certificate is the test's own: Chromium is told to accept it (Python checks it).
    context = browser.new_context(ignore_https_errors=True, base_url=site.base_url)
    context.add_init_script(
        "window.__csp = []; document.addEventListener('securitypolicyviolation',"
        " e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.responses = []
    page.errors = []
    page.on("response", lambda response: page.responses.append((response.url, response.status)))
    page.on("console", lambda message: page.errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: page.errors.append(str(error)))

    page.goto("/dashboard/")
    assert "/login/?next=" in page.url and "/admin/" not in page.url  # staff only: the login page first
    page.fill("#id_username", "ops")
    page.fill("#id_password", "correct horse battery")
    page.click("input[type=submit]")
    expect(page.locator("h1")).to_contain_text("Overview")
    yield page
    context.close()


def test_over_tls_every_static_file_is_served_hashed_and_compressed_with_csp_and_secure_cookies(page, site):
    document = page.goto("/dashboard/")
    assert document is not None and document.status == 200
    assert urlsplit(page.url).scheme == "https"
    csp = dict(d.split(" ", 1) for d in document.headers["content-security-policy"].split("; "))
    assert csp["script-src"] == "'self'" and csp["default-src"] == "'self'"
    assert "max-age=31536000" in document.headers["strict-transport-security"]

    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["sessionid"]["secure"] and cookies["sessionid"]["httpOnly"]
    assert cookies["csrftoken"]["secure"]

    # Every stylesheet, icon and script the page names is a hashed (manifest) name...
    urls = page.evaluate("[...document.querySelectorAll('script[src], link[href]')].map(e => e.src || e.href)")
    static = [u for u in urls if urlsplit(u).path.startswith("/static/")]
    paths = {urlsplit(u).path for u in static}
    assert any(p.startswith("/static/django_htmx/htmx-2") for p in paths), paths
    assert any(p.startswith("/static/dashboard/dashboard.") and p.endswith(".js") for p in paths), paths
    assert any(p.startswith("/static/dashboard/dashboard.") and p.endswith(".css") for p in paths), paths
    for path in paths:
        assert HASHED.search(path), f"{path} is not a hashed name: collectstatic's manifest is not in use"
        # ...that answers 200, compressed, cacheable for good, and is on disk with its .gz.
        answer = site.get(path, {"Accept-Encoding": "gzip"})
        assert answer.status == 200, path
        assert answer.headers["Content-Encoding"] == "gzip", path
        assert "immutable" in answer.headers["Cache-Control"], path
        on_disk = Path(site.env["DJANGO_STATIC_ROOT"]) / path.removeprefix("/static/")
        assert gzip.decompress(answer.body) == on_disk.read_bytes()
        assert on_disk.with_name(on_disk.name + ".gz").is_file()
    # The browser loaded them too (the login page's as well), and nothing failed.
    loaded = {urlsplit(url).path: status for url, status in page.responses}
    assert all(loaded.get(path) == 200 for path in paths), {p: loaded.get(p) for p in paths}
    assert any(p.startswith("/static/dashboard/theme.") and p.endswith(".js") for p in paths), paths
    assert [(url, status) for url, status in page.responses if status >= 400] == []
    assert page.evaluate("typeof window.htmx") == "object"  # htmx ran: not blocked by CSP
    assert page.evaluate("window.__csp") == []
    assert page.errors == []


def _length_cell(page, queue: str):
    return page.locator(f'tr[data-queue="{queue}"] td[data-col="length"]')


def test_over_tls_a_live_panel_updates_and_a_dead_job_is_retried_from_the_browser(page, site):
    # A dead letter: a job whose one attempt fails, run by the worker unit in burst mode.
    job = enqueue("tests.jobfuncs.flaky", "tls", 1, queue="default", max_attempts=1)
    run_worker_burst(site, "1")
    wait_for(lambda: JobRecord.objects.filter(job_id=job.id, status=JobStatus.DEAD).exists(), timeout=30)

    # The overview's queue panel polls through htmx: a new job shows without a reload.
    page.goto("/dashboard/")
    page.evaluate("window.__sameDocument = true")
    expect(_length_cell(page, "low")).to_have_text("0")
    enqueue("tests.jobfuncs.add", 1, 2, queue="low")
    expect(_length_cell(page, "low")).to_have_text("1", timeout=20_000)
    assert page.evaluate("window.__sameDocument") is True

    # Retry: an htmx POST carrying the CSRF token, over the secure session.
    page.goto(f"/dashboard/jobs/{job.id}/")
    expect(page.locator("#job-status")).to_have_text("dead")
    with page.expect_response(lambda r: r.url.endswith(f"/jobs/{job.id}/retry/")) as retried:
        page.locator("#job-live form[action$='/retry/'] button").click()
    assert retried.value.status == 200
    assert retried.value.request.method == "POST"
    assert retried.value.request.headers.get("x-csrftoken")
    expect(page.locator("#job-live .notice")).to_contain_text("Retried")
    # Without the token the same POST is refused, session cookie or not.
    refused = page.context.request.post(f"/dashboard/jobs/{job.id}/retry/", headers={"Referer": site.base_url + "/"})
    assert refused.status == 403

    run_worker_burst(site, "2")
    page.reload()
    expect(page.locator("#job-status")).to_have_text("finished", timeout=20_000)
    expect(page.locator("#errors")).to_contain_text("transient failure 1 of 1")
    assert JobRecord.objects.get(job_id=job.id).attempts == 2
    assert [(url, status) for url, status in page.responses if status >= 400] == []
    assert page.evaluate("window.__csp") == []
