"""Functions that schedules may run. Only registered functions can be picked in the admin or
the dashboard: no dotted path typed by an operator can make a worker import arbitrary code."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_SCHEDULABLE: dict[str, Callable[..., Any]] = {}


def dotted_path(func: Callable[..., Any]) -> str:
    return f"{func.__module__}.{func.__qualname__}"


def schedulable(func: F) -> F:
    """Decorator: let schedules run ``func`` (by its dotted path)."""
    _SCHEDULABLE[dotted_path(func)] = func
    return func


def schedulable_functions() -> dict[str, Callable[..., Any]]:
    """Every registered function by dotted path; job modules of installed apps are loaded first."""
    from django.utils.module_loading import autodiscover_modules

    autodiscover_modules("jobs")
    return dict(sorted(_SCHEDULABLE.items()))
