"""deploy/'s systemd units are valid for systemd, name commands and options that exist,
and use only variables the example environment file sets. (The web and worker units'
commands are also run for real: tests/deploy/test_tls_browser.py.)"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from django.core.management import get_commands, load_command_class
from gunicorn.config import Config

from tests.deploy.units import (
    ENV_EXAMPLE,
    INSTALL_DIR,
    UNITS,
    VENV_BIN,
    env_file,
    exec_start,
    referenced_variables,
    unit_sections,
    unit_value,
)


def test_deploy_holds_the_four_units_the_readme_installs():
    assert sorted(p.name for p in (ENV_EXAMPLE.parent).glob("*.service")) == sorted(UNITS)


@pytest.mark.parametrize("unit", UNITS)
def test_a_unit_runs_as_jobsite_from_the_shared_environment_file_and_restarts(unit):
    sections = unit_sections(unit)

    assert {"Unit", "Service", "Install"} <= set(sections)
    assert unit_value(unit, "Service", "User") == "jobsite"
    assert unit_value(unit, "Service", "Restart") == "always"
    assert unit_value(unit, "Install", "WantedBy") == "multi-user.target"
    assert referenced_variables(unit) <= set(env_file()), f"{unit} uses a variable {ENV_EXAMPLE.name} does not set"


def test_the_example_environment_selects_production_settings():
    env = env_file()

    assert env["DJANGO_SETTINGS_MODULE"] == "jobsite.settings.production"
    assert {"DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL", "DJANGO_ALLOWED_HOSTS"} <= set(env)


@pytest.mark.parametrize(
    ("unit", "command"),
    [
        ("jobsite-worker@.service", "rqworker"),
        ("jobsite-recorder.service", "record_events"),
        ("jobsite-scheduler.service", "run_scheduler"),
    ],
)
def test_a_management_unit_names_a_command_and_options_that_exist(unit, command):
    argv = exec_start(unit, env_file(), instance="7")

    assert argv[:3] == [f"{VENV_BIN}/python", "manage.py", command]
    app = get_commands()[command]
    options = load_command_class(app, command).create_parser("manage.py", command).parse_args(argv[3:])
    if command == "rqworker":
        assert options.name.endswith("-7")  # unique per instance: %H-%i


def test_the_web_unit_runs_gunicorn_on_the_wsgi_app_with_tls():
    env = env_file()
    argv = exec_start("jobsite-web.service", env)

    assert argv[0] == f"{VENV_BIN}/gunicorn"
    parsed = Config(prog="gunicorn").parser().parse_args(argv[1:])  # gunicorn's own option parser
    assert parsed.args == ["jobsite.wsgi"]
    assert (parsed.certfile, parsed.keyfile) == (env["JOBSITE_TLS_CERT"], env["JOBSITE_TLS_KEY"])
    assert parsed.bind == [env["JOBSITE_WEB_BIND"]]


def test_systemd_analyze_verify_accepts_every_unit(tmp_path: Path):
    """systemd's own check, on copies pointing at this checkout (it wants ExecStart's
    program and the EnvironmentFile to exist); any warning fails too."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is missing: scripts/system-packages.sh --browser installs Debian's systemd")
    root = str(ENV_EXAMPLE.parent.parent)
    for unit in UNITS:
        text = (ENV_EXAMPLE.parent / unit).read_text()
        text = text.replace(f"{INSTALL_DIR}/.venv/bin/", f"{VENV_BIN}/").replace(INSTALL_DIR, root)
        text = text.replace("/etc/jobsite/jobsite.env", str(ENV_EXAMPLE))
        (tmp_path / unit.replace("@.", "@1.")).write_text(text)

    result = subprocess.run(
        [analyze, "verify", *sorted(str(p) for p in tmp_path.glob("*.service"))],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == ""
