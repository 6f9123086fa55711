"""Bench figures recomputed from the definitions, independently of engine.bench.

The judge (a handler on the local stand-in server, over real HTTP) answers each example by
a hash of its text and leaves some batches unparseable; it records what it said about each
(label, example).  The expected score is then computed here from the examples in the store:
positives are the top examples at ranks 6-15 (the ``top`` sampler), negatives the scoring-pass negatives; balanced
accuracy is the mean of the hit rate on positives and the correct-rejection rate on
negatives over the answered examples only (unparseable ones are excluded, never counted
wrong); the shuffled control judges the label of another feature made by the same method.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import re

import numpy as np
import pytest

from saegold.engine.bench.job import BenchConfig, run_bench
from saegold.engine.bench.prompts import EXAMPLE_PREFIX, LABEL_PREFIX
from saegold.engine.bench.report import build_report
from saegold.engine.llm.client import LLMClient
from saegold.store.features import get_or_create_source, put_examples, upsert_feature
from saegold.store.labels import add_label

TOP = {"sampler": "top", "positive_ranks": (6, 15)}   # the definitions below: positives at top ranks 6-15
_EX = re.compile(r"^" + re.escape(EXAMPLE_PREFIX) + r"(\d+): (.*)$")


def _h(text: str) -> int:
    return hashlib.sha256(text.encode()).digest()[0]


def _build(project, n_features: int = 6) -> dict[str, tuple[int, int]]:
    """Features with 16 top and 10 negative examples; text -> (feature id, truth)."""
    texts = {}
    with project.write() as db:
        sid = get_or_create_source(db, "m", "s")
        for f in range(n_features):
            fid = upsert_feature(db, sid, f)
            tops, negs = [], []
            for r in range(16):
                toks = [f" t{f}", f" r{r}", " top", " x"]
                top = 5.0 - 0.1 * r
                tops.append({"tokens": toks, "acts": [0.0, 0.1 * top, top, 0.3 * top + 0.01]})
                if 5 <= r <= 14:                       # ranks 6-15, 1-based
                    texts["".join(toks)] = (fid, 1)
            for r in range(10):
                toks = [f" n{f}", f" r{r}", " neg", " y"]
                negs.append({"tokens": toks, "acts": [0.0] * 4})
                texts["".join(toks)] = (fid, 0)
            put_examples(db, fid, "top", tops, "test")
            put_examples(db, fid, "negative", negs, "test")
            add_label(db, fid, "alpha", f"alpha label {f}", origin="test")
            add_label(db, fid, "beta", f"beta label {f}", origin="test")
    return texts


def test_balanced_accuracy_parse_failures_and_shuffled_control(project, llm_server):
    texts = _build(project)
    said: dict[tuple[str, str], int | None] = {}

    def judge(request: dict) -> str:
        user = request["messages"][-1]["content"]
        label = next(ln[len(LABEL_PREFIX):] for ln in user.splitlines() if ln.startswith(LABEL_PREFIX))
        bodies = [m.group(2) for ln in user.splitlines() if (m := _EX.match(ln))]
        garbage = _h(user) % 3 == 0
        answers = [(_h(label + "|" + b) >> 1) & 1 for b in bodies]
        for b, a in zip(bodies, answers):
            said[(label, b)] = None if garbage else a
        return "examples 1 and 2, I think" if garbage else json.dumps(answers)

    server = llm_server(chat_handler=judge)

    async def go():
        client = LLMClient(project, base_url=server.base_url, model="judge", concurrency=4, backoff_base=0.01)
        try:
            return await run_bench(project, BenchConfig(benchmarks=("detection",), **TOP, seed=4), client=client,
                                   judge_model="judge")
        finally:
            await client.aclose()

    asyncio.run(go())
    labels = {r["id"]: r for r in project.query("SELECT id, feature_id, method, text FROM labels")}
    rows = project.query("SELECT label_id, control, scored_label_id, value, n, parse_failures FROM bench_scores")
    assert len(rows) == 2 * len(labels)
    some_failures = 0
    for row in rows:
        label, scored = labels[row["label_id"]], labels[row["scored_label_id"]]
        if row["control"] == "true":
            assert scored["id"] == label["id"]
        else:
            assert scored["method"] == label["method"] and scored["feature_id"] != label["feature_id"]
        mine = {t: truth for t, (fid, truth) in texts.items() if fid == label["feature_id"]}
        asked = {b: a for (lab, b), a in said.items() if lab == scored["text"] and b in mine}
        assert set(asked) == set(mine)                  # ranks 6-15 and as many negatives
        answered = [(mine[b], a) for b, a in asked.items() if a is not None]
        failures = sum(a is None for a in asked.values())
        assert row["n"] == len(answered) and row["parse_failures"] == failures
        pos = [a for t, a in answered if t == 1]
        neg = [a for t, a in answered if t == 0]
        if not pos or not neg:
            assert row["value"] is None
            continue
        expected = (np.mean(pos) + np.mean([1 - a for a in neg])) / 2
        assert row["value"] == pytest.approx(expected, abs=1e-12)
        some_failures += failures > 0
    assert some_failures > 0          # some unparseable batches were excluded, not scored

    # The report: mean over labels with a bootstrap CI, the paired gap, the parse-failure rate.
    rep = build_report(project, seed=0, n_resamples=999)
    for entry in rep["overall"]:
        mine = [r for r in rows if labels[r["label_id"]]["method"] == entry["method"]]
        true = {r["label_id"]: r["value"] for r in mine if r["control"] == "true" and r["value"] is not None}
        shuf = {r["label_id"]: r["value"] for r in mine if r["control"] == "shuffled" and r["value"] is not None}
        assert entry["n"] == len(true)
        assert entry["mean"] == pytest.approx(np.mean(list(true.values())), abs=1e-12)
        assert entry["ci_low"] <= entry["mean"] <= entry["ci_high"]
        gaps = [true[k] - shuf[k] for k in true.keys() & shuf.keys()]
        assert entry["gap_mean"] == pytest.approx(np.mean(gaps), abs=1e-12)
        assert entry["parse_failure_rate"] == pytest.approx(
            sum(r["parse_failures"] for r in mine) / sum(r["n"] + r["parse_failures"] for r in mine))
        assert entry["chance"] == 0.5


def test_fuzzing_highlights_and_balanced_accuracy(project, llm_server):
    """Positives carry their true highlights (tokens >= 0.3 x the example's max: here the
    last two), negatives as many highlights on tokens where the feature does not fire."""
    texts = _build(project, n_features=3)
    said: dict[tuple[str, str], int | None] = {}

    def judge(request: dict) -> str:
        user = request["messages"][-1]["content"]
        label = next(ln[len(LABEL_PREFIX):] for ln in user.splitlines() if ln.startswith(LABEL_PREFIX))
        bodies = [m.group(2) for ln in user.splitlines() if (m := _EX.match(ln))]
        garbage = _h(user) % 4 == 0
        answers = [(_h(label + "|" + b) >> 2) & 1 for b in bodies]
        for b, a in zip(bodies, answers):
            said[(label, b)] = None if garbage else a
        return "[1, 0" if garbage else json.dumps(answers)

    server = llm_server(chat_handler=judge)

    async def go():
        client = LLMClient(project, base_url=server.base_url, model="judge", concurrency=4, backoff_base=0.01)
        try:
            return await run_bench(project, BenchConfig(benchmarks=("fuzzing",), **TOP, seed=9), client=client,
                                   judge_model="judge")
        finally:
            await client.aclose()

    asyncio.run(go())
    # Every body is the example's text with its marks; read the marks back.
    seen = {}
    for (label, body), a in said.items():
        plain = body.replace("<<", "").replace(">>", "")
        marked = re.findall(r"<<(.*?)>>", body)
        n_marked = sum(len(m.split()) for m in marked)
        fid, truth = texts[plain]
        if truth == 1:
            toks = plain.split()
            assert body == f" {toks[0]} {toks[1]} <<{toks[2]} {toks[3]}>>"
        else:
            assert n_marked == 2
        seen[(label, plain)] = (truth, a)
    labels = {r["id"]: r for r in project.query("SELECT id, feature_id, text FROM labels")}
    rows = project.query("SELECT label_id, scored_label_id, value, n, parse_failures FROM bench_scores")
    assert rows
    for row in rows:
        label, scored = labels[row["label_id"]], labels[row["scored_label_id"]]
        mine = {t for t, (fid, _) in texts.items() if fid == label["feature_id"]}
        answered = [v for (lab, t), v in seen.items() if lab == scored["text"] and t in mine]
        assert len(answered) == 20
        ok = [(t, a) for t, a in answered if a is not None]
        assert row["n"] == len(ok) and row["parse_failures"] == 20 - len(ok)
        pos = [a for t, a in ok if t == 1]
        neg = [1 - a for t, a in ok if t == 0]
        expected = (np.mean(pos) + np.mean(neg)) / 2 if pos and neg else None
        assert row["value"] == (pytest.approx(expected, abs=1e-12) if expected is not None else None)


def test_embedding_auroc_of_cosine_similarity(project):
    """AUROC (Mann-Whitney, ties half) of the cosine between the label's and each example's
    embedding, positives (ranks 6-15) vs negatives, on arbitrary (not separable) vectors."""
    from saegold.engine.bench.embedders import FunctionEmbedder

    texts = _build(project, n_features=3)

    def vec(t: str) -> list[float]:
        d = hashlib.sha256(t.encode()).digest()
        return [b - 128.0 for b in d[:6]]

    asyncio.run(run_bench(project, BenchConfig(benchmarks=("embedding",), **TOP, seed=1),
                          embedder=FunctionEmbedder(lambda ts: [vec(t) for t in ts], "hash")))
    labels = {r["id"]: r for r in project.query("SELECT id, feature_id, text FROM labels")}
    rows = project.query("SELECT label_id, scored_label_id, value, n FROM bench_scores")
    assert len(rows) == 2 * len(labels)
    values = set()
    for row in rows:
        fid = labels[row["label_id"]]["feature_id"]
        lv = np.array(vec(labels[row["scored_label_id"]]["text"]))
        sims = {}
        for t, (f, truth) in texts.items():
            if f == fid:
                e = np.array(vec(t))
                sims[t] = (truth, float(e @ lv / np.linalg.norm(e) / np.linalg.norm(lv)))
        pos = [s for truth, s in sims.values() if truth == 1]
        neg = [s for truth, s in sims.values() if truth == 0]
        expected = np.mean([1.0 if p > q else 0.5 if p == q else 0.0 for p in pos for q in neg])
        assert row["n"] == 20
        assert row["value"] == pytest.approx(expected, abs=1e-12)
        values.add(round(expected, 6))
    assert len(values) > 2            # not the trivial 0.5 / 1.0 of the existing tests


def test_true_and_shuffled_results_of_a_label_share_the_examples(project, llm_server):
    """The paired gap compares a label with its shuffled control on the same examples, so a
    run that completes a pair left half-done by an earlier run with another seed redoes the
    other half too (otherwise the two halves are judged on different examples)."""
    _build(project, n_features=4)
    server = llm_server(chat_handler=lambda request: json.dumps(
        [(_h(request["messages"][-1]["content"] + str(i)) & 1) for i in range(5)]))

    def run(seed: int):
        async def go():
            client = LLMClient(project, base_url=server.base_url, model="judge", concurrency=4,
                               backoff_base=0.01)
            try:
                return await run_bench(project, BenchConfig(benchmarks=("detection",), **TOP, seed=seed), client=client,
                                       judge_model="judge")
            finally:
                await client.aclose()
        return asyncio.run(go())

    run(0)
    with project.write() as db:              # as if the first run had stopped before the controls
        db.execute("DELETE FROM bench_scores WHERE control = 'shuffled'")
    run(1)
    rows = project.query("SELECT label_id, control, seed, details FROM bench_scores")
    by_label: dict[int, dict[str, dict]] = {}
    for r in rows:
        by_label.setdefault(r["label_id"], {})[r["control"]] = r
    assert len(by_label) == 8
    for pair in by_label.values():
        true, shuf = pair["true"], pair["shuffled"]
        ids = [sorted(e["example_id"] for e in json.loads(r["details"])["examples"]) for r in (true, shuf)]
        assert true["seed"] == shuf["seed"] and ids[0] == ids[1]
    # A run that finds every pair complete asks nothing and changes nothing.
    before = server.count
    summary = run(2)
    assert summary.already_done == 16 and server.count == before
