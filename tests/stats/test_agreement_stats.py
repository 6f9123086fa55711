"""Agreement statistics: published worked examples, the store path, degenerate inputs."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score, roc_auc_score

from saegold.engine.stats import agreement
from saegold.engine.stats.measures import (alpha, fleiss, kappa, kappa_from_confusions, weighted_auroc,
                                   weighted_confusions)

NA = np.nan

# Krippendorff, K. (2011). "Computing Krippendorff's Alpha-Reliability." Annenberg School for
# Communication, University of Pennsylvania, Departmental Papers 43, section C ("nominal data,
# any number of observers, missing data"): 4 observers x 12 units, values 1..5, with missing
# values.  Published: nominal alpha = 0.743; ordinal alpha = 0.815 for the same data (also
# quoted in the docs of the `krippendorff` package, from the same paper, p. 8).
KRIPP_2011 = np.array([
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NA, NA, NA],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NA, 3],
    [NA, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NA],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NA],
])

# Krippendorff's alpha, Wikipedia "A computational example" (3 coders, 15 units, values 1..4,
# missing data): nominal alpha = 0.691.  Four values, so it fits the four tiers exactly.
WIKI_ALPHA = [
    [NA, NA, NA, NA, NA, 3, 4, 1, 2, 1, 1, 3, 3, NA, 3],
    [1, NA, 2, 1, 3, 3, 4, 3, NA, NA, NA, NA, NA, NA, NA],
    [NA, NA, 2, 1, 3, 4, 4, NA, 2, 1, 1, 3, 3, NA, 4],
]

# Fleiss' kappa worked example (Wikipedia "Fleiss' kappa", 10 subjects x 14 raters x 5
# categories; published kappa = 0.210).
FLEISS_TABLE = np.array([
    [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
])


def test_krippendorff_published_nominal_and_ordinal():
    codes = KRIPP_2011 - 1
    nominal, _ = alpha(codes, "nominal", 5)
    ordinal, _ = alpha(codes, "ordinal", 5)
    assert round(nominal, 3) == 0.743
    assert round(ordinal, 3) == 0.815


def test_cohen_kappa_textbook():
    # Wikipedia "Cohen's kappa", worked example: 50 proposals, yes/yes 20, yes/no 5, no/yes 10,
    # no/no 15 -> p_o = 0.7, p_e = 0.5, kappa = 0.4.
    a = [1] * 20 + [1] * 5 + [0] * 10 + [0] * 15
    b = [1] * 20 + [0] * 5 + [1] * 10 + [0] * 15
    value, _ = kappa(a, b, 2)
    assert value == pytest.approx(0.4)


def test_fleiss_kappa_textbook():
    value, _ = fleiss(FLEISS_TABLE)
    assert round(value, 3) == 0.210


def test_vectorised_forms_match_libraries():
    rng = np.random.default_rng(3)
    x, y = rng.integers(0, 3, 60), rng.integers(0, 3, 60)
    w = rng.integers(0, 4, size=(5, 60)).astype(float)
    for weights in (None, "linear"):
        reps = kappa_from_confusions(weighted_confusions(x, y, 3, w), weights)
        for b in range(5):
            assert reps[b] == pytest.approx(cohen_kappa_score(x, y, labels=[0, 1, 2], weights=weights,
                                                              sample_weight=w[b]))
    scores = rng.integers(0, 6, 60) / 5  # ties on purpose
    pos = rng.random(60) < 0.4
    aucs = weighted_auroc(scores, pos, w)
    for b in range(5):
        assert aucs[b] == pytest.approx(roc_auc_score(pos, scores, sample_weight=w[b]))


def test_alpha_through_the_store_matches_published(build):
    fids = build.features(15)
    for a, row in zip(("ann", "bob", "cat"), WIKI_ALPHA):
        for fid, v in zip(fids, row):
            if not math.isnan(v):
                build.judge(a, fid, tier=("input", "output", "cross", "obscure")[int(v) - 1])
    build.commit()
    rep = agreement.compute(build.project, n_boot=200, seed=1, min_items=3)
    assert round(rep.tier.krippendorff_alpha.value, 3) == 0.691
    assert rep.tier.krippendorff_alpha.n_items == 12  # units with 2+ ratings
    lo, hi = rep.tier.krippendorff_alpha.ci
    assert lo <= rep.tier.krippendorff_alpha.value <= hi
    # percent agreement over pairs on shared items, counted by hand from the table.
    # 16 annotator pairs on the 12 shared units, 12 of them agree.
    assert rep.tier.percent_agreement.value == pytest.approx(12 / 16)
    pair = {(p.a, p.b): p for p in rep.tier.pairwise_kappa}
    assert pair[("ann", "bob")].kappa.n_items == 3  # units 6, 7, 8
    assert pair[("ann", "bob")].percent_agreement.value == pytest.approx(2 / 3)
    json.dumps(rep.to_dict(), allow_nan=False)


def _ordinal_project(build, n=30, noisy="cat"):
    """Two careful annotators who agree, a third who answers at random and fast."""
    fids = build.features(n, scores=[(0.9 if i % 2 else 0.1, 0.5 if i % 3 else 0.0) for i in range(n)])
    rng = np.random.default_rng(0)
    tiers = ("input", "output", "cross", "obscure")
    for i, fid in enumerate(fids):
        u = build.label(fid, "m1", f"label {i}")
        truth_t, truth_v = tiers[i % 4], ("correct", "partly", "wrong")[i % 3]
        build.judge("ann", fid, tier=truth_t, verdicts={u: truth_v}, seconds=30 + i % 5)
        build.judge("bob", fid, tier=truth_t, verdicts={u: truth_v}, seconds=25 + i % 7)
        build.judge(noisy, fid, tier=tiers[rng.integers(4)],
                    verdicts={u: ("correct", "partly", "wrong")[rng.integers(3)]}, seconds=1.0)
    build.commit()
    return fids


def test_outlying_and_fast_annotator_stand_out(build):
    _ordinal_project(build)
    rep = agreement.compute(build.project, n_boot=200, seed=0)
    per = {s.name: s for s in rep.per_annotator}
    assert per["ann"].n_judged == 30 and per["ann"].flags == []
    assert any(f.startswith("very fast") for f in per["cat"].flags)
    assert any(f.startswith("outlying on tier") for f in per["cat"].flags)
    assert per["cat"].tier_agreement_with_rest.value < per["ann"].tier_agreement_with_rest.value
    pair = {(p.a, p.b): p for p in rep.verdict.pairwise_kappa}
    assert pair[("ann", "bob")].kappa.value == pytest.approx(1.0)
    assert rep.verdict.level == "ordinal" and rep.verdict.kappa_weights == "linear"
    assert 0 < rep.verdict.krippendorff_alpha.value < 1
    assert rep.tier.fleiss_kappa.value is not None and rep.tier.fleiss_kappa.n_items == 30
    # Same seed, same CI; a different seed moves it.
    again = agreement.compute(build.project, n_boot=200, seed=0)
    assert again.tier.krippendorff_alpha.ci == rep.tier.krippendorff_alpha.ci
    other = agreement.compute(build.project, n_boot=200, seed=5)
    assert other.tier.krippendorff_alpha.ci != rep.tier.krippendorff_alpha.ci


def test_tier_vs_category(build):
    fids = build.features(12, scores=[(0.9, 0.5), (0.9, 0.0), (0.1, 0.5), (0.1, 0.0)] * 3)
    # auto categories: cross, input, output, obscure (thresholds 0.5 / 0.01)
    for i, fid in enumerate(fids):
        auto = ("cross", "input", "output", "obscure")[i % 4]
        build.judge("ann", fid, tier=auto if i < 9 else "obscure")
    build.commit()
    rep = agreement.compute(build.project, n_boot=100)
    vs = rep.tier_vs_category
    assert vs.n_judgments == 12
    assert sum(map(sum, vs.matrix)) == 12
    assert vs.percent_agreement.value == pytest.approx(10 / 12)  # feature 11 is obscure anyway
    assert vs.matrix[3][0] == 1 and vs.matrix[3][1] == 1  # human obscure; auto input, output
    assert vs.kappa.value is not None and vs.kappa.value < 1


@pytest.mark.parametrize("case", ["empty", "one_annotator", "no_overlap", "one_value"])
def test_degenerate_inputs_never_nan(build, case):
    fids = build.features(8)
    if case == "one_annotator":
        for fid in fids:
            build.judge("ann", fid, tier="input")
    elif case == "no_overlap":
        for i, fid in enumerate(fids):
            build.judge("ann" if i % 2 else "bob", fid, tier="input")
    elif case == "one_value":
        for fid in fids:
            build.judge("ann", fid, tier="cross")
            build.judge("bob", fid, tier="cross")
    build.commit()
    rep = agreement.compute(build.project, n_boot=50)
    text = json.dumps(rep.to_dict(), allow_nan=False)  # raises on NaN
    assert "NaN" not in text
    a = rep.tier.krippendorff_alpha
    assert a.value is None and a.ci is None
    if case == "one_value":
        assert "same value" in a.reason and a.n_items == 8
        assert rep.tier.percent_agreement.value == 1.0
    else:
        assert "too little overlap: 0 items" in a.reason
        assert rep.tier.percent_agreement.value is None
