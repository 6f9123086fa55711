"""Bench test helpers: projects written directly through the store helpers, and judges for the
local OpenAI-compatible stand-in server (the ``llm_server`` fixture in tests/conftest.py).

Feature ``f`` fires on the made-up word ``zq{f}word``: its top examples hold that word at the
activating position, its negatives (kind ``negative``) hold no feature word at all.  Method
``m_true`` labels it with its word; method ``m_vague`` with words that appear nowhere.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import re

from saegold.engine.bench.job import BenchConfig, run_bench
from saegold.engine.bench.prompts import EXAMPLE_PREFIX, LABEL_PREFIX
from saegold.store.examples import quantile_bins
from saegold.engine.llm.client import LLMClient
from saegold.store.features import get_or_create_source, put_examples, put_score, upsert_feature
from saegold.store.labels import add_label

FILL = ("the of and a to in is was that it for on with as by at from this be or had not but what all "
        "were when we there can an your which their said if do will each about how up out them").split()
CATEGORIES = ("input", "output", "cross", "obscure")


def word(f: int) -> str:
    return f"zq{f}word"


def build_project(project, n_features: int = 12, *, n_top: int = 30, n_neg: int = 20, length: int = 10,
                  n_quantile: int = 30, methods: tuple[str, ...] = ("m_true", "m_vague"),
                  categories: bool = True) -> list[int]:
    """Write a source with ``n_features`` features, their examples, labels and categories.

    ``quantile`` examples (as ``saegold score`` keeps them) hold the word too, with maxima
    spread evenly from 0.1 to 5.0, in 10 equal-count bins."""
    ids = []
    with project.write() as db:
        sid = get_or_create_source(db, "tiny-model", "tiny-sae")
        for f in range(n_features):
            fid = upsert_feature(db, sid, f, max_act=5.0)
            ids.append(fid)
            tops = []
            for r in range(n_top):
                toks = [" " + FILL[(7 * f + 3 * r + i) % len(FILL)] for i in range(length)]
                at = 2 + (r % (length - 3))
                toks[at] = " " + word(f)
                acts = [0.0] * length
                acts[at] = 5.0 - 0.1 * r
                acts[at + 1] = 0.4 * (5.0 - 0.1 * r)    # a second token above 0.3 x max
                tops.append({"tokens": toks, "acts": acts})
            put_examples(db, fid, "top", tops, "test")
            quant = []
            for r in range(n_quantile):
                toks = [" " + FILL[(5 * f + 7 * r + 2 * i) % len(FILL)] for i in range(length)] + [" q%d" % r]
                at = 1 + (r % (length - 3))
                toks[at] = " " + word(f)
                acts = [0.0] * (length + 1)
                acts[at] = 5.0 - 4.9 * r / max(1, n_quantile - 1)
                acts[at + 1] = 0.4 * acts[at]
                quant.append({"tokens": toks, "acts": acts})
            order = quantile_bins([q["acts"][1 + (r % (length - 3))] for r, q in enumerate(quant)])
            put_examples(db, fid, "quantile", [{**quant[i], "bin": b} for i, b in order], "test")
            negs = [{"tokens": [" " + FILL[(11 * f + 5 * r + 2 * i) % len(FILL)] for i in range(length)]
                     + [" n%dx%d" % (f, r)], "acts": [0.0] * (length + 1)} for r in range(n_neg)]
            put_examples(db, fid, "negative", negs, "test")
            if "m_true" in methods:
                add_label(db, fid, "m_true", f"the word {word(f)}", origin="test")
            if "m_vague" in methods:
                add_label(db, fid, "m_vague", f"vague notion number {f}", origin="test")
            if categories:
                c = CATEGORIES[f % 4]
                put_score(db, fid, input_threshold=0.5, output_threshold=0.5, scorer_version="test",
                          input_score=1.0 if c in ("input", "cross") else 0.0,
                          output_score=1.0 if c in ("output", "cross") else 0.0)
    return ids


_EX = re.compile(r"^" + re.escape(EXAMPLE_PREFIX) + r"(\d+): (.*)$")


def judge_request(request: dict) -> tuple[str, str, list[str]]:
    """(benchmark, label, example bodies) of a saegold judge request."""
    system, user = request["messages"][0]["content"], request["messages"][-1]["content"]
    benchmark = "fuzzing" if "(fuzzing)" in system else "detection"
    label = next(ln[len(LABEL_PREFIX):] for ln in user.splitlines() if ln.startswith(LABEL_PREFIX))
    bodies = [m.group(2) for ln in user.splitlines() if (m := _EX.match(ln))]
    return benchmark, label, bodies


def oracle_judge(request: dict) -> str:
    """Knows which examples are activating (the ground truth of build_project), ignores the label."""
    _, _, bodies = judge_request(request)
    return json.dumps([1 if re.search(r"zq\d+word", b) else 0 for b in bodies])


def coin_judge(request: dict) -> str:
    """A fair coin per example, deterministic in the request text (so the test is reproducible)."""
    _, _, bodies = judge_request(request)
    key = request["messages"][-1]["content"]
    return json.dumps([hashlib.sha256(f"{key}|{i}".encode()).digest()[0] & 1 for i in range(len(bodies))])


def garbage_judge(request: dict) -> str:
    return "I think examples 1 and 3 look related, the rest maybe not."


def run(project, server, config: BenchConfig | None = None, *, embedder=None, model: str = "judge",
        progress=None, **client_kw):
    """Run the bench job with a real LLMClient against ``server`` (real HTTP); returns (summary, usage)."""
    config = config or BenchConfig(benchmarks=("detection", "fuzzing"))

    async def go():
        client = LLMClient(project, base_url=server.base_url, model=model, concurrency=8, dry_run=config.dry_run,
                           backoff_base=0.01, **client_kw)
        try:
            kw = {} if progress is None else {"progress": progress}
            summary = await run_bench(project, config, client=client, embedder=embedder,
                                      judge_model=model, **kw)
            return summary, client.usage
        finally:
            await client.aclose()

    return asyncio.run(go())
