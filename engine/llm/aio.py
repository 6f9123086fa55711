"""asyncio helpers for LLM work."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


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


async def run_pool(jobs: Iterable[T], work: Callable[[T], Awaitable[object]], *, workers: int,
                   done: Callable[[], None] | None = None) -> None:
    """The one worker pool of the LLM jobs (label, bench): ``workers`` tasks take ``jobs``
    in order, one at a time (``jobs`` may be a generator: it is read lazily, as work frees
    up), await ``work(job)`` and call ``done()`` after each.  The endpoint's own limit
    (:class:`engine.llm.client.LLMClient` concurrency) bounds the requests; the pool bounds
    the work in flight.  The first error cancels the other workers and is raised as itself
    (:func:`first_error`)."""
    pending = iter(jobs)

    async def worker() -> None:
        for job in pending:   # one event loop thread: the workers share the iterator safely
            await work(job)
            if done is not None:
                done()

    async with first_error(), asyncio.TaskGroup() as group:
        for _ in range(workers):
            group.create_task(worker())
