"""The example systemd units in deploy/, read the way systemd reads them, so that a test
runs the very command a unit would: its ExecStart with the environment file's variables
and the unit's specifiers expanded, and /opt/jobsite standing for this checkout."""

from __future__ import annotations

import os
import re
import shlex
import socket
import sys
from pathlib import Path

from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"
ENV_EXAMPLE = DEPLOY / "jobsite.env.example"
UNITS = ["jobsite-web.service", "jobsite-worker@.service", "jobsite-recorder.service", "jobsite-scheduler.service"]
INSTALL_DIR = "/opt/jobsite"  # where the README installs the checkout
ENVIRONMENT_FILE = "/etc/jobsite/jobsite.env"
# The virtualenv the tests run in plays the part of /opt/jobsite/.venv (not resolved: a
# venv's python is a symlink, and resolving it would leave the venv).
VENV_BIN = str(Path(sys.executable).parent)


def unit_sections(name: str) -> dict[str, list[tuple[str, str]]]:
    """``{"Service": [("ExecStart", "..."), ...], ...}``; keys may repeat, as in systemd."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for raw in (DEPLOY / name).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"{name}: {line!r} before any [Section]"
        key, _, value = line.partition("=")
        current.append((key.strip(), value.strip()))
    return sections


def unit_value(name: str, section: str, key: str) -> str:
    values = [v for k, v in unit_sections(name).get(section, []) if k == key]
    assert len(values) == 1, f"{name}: expected one {key}= in [{section}], found {values}"
    return values[0]


def env_file(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """An EnvironmentFile's assignments (KEY=VALUE lines; comments and blanks skipped)."""
    env: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z_][A-Z0-9_]*", key), f"{path.name}: not KEY=VALUE: {line!r}"
        env[key] = value
    return env


def unit_env(**overrides: str) -> dict[str, str]:
    """What a unit's process gets: the example environment file with this test's values
    (its own database, Redis, secret, ports...). The test run's own DJANGO_*/JOBSITE_*
    variables are left out, so nothing but the file decides the settings."""
    example = env_file()
    missing = set(overrides) - set(example)
    assert not missing, f"{ENV_EXAMPLE.name} does not set {sorted(missing)}: the README's steps would miss them"
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "JOBSITE_")) and k not in ("DATABASE_URL", "REDIS_URL")
    }
    return {**inherited, **example, **overrides}


def _specifiers(text: str, instance: str) -> str:
    table = {"%H": socket.gethostname(), "%i": instance, "%%": "%"}
    return re.sub(r"%[A-Za-z%]", lambda m: table[m.group(0)], text)


def exec_start(name: str, env: dict[str, str], *, instance: str = "1") -> list[str]:
    """The unit's ExecStart as argv, expanded as systemd does: ``${VAR}`` inside a word,
    a bare ``$VAR`` word split on whitespace, ``%H`` / ``%i``; /opt/jobsite -> this checkout."""
    assert unit_value(name, "Service", "WorkingDirectory") == INSTALL_DIR
    assert unit_value(name, "Service", "EnvironmentFile") == ENVIRONMENT_FILE
    argv: list[str] = []
    for word in shlex.split(_specifiers(unit_value(name, "Service", "ExecStart"), instance)):
        bare = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if bare:
            argv += env.get(bare.group(1), "").split()
            continue
        word = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env[m.group(1)], word)
        argv.append(word.replace(f"{INSTALL_DIR}/.venv/bin/", f"{VENV_BIN}/"))
    return argv


def referenced_variables(name: str) -> set[str]:
    """Every ``${VAR}`` / ``$VAR`` a unit's Exec lines use."""
    found: set[str] = set()
    for key, value in unit_sections(name).get("Service", []):
        if key.startswith("Exec"):
            found |= set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", value))
    return found - {"MAINPID"}
