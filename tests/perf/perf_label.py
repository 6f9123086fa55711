"""Throughput of the label job against the local stand-in server (real SDK, real HTTP).

    .venv/bin/python tests/perf/perf_label.py [N_FEATURES]

Prints, for N features x (eleuther_acts_top5 + baez, with NLA explanations fetched over
HTTP): planning time, the first run (requests/s), a re-run (everything done: skipped), a
--redo re-run (every answer from the cache) and a dry run.  Compare ratios within one run;
the stand-in answers at once, so the figures are saegold's own overhead per request.
"""
from __future__ import annotations

import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from saegold.engine.labeling.job import LabelOptions, run_label_job  # noqa: E402
from saegold.engine.labeling.nla import NLAService  # noqa: E402
from saegold.engine.llm.client import LLMClient  # noqa: E402
from saegold.engine.llm.demo_responder import demo_label_answer, demo_nla_explanation  # noqa: E402
from saegold.engine.llm.standin_server import StandinServer  # noqa: E402
from saegold.store import features as F  # noqa: E402
from saegold.store.db import open_project  # noqa: E402

WORDS = "the of and to in a is that for it as was with be by on not he this are or his from".split()


def build(project, n: int) -> None:
    rng = random.Random(0)
    with project.write() as db:
        sid = F.get_or_create_source(db, "perf-model", "0-res")
        for idx in range(n):
            fid = F.upsert_feature(db, sid, idx)
            exs = []
            for k in range(5):
                tokens = ["<bos>"] + [" " + rng.choice(WORDS) for _ in range(63)]
                acts = [0.0] + [max(0.0, rng.gauss(0, 1)) for _ in range(63)]
                acts[rng.randrange(1, 64)] = 10.0 - k
                exs.append({"tokens": tokens, "acts": acts})
            F.put_examples(db, fid, "top", exs, "perf")
            F.put_score(db, fid, input_threshold=0.5, output_threshold=0.01, scorer_version="perf",
                        input_score=0.9, output_score=0.0)


def timed_run(project, server, opts, *, dry=False):
    client = LLMClient(project, base_url=server.base_url, model="perf", concurrency=8, dry_run=dry)
    nla_client = LLMClient(project, base_url=server.nla_url, model="nla:perf", api_key_env=None,
                           concurrency=8, dry_run=dry)
    nla = NLAService(nla_client, model_id="perf-model", nla_source_id="perf-nla")

    async def go():
        try:
            return await run_label_job(project, client, opts, nla=nla, nla_client=nla_client)
        finally:
            await client.aclose()
            await nla_client.aclose()

    before = server.count
    t = time.perf_counter()
    report = asyncio.run(go())
    return time.perf_counter() - t, server.count - before, report


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    with tempfile.TemporaryDirectory() as tmp, \
            StandinServer(demo_label_answer, nla_handler=demo_nla_explanation) as server:
        project = open_project(Path(tmp) / "perf.db", create=True)
        t = time.perf_counter()
        build(project, n)
        print(f"features: {n} (5 examples x 64 tokens each), built in {time.perf_counter() - t:.2f} s")
        opts = LabelOptions(by_tier=True)  # input -> eleuther_acts_top5 + baez
        secs, sent, rep = timed_run(project, server, opts, dry=True)
        print(f"dry run:        {secs:7.2f} s, {sent} requests, would send "
              f"{rep.total_spent.est_calls} ({rep.planned} labels + NLA)")
        secs, sent, rep = timed_run(project, server, opts)
        print(f"first run:      {secs:7.2f} s, {sent} requests ({rep.labeled} labels, {rep.nla_stored} NLA), "
              f"{sent / secs:.0f} requests/s")
        secs, sent, rep = timed_run(project, server, opts)
        print(f"re-run (done):  {secs:7.2f} s, {sent} requests, {rep.already_done} pairs skipped")
        secs, sent, rep = timed_run(project, server, LabelOptions(by_tier=True, redo=True))
        print(f"redo (cached):  {secs:7.2f} s, {sent} requests, {rep.total_spent.cache_hits} cache hits")
        project.close()


if __name__ == "__main__":
    main()
