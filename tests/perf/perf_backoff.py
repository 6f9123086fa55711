"""Wall time of a batch of chat requests when 30% of answers are 429 with Retry-After.

    .venv/bin/python tests/perf/perf_backoff.py [N_REQUESTS] [CONCURRENCY]

The stand-in server answers each request in 0.1 s of work; a seeded 30% of responses are
``429 Retry-After: 1``.  Prints the ideal time (the work alone, spread over the slots), and
the wall time.  A client that keeps its concurrency slot while it waits out a backoff spends
the slots sleeping (the issue measured 41 s where 5 s of work was left); one that releases
the slot goes on with other requests meanwhile.  Uses only the client's public API, so the
same script measures an older checkout too (``PYTHONPATH=/path/to/old python this``).
"""
from __future__ import annotations

import asyncio
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, os.environ.get("PYTHONPATH") or str(Path(__file__).resolve().parents[2]))

from saegold.engine.llm.client import LLMClient  # noqa: E402
from saegold.engine.llm.standin_server import Fault, StandinServer  # noqa: E402

WORK_S = 0.1
SHARE_429 = 0.3
RETRY_AFTER_S = 1.0


def main(n: int = 200, concurrency: int = 4) -> None:
    def answer(req: dict) -> str:
        time.sleep(WORK_S)
        return "[EXPLANATION]: ok"

    rng = random.Random(0)
    with StandinServer(chat_handler=answer) as server:
        # One fault (or a pass-through) per response, in order: a seeded 30% are 429s.
        server.inject(*[Fault(status=429, retry_after=RETRY_AFTER_S) if rng.random() < SHARE_429 else Fault()
                        for _ in range(4 * n)])
        client = LLMClient(None, base_url=server.base_url, model="m", api_key_env=None,
                           concurrency=concurrency, max_retries=20, timeout=30)

        async def go() -> None:
            try:
                await asyncio.gather(*(client.chat([{"role": "user", "content": f"q{i}"}]) for i in range(n)))
            finally:
                await client.aclose()

        started = time.perf_counter()
        asyncio.run(go())
        wall = time.perf_counter() - started
        answered_429 = sum(1 for r in server.requests if r.fault is not None and r.fault.status == 429)
    ideal = n * WORK_S / concurrency
    print(f"{n} requests, concurrency {concurrency}, {WORK_S:.2f} s of work each, "
          f"{answered_429} of {answered_429 + n} responses 429 (Retry-After {RETRY_AFTER_S:g} s)")
    print(f"  work alone: {ideal:.1f} s   wall: {wall:.1f} s   ratio {wall / ideal:.2f}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
