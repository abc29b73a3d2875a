"""The examples' settings (the ``EXAMPLES`` dict), read in one place."""

from __future__ import annotations

from typing import Any

from django.conf import settings


def example_setting(name: str) -> Any:
    return settings.EXAMPLES[name]
