"""Agreement figures recomputed from their textbook definitions, independently of engine.stats.

Krippendorff's alpha from the coincidence matrix (Krippendorff 2011, "Computing Krippendorff's
alpha-reliability"), nominal and ordinal metrics, missing data allowed; raw percent agreement
over all pairs of annotators on shared items; Cohen's kappa from the confusion matrix
(unweighted for tiers, linearly weighted for the ordinal verdicts); and the bootstrap CI as
the BCa interval (Efron 1987) over resampled *items* (features), not over single ratings, its
acceleration from the leave-one-feature-out jackknife and its normal quantiles expanded to
sqrt(n/(n-1)) t_{n-1} for n features (Hesterberg 2015).
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.stats import norm
from scipy.stats import t as student_t

from saegold.engine.stats.agreement import agreement_from
from saegold.engine.stats.resample import cluster_counts
from saegold.store.judgments import TIERS, FeatureJudgment

VERDICTS = ("wrong", "partly", "correct")


def kripp_alpha(units: list[list[int]], n_values: int, level: str) -> float:
    """alpha from the coincidence matrix; ``units`` holds the codes each unit received."""
    o = np.zeros((n_values, n_values))
    for vals in units:
        m = len(vals)
        if m < 2:
            continue
        for a, b in itertools.permutations(range(m), 2):
            o[vals[a], vals[b]] += 1.0 / (m - 1)
    n_c = o.sum(axis=1)
    n = n_c.sum()
    d2 = np.zeros((n_values, n_values))
    for c in range(n_values):
        for k in range(n_values):
            if level == "nominal":
                d2[c, k] = float(c != k)
            else:
                lo, hi = min(c, k), max(c, k)
                d2[c, k] = (n_c[lo:hi + 1].sum() - (n_c[c] + n_c[k]) / 2) ** 2
    return 1.0 - (n - 1) * (o * d2).sum() / (np.outer(n_c, n_c) * d2).sum()


def kappa(a: list[int], b: list[int], n_values: int, linear: bool) -> float:
    conf = np.zeros((n_values, n_values))
    for x, y in zip(a, b):
        conf[x, y] += 1
    conf /= conf.sum()
    i, j = np.indices(conf.shape)
    w = np.abs(i - j) if linear else (i != j).astype(float)
    expected = np.outer(conf.sum(axis=1), conf.sum(axis=0))
    return 1.0 - (w * conf).sum() / (w * expected).sum()


def percent(units: list[list[int]]) -> float:
    agree = total = 0
    for vals in units:
        for x, y in itertools.combinations(vals, 2):
            total += 1
            agree += x == y
    return agree / total


def _data(seed: int):
    """Three annotators, 40 features (some judged by one, two or three), 2 labels each."""
    rng = np.random.default_rng(seed)
    names = ["ann", "bob", "cy"]
    judged: list[FeatureJudgment] = []
    truth_tier = rng.integers(0, 4, size=40)
    truth_v = rng.integers(0, 3, size=(40, 2))
    for f in range(40):
        who = [n for n in names if rng.random() < 0.7] or ["ann"]
        for n in who:
            tier = int(truth_tier[f]) if rng.random() < 0.7 else int(rng.integers(0, 4))
            verdicts = {}
            for lab in range(2):
                if rng.random() < 0.9:   # a verdict can be missing
                    v = int(truth_v[f, lab]) if rng.random() < 0.6 else int(rng.integers(0, 3))
                    verdicts[f"L{f}-{lab}"] = VERDICTS[v]
            judged.append(FeatureJudgment(feature_id=1000 + f, annotator=n, tier=TIERS[tier],
                                          verdicts=verdicts, seconds_spent=30.0))
    return names, judged


def bca(value, reps, jack):
    reps, jack = np.asarray(reps, float), np.asarray(jack, float)
    z0 = norm.ppf((np.sum(reps < value) + 0.5 * np.sum(reps == value)) / len(reps))
    d = jack.mean() - jack
    a = np.sum(d ** 3) / (6 * np.sum(d ** 2) ** 1.5)
    n = len(jack)
    z = np.sqrt(n / (n - 1)) * student_t.ppf([0.025, 0.975], n - 1)
    return np.percentile(reps, 100 * norm.cdf(z0 + (z0 + z) / (1 - a * (z0 + z))))


@pytest.mark.parametrize("seed", [0, 1])
def test_alpha_percent_kappa_and_item_bootstrap(seed):
    names, judged = _data(seed)
    rep = agreement_from(judged, {}, n_boot=300, seed=5, min_items=2)

    # --- tier: nominal, items = features
    tier_units: dict[int, dict[str, int]] = {}
    for j in judged:
        tier_units.setdefault(j.feature_id, {})[j.annotator] = TIERS.index(j.tier)
    shared = {f: u for f, u in tier_units.items() if len(u) >= 2}
    units = [list(u.values()) for f, u in sorted(shared.items())]
    assert rep.tier.level == "nominal" and rep.tier.n_items == len(units)
    assert rep.tier.krippendorff_alpha.value == pytest.approx(kripp_alpha(units, 4, "nominal"), abs=1e-9)
    assert rep.tier.percent_agreement.value == pytest.approx(percent(units), abs=1e-12)

    # The CI resamples items: a BCa interval of alpha over resampled features.
    feats = sorted(shared, key=str)
    counts = cluster_counts(len(feats), 300, 5)
    reps = []
    for row in counts:
        res = [list(shared[f].values()) for f, c in zip(feats, row) for _ in range(int(c))]
        reps.append(kripp_alpha(res, 4, "nominal"))
    jack = [kripp_alpha([list(shared[f].values()) for f in feats if f != out], 4, "nominal") for out in feats]
    lo, hi = bca(rep.tier.krippendorff_alpha.value, reps, jack)
    assert rep.tier.krippendorff_alpha.ci == pytest.approx([lo, hi], abs=1e-9)

    # --- verdicts: ordinal, items = labels, resampled with their feature
    v_units: dict[str, dict[str, int]] = {}
    feature_of: dict[str, int] = {}
    for j in judged:
        for u, v in j.verdicts.items():
            v_units.setdefault(u, {})[j.annotator] = VERDICTS.index(v)
            feature_of[u] = j.feature_id
    v_shared = {u: d for u, d in v_units.items() if len(d) >= 2}
    vu = [list(d.values()) for d in v_shared.values()]
    assert rep.verdict.level == "ordinal" and rep.verdict.n_items == len(vu)
    ordinal = kripp_alpha(vu, 3, "ordinal")
    assert rep.verdict.krippendorff_alpha.value == pytest.approx(ordinal, abs=1e-9)
    assert abs(ordinal - kripp_alpha(vu, 3, "nominal")) > 1e-6   # the level matters on these data
    assert rep.verdict.percent_agreement.value == pytest.approx(percent(vu), abs=1e-12)
    vfeats = sorted({feature_of[u] for u in v_shared}, key=str)
    counts = cluster_counts(len(vfeats), 300, 5)
    reps = []
    for row in counts:
        mult = dict(zip(vfeats, row))
        res = [list(d.values()) for u, d in v_shared.items() for _ in range(int(mult[feature_of[u]]))]
        reps.append(kripp_alpha(res, 3, "ordinal"))
    jack = [kripp_alpha([list(d.values()) for u, d in v_shared.items() if feature_of[u] != out], 3, "ordinal")
            for out in vfeats]
    lo, hi = bca(rep.verdict.krippendorff_alpha.value, reps, jack)
    assert rep.verdict.krippendorff_alpha.ci == pytest.approx([lo, hi], abs=1e-9)

    # --- pairwise Cohen's kappa
    for pk in rep.tier.pairwise_kappa:
        both = [u for u in tier_units.values() if pk.a in u and pk.b in u]
        x, y = [u[pk.a] for u in both], [u[pk.b] for u in both]
        assert pk.kappa.n_items == len(both)
        assert pk.kappa.value == pytest.approx(kappa(x, y, 4, linear=False), abs=1e-9)
        assert pk.percent_agreement.value == pytest.approx(np.mean(np.array(x) == np.array(y)), abs=1e-12)
    for pk in rep.verdict.pairwise_kappa:
        both = [u for u in v_units.values() if pk.a in u and pk.b in u]
        x, y = [u[pk.a] for u in both], [u[pk.b] for u in both]
        assert pk.kappa.value == pytest.approx(kappa(x, y, 3, linear=True), abs=1e-9)
    assert len(rep.tier.pairwise_kappa) == 3
