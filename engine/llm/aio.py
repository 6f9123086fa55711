"""asyncio helpers for LLM work."""
from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator


def _first_leaf(group: BaseExceptionGroup) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


@contextlib.asynccontextmanager
async def first_error() -> AsyncIterator[None]:
    """Re-raise the first error of an ``asyncio.TaskGroup`` as itself (not as an
    ``ExceptionGroup``), so that a one-line :class:`SaegoldError` stays one line."""
    try:
        yield
    except BaseExceptionGroup as group:
        raise _first_leaf(group) from None
