"""How long-running engine work reports progress.

The engine never touches the terminal.  Long work takes a ``progress`` callable and calls
``progress(stage, done, total)`` (``total`` may be None when unknown); the front door turns
these calls into progress bars.  :func:`null_progress` is the silent default.
"""
from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str, int, "int | None"], None]


def null_progress(stage: str, done: int, total: int | None) -> None:
    """Ignore progress reports."""
