"""jobsite's settings (the ``JOBSITE`` dict), read in one place with a type checkers accept."""

from __future__ import annotations

from typing import Any

from django.conf import settings


def setting(name: str, default: Any = None) -> Any:
    return settings.JOBSITE.get(name, default)
