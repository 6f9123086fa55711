"""Per-label confidence intervals: coverage by seeded simulation against a known truth (fast
version; tests/validity/bench_ci_checks.py runs the full grid), and the CI stored with every score."""
from __future__ import annotations

import numpy as np
import pytest

from saegold.engine.bench.job import BenchConfig
from saegold.engine.bench.metrics import auroc, auroc_ci, balanced_accuracy_ci, wilson_ci
from saegold.engine.bench.report import build_report
from saegold.store.db import loads

from benchkit import coin_judge, oracle_judge, run


def coverage_ba(tpr: float, tnr: float, n_pos: int, n_neg: int, trials: int, rng: np.random.Generator) -> float:
    """How often the balanced-accuracy interval holds the true (tpr + tnr) / 2."""
    truth = [1] * n_pos + [0] * n_neg
    hits = 0
    for _ in range(trials):
        pred = list((rng.random(n_pos) < tpr).astype(int)) + list((rng.random(n_neg) >= tnr).astype(int))
        lo, hi = balanced_accuracy_ci(truth, pred)
        hits += lo <= (tpr + tnr) / 2 <= hi
    return hits / trials


def test_balanced_accuracy_ci_covers(tmp_path):
    rng = np.random.default_rng(15)
    # 400 trials: a coverage of 0.95 reads 0.95 +- 0.022 (2 SE); the floor 0.92 leaves room for that
    for tpr, tnr in ((0.5, 0.5), (0.9, 0.8), (1.0, 0.95), (0.7, 0.3)):
        assert coverage_ba(tpr, tnr, 20, 20, 400, rng) >= 0.92, (tpr, tnr)
    lo, hi = balanced_accuracy_ci([1] * 20 + [0] * 20, [1] * 20 + [0] * 20)
    assert 0.85 < lo < 0.95 and hi == 1.0                    # a perfect score still has an interval
    lo10, hi10 = balanced_accuracy_ci([1] * 10 + [0] * 10, [1, 0] * 5 + [0, 1] * 5)
    lo20, hi20 = balanced_accuracy_ci([1] * 20 + [0] * 20, [1, 0] * 10 + [0, 1] * 10)
    assert lo10 < 0.5 < hi10 and hi20 - lo20 < hi10 - lo10   # more examples, a narrower interval


def test_auroc_and_wilson_ci_cover():
    rng = np.random.default_rng(7)
    shift, hits, trials = 1.0, 0, 300
    from scipy.stats import norm
    true_auc = norm.cdf(shift / np.sqrt(2))                  # binormal, unit variances
    for _ in range(trials):
        pos, neg = rng.normal(shift, 1, 20), rng.normal(0, 1, 20)
        truth, scores = [1] * 20 + [0] * 20, list(pos) + list(neg)
        lo, hi = auroc_ci(truth, scores)
        assert lo <= auroc(truth, scores) <= hi
        hits += lo <= true_auc <= hi
    assert hits / trials >= 0.92
    hits = sum(lo <= 1 / 3 <= hi for lo, hi in (wilson_ci(int(k), 12) for k in rng.binomial(12, 1 / 3, 400)))
    assert hits / 400 >= 0.92
    assert wilson_ci(0, 0) == (None, None)


def test_every_stored_score_carries_its_ci(bench_project, llm_server):
    server = llm_server(chat_handler=oracle_judge)
    run(bench_project, server, BenchConfig(benchmarks=("detection",)))
    rows = bench_project.query("SELECT value, details FROM bench_scores")
    for r in rows:
        d = loads(r["details"])
        lo, hi = d["ci"]
        assert lo <= r["value"] <= hi and hi - lo < 0.3
    row = next(x for x in build_report(bench_project)["overall"] if x["method"] == "m_true")
    assert row["label_ci_width_median"] == pytest.approx(hi - lo)


def test_coin_judge_labels_sit_inside_their_ci_at_chance(project, llm_server):
    from benchkit import build_project

    build_project(project, n_features=30, methods=("m_true",))
    server = llm_server(chat_handler=coin_judge)
    run(project, server, BenchConfig(benchmarks=("detection",)))
    rows = [loads(r["details"])["ci"] for r in project.query("SELECT details FROM bench_scores")]
    inside = sum(lo <= 0.5 <= hi for lo, hi in rows)
    assert len(rows) == 60 and inside >= 52               # ~95% expected: 57; 52 allows for chance


def test_bench_export_has_each_score_with_its_ci(bench_project, llm_server, capsys):
    import json

    from saegold.tui.cli import main

    server = llm_server(chat_handler=oracle_judge)
    run(bench_project, server, BenchConfig(benchmarks=("detection",)))
    assert main(["--db", str(bench_project.path), "export", "bench"]) == 0
    recs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(recs) == bench_project.scalar("SELECT COUNT(*) FROM bench_scores") == 48
    for r in recs:
        assert r["sampler"] == "quantiles" and r["ci_low"] <= r["value"] <= r["ci_high"]
        assert r["label_uuid"] and r["scored_label_uuid"] and r["benchmark"] == "detection"
