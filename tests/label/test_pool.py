"""engine.llm.aio.run_pool: the one worker pool of the label and bench jobs."""
from __future__ import annotations

import asyncio

import pytest

from saegold.engine.llm.aio import run_pool
from saegold.store.errors import SaegoldError


def test_every_job_once_at_most_workers_at_a_time_reading_jobs_lazily():
    running, most, seen, read, finished = 0, 0, [], [], []

    def jobs():
        for n in range(20):
            read.append(n)
            yield n

    async def work(n: int) -> None:
        nonlocal running, most
        assert len(read) == n + 1   # taken as a worker frees up, not all up front
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.001 * (n % 4))
        seen.append(n)
        running -= 1

    asyncio.run(run_pool(jobs(), work, workers=3, done=lambda: finished.append(1)))
    assert sorted(seen) == list(range(20)) and most == 3 and len(finished) == 20


def test_first_error_cancels_the_rest_and_is_raised_as_itself():
    started, cancelled = [], []

    async def work(n: int) -> None:
        started.append(n)
        if n == 1:
            raise SaegoldError("job 1 failed")
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(n)
            raise

    with pytest.raises(SaegoldError, match="^job 1 failed$"):
        asyncio.run(run_pool(range(100), work, workers=4))
    assert len(started) == 4 and sorted(cancelled) == [0, 2, 3]


def test_no_jobs_or_no_workers_does_nothing():
    asyncio.run(run_pool([], lambda n: asyncio.sleep(0), workers=4))
    asyncio.run(run_pool([1, 2], lambda n: asyncio.sleep(0), workers=0))
