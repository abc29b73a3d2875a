"""jobsite's producer API: ``from workers import enqueue, progress``."""

from typing import Any


def enqueue(func: Any, *args: Any, **kwargs: Any) -> Any:
    """Enqueue ``func`` (a callable or its dotted path); see ``workers.api.enqueue``."""
    from .api import enqueue as _enqueue

    return _enqueue(func, *args, **kwargs)


def progress(done: float, total: float, message: str | None = None) -> None:
    """Report how far the running job is; see ``workers.api.progress``."""
    from .api import progress as _progress

    _progress(done, total, message)


__all__ = ["enqueue", "progress"]
