"""Debian's Chromium for the browser tests: where it is, how it is started, one launcher."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright import sync_api as playwright_api

CHROMIUM = "/usr/bin/chromium"
# Headless, as root, with no connection of its own to anywhere (this machine's network is closed).
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]  # fmt: skip


@contextmanager
def launched_chromium() -> Iterator[object]:
    """Chromium through Playwright's sync API, for a module's tests to share."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/system-packages.sh --browser installs it")
    # Playwright's sync API runs an event loop in this thread; Django's ORM, used by the
    # test itself between browser steps, must be allowed to run here while it does.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with playwright_api.sync_playwright() as pw:
            chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous
