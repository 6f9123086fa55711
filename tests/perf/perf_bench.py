"""Figures for ``saegold bench``: throughput against the local stand-in endpoint.

    .venv/bin/python tests/perf/perf_bench.py [--features 100] [--latency 0.05]

Builds a project of N features x 2 label methods, then times (real openai SDK, real HTTP to
the stand-in server on 127.0.0.1, demo stand-in judge and embedder):

1. a full run of detection + fuzzing + embedding with shuffled controls (nothing cached);
2. the same with --redo (every answer cached: no request sent);
3. detection alone with a simulated judge latency, at concurrency 1 and 8 (their ratio shows
   the client's concurrency at work);
4. building the report (bootstrap CIs).

Compare figures within one run; absolute numbers depend on the machine's load.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "bench")]

from benchkit import build_project  # noqa: E402

from saegold.engine.bench.demo_judge import demo_embed, demo_judge_answer  # noqa: E402
from saegold.engine.bench.embedders import ApiEmbedder  # noqa: E402
from saegold.engine.bench.job import BenchConfig, run_bench  # noqa: E402
from saegold.engine.bench.report import build_report  # noqa: E402
from saegold.engine.llm.client import LLMClient  # noqa: E402
from saegold.engine.llm.standin_server import StandinServer  # noqa: E402
from saegold.store.db import open_project  # noqa: E402


def timed_run(project, server, config: BenchConfig, concurrency: int) -> tuple[float, object, object]:
    async def go():
        client = LLMClient(project, base_url=server.base_url, model="judge", concurrency=concurrency)
        try:
            t = time.perf_counter()
            summary = await run_bench(project, config, client=client, embedder=ApiEmbedder(client, "emb"),
                                      judge_model="judge")
            return time.perf_counter() - t, summary, client.usage
        finally:
            await client.aclose()

    return asyncio.run(go())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--features", type=int, default=100)
    ap.add_argument("--latency", type=float, default=0.05, help="simulated judge latency in seconds (part 3)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="saegold-perf-bench-"))

    server = StandinServer(lambda req: demo_judge_answer(req) or "?", demo_embed).start()
    try:
        with open_project(work / "bench.db", create=True) as p:
            build_project(p, n_features=args.features)
            all3 = BenchConfig(benchmarks=("detection", "fuzzing", "embedding"), workers=16)
            secs, s, u = timed_run(p, server, all3, 8)
            n = sum(s.written.values())
            print(f"full run, {args.features} features x 2 methods, 3 benchmarks + controls: {n} results, "
                  f"{u.calls} requests in {secs:.2f} s = {n / secs:,.1f} results/s, {u.calls / secs:,.1f} requests/s")
            secs2, s2, u2 = timed_run(p, server, BenchConfig(benchmarks=all3.benchmarks, workers=16, redo=True), 8)
            print(f"--redo, all cached: {sum(s2.written.values())} results, {u2.calls} requests sent, "
                  f"{u2.cache_hits} cache hits in {secs2:.2f} s = {sum(s2.written.values()) / secs2:,.1f} results/s "
                  f"({secs / secs2:.1f}x faster than the uncached run)")
            t = time.perf_counter()
            report = build_report(p)
            print(f"report: {len(report['overall'])} + {len(report['by_category'])} rows with bootstrap CIs "
                  f"in {time.perf_counter() - t:.2f} s")

        slow = StandinServer(lambda req: (time.sleep(args.latency), demo_judge_answer(req) or "?")[1]).start()
        try:
            rates = {}
            for conc in (1, 8):
                with open_project(work / f"latency-{conc}.db", create=True) as p:
                    build_project(p, n_features=max(4, args.features // 10))
                    secs, s, u = timed_run(p, slow, BenchConfig(benchmarks=("detection",), workers=16), conc)
                    rates[conc] = u.calls / secs
                    print(f"judge latency {args.latency * 1000:.0f} ms, concurrency {conc}: {u.calls} requests "
                          f"in {secs:.2f} s = {rates[conc]:,.1f} requests/s")
            print(f"concurrency 8 / concurrency 1 throughput: {rates[8] / rates[1]:.1f}x")
        finally:
            slow.stop()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
