"""Calibration figures recomputed from their definitions, independently of engine.stats.

AUROC as the Mann-Whitney probability over all (positive, negative) row pairs, ties half,
with human "correct" as the positive class and "partly" counted both ways; Spearman's rho as
the Pearson correlation of average ranks; the true-minus-shuffled gap per label; the CI of
the AUROC as a percentile interval over resampled labels; the ECE from its reliability bins.
"""
from __future__ import annotations

import numpy as np
import pytest

from saegold.engine.bench import results as bench_results
from saegold.engine.stats import calibration
from saegold.engine.stats.resample import cluster_counts
from saegold.store import features as store_features
from saegold.store import labels as store_labels
from saegold.store.judgments import append_many, ensure_annotator, make_event

VERDICTS = ("wrong", "partly", "correct")


def mw_auroc(scores, positive, weights=None) -> float:
    s = np.asarray(scores, float)
    y = np.asarray(positive, bool)
    w = np.ones(len(s)) if weights is None else np.asarray(weights, float)
    num = den = 0.0
    for i in np.flatnonzero(y):
        for k in np.flatnonzero(~y):
            pair = w[i] * w[k]
            den += pair
            num += pair * (1.0 if s[i] > s[k] else 0.5 if s[i] == s[k] else 0.0)
    return num / den


def avg_ranks(x) -> np.ndarray:
    x = np.asarray(x, float)
    r = np.empty(len(x))
    for i, v in enumerate(x):
        r[i] = (x < v).sum() + ((x == v).sum() + 1) / 2
    return r


def spearman(x, y) -> float:
    return float(np.corrcoef(avg_ranks(x), avg_ranks(y))[0, 1])


def _project(project, seed: int = 0):
    """40 features (input scores decide the category), one label each with a detection
    score (rounded, so ties occur) and a shuffled control; two annotators' verdicts."""
    rng = np.random.default_rng(seed)
    truth = {}
    with project.write() as db:
        sid = store_features.get_or_create_source(db, "m", "s", layer=1, d_sae=64, width=16)
        for i in range(40):
            fid = store_features.upsert_feature(db, sid, i)
            store_features.put_score(db, fid, input_threshold=0.5, output_threshold=0.5, scorer_version="t",
                                     input_score=float(i % 2), output_score=0.0)
            u = store_labels.add_label(db, fid, "baez", f"label {i}", origin="saegold")
            truth[u] = (fid, int(rng.integers(0, 3)))
    events = []
    for u, (fid, t) in truth.items():
        lid = project.scalar("SELECT id FROM labels WHERE uuid = ?", [u])
        true_score = round(0.5 + 0.15 * (t - 1) + rng.normal(0, 0.2), 1)
        shuf = round(0.5 + rng.normal(0, 0.2), 1)
        for control, value in (("true", true_score), ("shuffled", shuf)):
            bench_results.write(project, bench_results.BenchRow(
                label_id=lid, benchmark="detection", control=control, scored_label_id=lid, value=value,
                n=10, parse_failures=0, judge_model="j", seed=0, details={}))
        for ann in ("ann", "bob"):
            v = t if rng.random() < 0.75 else int(rng.integers(0, 3))
            events.append(make_event(ann, fid, "verdict", value=VERDICTS[v], label_uuid=u, seconds_spent=10.0))
    for ann in ("ann", "bob"):
        ensure_annotator(project, ann)
    append_many(project, events)


def test_auroc_both_ways_spearman_gap_and_label_bootstrap(project):
    _project(project)
    rep = calibration.compute(project, n_boot=200, seed=3, min_rows=5, grid=5)
    scores = {r["uuid"]: (r["control"], r["value"], r["category"]) for r in project.query(
        "SELECT l.uuid, b.control, b.value, t.category FROM bench_scores b JOIN labels l ON l.id = b.label_id "
        "JOIN taxonomy_scores t ON t.feature_id = l.feature_id WHERE b.control = 'true'")}
    shuffled = {r["uuid"]: r["value"] for r in project.query(
        "SELECT l.uuid, b.value FROM bench_scores b JOIN labels l ON l.id = b.label_id "
        "WHERE b.control = 'shuffled'")}
    verdicts = [(r["label_uuid"], VERDICTS.index(r["value"])) for r in project.query(
        "SELECT label_uuid, value FROM judgments WHERE kind = 'verdict'")]
    checked = 0
    for category in ("all", "input", "obscure"):
        rows = [(u, scores[u][1], v) for u, v in verdicts if category == "all" or scores[u][2] == category]
        x = [r[1] for r in rows]
        v = np.array([r[2] for r in rows])
        cell = rep.cell("detection", category)
        assert cell.n_rows == len(rows) and cell.n_labels == len({r[0] for r in rows})
        assert cell.auroc_correct.value == pytest.approx(mw_auroc(x, v == 2), abs=1e-12)
        assert cell.auroc_correct_or_partly.value == pytest.approx(mw_auroc(x, v >= 1), abs=1e-12)
        assert cell.auroc_correct.value != pytest.approx(cell.auroc_correct_or_partly.value)
        assert cell.spearman.value == pytest.approx(spearman(x, v), abs=1e-12)
        assert cell.human_correct_rate == pytest.approx(np.mean(v == 2))
        labels = sorted({u for u, *_ in rows})
        gaps = [scores[u][1] - shuffled[u] for u in sorted(scores)
                if category == "all" or scores[u][2] == category]
        assert cell.shuffled.gap.value == pytest.approx(np.mean(gaps), abs=1e-12)
        # CI over resampled labels (all verdicts of a label move together).
        counts = cluster_counts(len(labels), 200, 3)
        reps = []
        for row in counts:
            mult = dict(zip(labels, row))
            w = [mult[u] for u, *_ in rows]
            reps.append(mw_auroc(x, v == 2, w) if any(wi and vi == 2 for wi, vi in zip(w, v))
                        and any(wi and vi != 2 for wi, vi in zip(w, v)) else np.nan)
        reps = np.array(reps)
        lo, hi = np.percentile(reps[np.isfinite(reps)], [2.5, 97.5])
        assert cell.auroc_correct.ci == pytest.approx([lo, hi], abs=1e-9)
        # The cross-validated ECE is the bin-weighted |predicted - observed| of its bins.
        cal = cell.calibration
        assert cal.method in ("isotonic", "platt")
        assert cal.cv_brier[cal.method] == min(cal.cv_brier.values())   # chosen by cross-validation
        assert sum(b.n for b in cal.bins) == len(rows)
        ece = sum(b.n / len(rows) * abs(b.mean_predicted - b.observed) for b in cal.bins if b.n)
        assert cal.cv_ece == pytest.approx(ece, abs=1e-12)
        # The debiased RMS calibration error (Kumar et al. 2019) from the same bins: squared gap
        # minus the sampling variance of the bin's observed rate, bin-size weighted, rooted at >= 0.
        sq = sum(b.n / len(rows) * ((b.mean_predicted - b.observed) ** 2
                                    - (b.observed * (1 - b.observed) / (b.n - 1) if b.n > 1 else 0.0))
                 for b in cal.bins if b.n)
        assert cal.cv_calibration_error.value == pytest.approx(max(sq, 0.0) ** 0.5, abs=1e-9)
        observed = sum(b.n * b.observed for b in cal.bins if b.n) / len(rows)
        assert observed == pytest.approx(np.mean(v == 2))       # the target is P(correct)
        checked += 1
    assert checked == 3


def test_fitted_thresholds_reach_the_best_kappa_of_any_split():
    """In sample, the fitted (input, output) thresholds give the largest Cohen's kappa over
    every pair of thresholds that splits the observed scores differently (brute force)."""
    from saegold.engine.stats.thresholds import fit_thresholds
    from saegold.store.features import categorize
    from saegold.store.judgments import TIERS

    rng = np.random.default_rng(2)
    n = 24
    inp, out = rng.random(n).round(2), rng.random(n).round(2)
    rows = []
    for f in range(n):
        planted = categorize(inp[f], out[f], 0.4, 0.6)
        for ann in range(2):
            tier = planted if rng.random() < 0.8 else TIERS[int(rng.integers(0, 4))]
            rows.append((f, float(inp[f]), float(out[f]), TIERS.index(tier)))
    fit = fit_thresholds(rows, (0.5, 0.5), grid=100)

    def kappa(h, m):
        conf = np.zeros((4, 4))
        for a, b in zip(h, m):
            conf[a, b] += 1
        conf /= conf.sum()
        po, pe = np.trace(conf), conf.sum(axis=1) @ conf.sum(axis=0)
        return (po - pe) / (1 - pe)

    human = [r[3] for r in rows]

    def cuts(v):
        u = np.unique(v)
        return [u[0] - 1] + list((u[:-1] + u[1:]) / 2) + [u[-1] + 1]

    best = max(kappa(human, [TIERS.index(categorize(r[1], r[2], a, b)) for r in rows])
               for a in cuts(inp) for b in cuts(out))
    assert fit.fitted_kappa == pytest.approx(best, abs=1e-12)
    got = kappa(human, [TIERS.index(categorize(r[1], r[2], *fit.fitted)) for r in rows])
    assert got == pytest.approx(best, abs=1e-12)
    assert fit.current_kappa == pytest.approx(
        kappa(human, [TIERS.index(categorize(r[1], r[2], 0.5, 0.5)) for r in rows]), abs=1e-12)
