"""Agreement between annotators (tier: nominal; label verdicts: ordinal), per-annotator
figures, and the human tier against the automatic category.

Choices, stated once:

- Lead adjudications are not an annotator's independent judgment and are left out.
- A tier item is a feature; a verdict item is one candidate label.  Bootstrap CIs resample
  features (for verdicts all labels of a resampled feature come along, since they were
  judged together), seeded, 95% BCa intervals (bias-corrected and accelerated, the
  acceleration from a leave-one-feature-out jackknife) with the small-sample expansion of
  :func:`resample.bca_ci`: plain percentile intervals covered only 91% at 30 items
  (tests/validity/stats_checks.py agreement).
- Pairwise Cohen's kappa is unweighted for tiers and linearly weighted for verdicts: on the
  ordinal scale wrong < partly < correct, "partly vs correct" is half the disagreement of
  "wrong vs correct", which linear weights say and unweighted kappa ignores.
- Percent agreement pools every pair of annotators on every shared item.
- Human tier vs automatic category counts each (feature, annotator) judgment once.
"""
from __future__ import annotations

import itertools
import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from saegold.engine.progress import Progress, null_progress
from saegold.store.db import Project
from saegold.store.judgments import TIERS, FeatureJudgment

from . import data
from .defaults import DEFAULT_MIN_ITEMS
from .measures import Level, alpha, fleiss, kappa, kappa_from_confusions, weighted_confusions
from .resample import (DEFAULT_BOOT, DEFAULT_SEED, Estimate, bootstrap_loop, cluster_counts,
                       estimate, jackknife_counts)

CI_METHOD = "BCa bootstrap over features (bias-corrected and accelerated, small-sample expanded)"

VERDICT_ORDER = ("wrong", "partly", "correct")  # ordinal codes 0 < 1 < 2
#: An annotator whose median time per feature is under this share of the group's median
#: (or under FAST_SECONDS outright) is flagged as very fast.
FAST_SHARE = 1 / 3
FAST_SECONDS = 3.0
#: An annotator who agrees with the others this much less than they agree among themselves
#: is flagged as outlying.
OUTLIER_GAP = 0.2


@dataclass
class PairKappa:
    a: str
    b: str
    kappa: Estimate
    percent_agreement: Estimate


@dataclass
class VariableAgreement:
    """Agreement on one variable (tier or verdict)."""

    variable: str
    level: Level  # nominal | ordinal
    n_items: int  # items judged by two or more annotators
    n_ratings: int
    krippendorff_alpha: Estimate
    percent_agreement: Estimate
    pairwise_kappa: list[PairKappa]
    kappa_weights: str | None
    fleiss_kappa: Estimate | None = None
    values: list[str] = field(default_factory=list)


@dataclass
class AnnotatorStats:
    name: str
    n_judged: int
    n_skipped: int
    n_flagged: int
    median_seconds: float | None
    tier_agreement_with_rest: Estimate
    verdict_agreement_with_rest: Estimate
    flags: list[str] = field(default_factory=list)


@dataclass
class CategoryComparison:
    """Human tier (rows) against the automatic category (columns)."""

    values: list[str]
    matrix: list[list[int]]
    n_judgments: int
    n_features: int
    kappa: Estimate
    percent_agreement: Estimate


@dataclass
class AgreementReport:
    n_features_judged: int
    n_annotators: int
    annotators: list[str]
    raters_per_feature: dict[str, int]  # "2" -> number of features judged by 2 annotators
    n_adjudications: int
    tier: VariableAgreement
    verdict: VariableAgreement
    per_annotator: list[AnnotatorStats]
    tier_vs_category: CategoryComparison
    settings: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- ratings ---------------------------------------------------------------------------------

@dataclass
class Ratings:
    """Codes per annotator (rows) and item (columns), NaN = not rated; clusters per item."""

    annotators: list[str]
    items: list[Any]
    clusters: np.ndarray
    matrix: np.ndarray
    n_values: int

    def shared(self) -> Ratings:
        keep = np.sum(~np.isnan(self.matrix), axis=0) >= 2 if self.items else np.zeros(0, bool)
        _, clusters = np.unique(self.clusters[keep], return_inverse=True)
        return Ratings(self.annotators, [i for i, k in zip(self.items, keep) if k],
                       clusters.astype(int), self.matrix[:, keep], self.n_values)

    @property
    def n_clusters(self) -> int:
        return int(self.clusters.max()) + 1 if len(self.clusters) else 0


def tier_ratings(judged: list[FeatureJudgment]) -> Ratings:
    cells = {(j.feature_id, j.annotator): TIERS.index(j.tier) for j in judged if j.tier in TIERS}
    return _ratings(cells, {fid: fid for fid, _ in cells}, len(TIERS))


def verdict_ratings(judged: list[FeatureJudgment]) -> Ratings:
    cells, cluster_of = {}, {}
    for j in judged:
        for label_uuid, verdict in j.verdicts.items():
            if verdict in VERDICT_ORDER:
                cells[(label_uuid, j.annotator)] = VERDICT_ORDER.index(verdict)
                cluster_of[label_uuid] = j.feature_id
    return _ratings(cells, cluster_of, len(VERDICT_ORDER))


def _ratings(cells: dict[tuple[Any, str], int], cluster_of: dict[Any, Any], n_values: int) -> Ratings:
    annotators = sorted({a for _, a in cells})
    items = sorted({i for i, _ in cells}, key=lambda x: (str(cluster_of[x]), str(x)))
    m = np.full((len(annotators), len(items)), np.nan)
    row = {a: r for r, a in enumerate(annotators)}
    col = {i: c for c, i in enumerate(items)}
    for (item, a), code in cells.items():
        m[row[a], col[item]] = code
    _, clusters = np.unique([str(cluster_of[i]) for i in items], return_inverse=True) if items else (None, np.zeros(0))
    return Ratings(annotators, items, np.asarray(clusters, dtype=int), m, n_values)


# -- measures on ratings -----------------------------------------------------------------------

def _pair_counts(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per item: agreeing annotator pairs and all annotator pairs."""
    agree = np.zeros(m.shape[1])
    total = np.zeros(m.shape[1])
    for c in range(m.shape[1]):
        col = m[:, c][~np.isnan(m[:, c])].astype(int)
        counts = np.bincount(col) if col.size else np.zeros(0)
        agree[c] = float((counts * (counts - 1) / 2).sum())
        total[c] = col.size * (col.size - 1) / 2
    return agree, total


def _percent(agree: np.ndarray, total: np.ndarray, clusters: np.ndarray, counts: np.ndarray,
             n_items: int) -> Estimate:
    if total.sum() == 0:
        return Estimate.missing(n_items, "no two annotators judged the same item")
    w = counts[:, clusters]
    jw = jackknife_counts(counts.shape[1])[:, clusters]
    with np.errstate(invalid="ignore", divide="ignore"):
        reps = (w @ agree) / (w @ total)
        jk = (jw @ agree) / (jw @ total)
    return estimate(agree.sum() / total.sum(), n_items, reps, jackknife=jk)


def _too_little(n: int, need: int, what: str = "items judged by two or more annotators") -> str:
    return f"too little overlap: {n} {what} (need at least {need})"


def variable_agreement(r: Ratings, *, variable: str, level: Level, values: list[str],
                       weights: str | None, n_boot: int, seed: int, min_items: int,
                       with_fleiss: bool = False) -> VariableAgreement:
    """Alpha, percent agreement, pairwise kappa (and optionally Fleiss' kappa) on ``r``."""
    s = r.shared()
    n = len(s.items)
    n_ratings = int(np.sum(~np.isnan(r.matrix)))
    if n < min_items:
        short = _too_little(n, min_items)
        return VariableAgreement(variable, level, n, n_ratings, Estimate.missing(n, short),
                                 Estimate.missing(n, short), _pairs(r, weights, n_boot, seed, min_items),
                                 weights, Estimate.missing(n, short) if with_fleiss else None, values)
    counts = cluster_counts(s.n_clusters, n_boot, seed)
    value, why = alpha(s.matrix, level, s.n_values)

    def alpha_rep(row: np.ndarray) -> float | None:
        return alpha(np.repeat(s.matrix, row[s.clusters].astype(int), axis=1), level, s.n_values)[0]

    alpha_est = estimate(value, n, bootstrap_loop(alpha_rep, counts) if value is not None else None, why,
                         jackknife=bootstrap_loop(alpha_rep, jackknife_counts(s.n_clusters))
                         if value is not None else None)
    agree, total = _pair_counts(s.matrix)
    pct = _percent(agree, total, s.clusters, counts, n)
    fl = _fleiss(s, counts) if with_fleiss else None
    return VariableAgreement(variable, level, n, n_ratings, alpha_est, pct,
                             _pairs(r, weights, n_boot, seed, min_items), weights, fl, values)


def _fleiss(s: Ratings, counts: np.ndarray) -> Estimate:
    """Fleiss' kappa on the items rated by the most common number of annotators."""
    per_item = np.sum(~np.isnan(s.matrix), axis=0)
    k = Counter(per_item.tolist()).most_common(1)[0][0]
    keep = per_item == k
    table = np.array([np.bincount(s.matrix[:, c][~np.isnan(s.matrix[:, c])].astype(int), minlength=s.n_values)
                      for c in np.flatnonzero(keep)])
    value, why = fleiss(table)
    n = int(keep.sum())
    if value is None:
        return Estimate.missing(n, why or "undefined")
    clusters = s.clusters[keep]

    def rep(row: np.ndarray) -> float | None:
        return fleiss(np.repeat(table, row[clusters].astype(int), axis=0))[0]

    est = estimate(value, n, bootstrap_loop(rep, counts),
                   jackknife=bootstrap_loop(rep, jackknife_counts(counts.shape[1])))
    note = f"on the {n} items judged by exactly {k} annotators"
    est.reason = f"{note}; {est.reason}" if est.reason else note
    return est


def _pairs(r: Ratings, weights: str | None, n_boot: int, seed: int, min_items: int) -> list[PairKappa]:
    out = []
    for (ia, a), (ib, b) in itertools.combinations(enumerate(r.annotators), 2):
        both = ~np.isnan(r.matrix[ia]) & ~np.isnan(r.matrix[ib])
        n = int(both.sum())
        if n < min_items:
            short = _too_little(n, min_items, "shared items")
            out.append(PairKappa(a, b, Estimate.missing(n, short), Estimate.missing(n, short)))
            continue
        x, y = r.matrix[ia, both].astype(int), r.matrix[ib, both].astype(int)
        _, clusters = np.unique(r.clusters[both], return_inverse=True)
        counts = cluster_counts(int(clusters.max()) + 1, n_boot, seed + 1 + len(out))
        w = counts[:, clusters]
        jw = jackknife_counts(counts.shape[1])[:, clusters]
        value, why = kappa(x, y, r.n_values, weights)
        reps = kappa_from_confusions(weighted_confusions(x, y, r.n_values, w), weights) if value is not None else None
        jk = kappa_from_confusions(weighted_confusions(x, y, r.n_values, jw), weights) if value is not None else None
        same = (x == y).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            pct = estimate(same.mean(), n, (w @ same) / w.sum(axis=1), jackknife=(jw @ same) / jw.sum(axis=1))
        out.append(PairKappa(a, b, estimate(value, n, reps, why, jackknife=jk), pct))
    return out


# -- per annotator -----------------------------------------------------------------------------

def _agreement_with_rest(r: Ratings, who: str, min_items: int) -> tuple[Estimate, float | None]:
    """(share of pairs (who, other) that agree on shared items, agreement among the others)."""
    if who not in r.annotators:
        return Estimate.missing(0, "judged nothing of this kind"), None
    i = r.annotators.index(who)
    mine = r.matrix[i]
    others = np.delete(r.matrix, i, axis=0)
    rated = ~np.isnan(mine) & (np.sum(~np.isnan(others), axis=0) >= 1)
    n = int(rated.sum())
    if n < min_items:
        est = Estimate.missing(n, _too_little(n, min_items, "items shared with another annotator"))
    else:
        agree = np.nansum(others[:, rated] == mine[rated], axis=0).sum()
        total = np.sum(~np.isnan(others[:, rated]))
        est = Estimate(float(agree / total), n, None, None)
    agree_o, total_o = _pair_counts(others) if others.size else (np.zeros(0), np.zeros(0))
    shared_o = int((total_o > 0).sum())
    rest = float(agree_o.sum() / total_o.sum()) if shared_o >= min_items else None
    return est, rest


def annotator_stats(judged: list[FeatureJudgment], tiers: Ratings, verdicts: Ratings,
                    min_items: int) -> list[AnnotatorStats]:
    by_name: dict[str, list[FeatureJudgment]] = {}
    for j in judged:
        by_name.setdefault(j.annotator, []).append(j)
    stats = []
    for name, js in sorted(by_name.items()):
        done = [j for j in js if j.judged]
        times = [j.seconds_spent for j in done if j.seconds_spent and j.seconds_spent > 0]
        t_est, t_rest = _agreement_with_rest(tiers, name, min_items)
        v_est, v_rest = _agreement_with_rest(verdicts, name, min_items)
        flags = []
        for label, est, rest in (("tier", t_est, t_rest), ("verdict", v_est, v_rest)):
            if est.value is not None and rest is not None and est.value < rest - OUTLIER_GAP:
                flags.append(f"outlying on {label}: agrees with the others {est.value:.0%} of the time, "
                             f"they agree among themselves {rest:.0%}")
        stats.append(AnnotatorStats(
            name, len(done), sum(j.skipped for j in js), sum(bool(j.flags) for j in js),
            float(statistics.median(times)) if times else None, t_est, v_est, flags))
    medians = [s.median_seconds for s in stats if s.median_seconds is not None]
    group = statistics.median(medians) if medians else None
    for s in stats:
        if s.median_seconds is None:
            continue
        if s.median_seconds < FAST_SECONDS:
            s.flags.insert(0, f"very fast: median {s.median_seconds:.1f} s per feature")
        elif group is not None and len(medians) >= 2 and s.median_seconds < FAST_SHARE * group:
            s.flags.insert(0, f"very fast: median {s.median_seconds:.1f} s per feature, "
                              f"group median {group:.1f} s")
    return stats


# -- human vs machine --------------------------------------------------------------------------

def tier_vs_category(judged: list[FeatureJudgment], feats: dict[int, data.FeatureInfo], *,
                     n_boot: int, seed: int, min_items: int) -> CategoryComparison:
    rows = [(TIERS.index(j.tier), TIERS.index(feats[j.feature_id].category), j.feature_id)
            for j in judged
            if j.tier in TIERS and j.feature_id in feats and feats[j.feature_id].category in TIERS]
    k = len(TIERS)
    matrix = np.zeros((k, k), dtype=int)
    for human, auto, _ in rows:
        matrix[human, auto] += 1
    n_feat = len({f for _, _, f in rows})
    if len(rows) < min_items:
        short = _too_little(len(rows), min_items, "judged features with an automatic category")
        return CategoryComparison(list(TIERS), matrix.tolist(), len(rows), n_feat,
                                  Estimate.missing(len(rows), short), Estimate.missing(len(rows), short))
    h = np.array([r[0] for r in rows])
    c = np.array([r[1] for r in rows])
    _, clusters = np.unique([r[2] for r in rows], return_inverse=True)
    w = cluster_counts(int(clusters.max()) + 1, n_boot, seed)[:, clusters]
    jw = jackknife_counts(int(clusters.max()) + 1)[:, clusters]
    value, why = kappa(h, c, k)
    reps = kappa_from_confusions(weighted_confusions(h, c, k, w)) if value is not None else None
    jk = kappa_from_confusions(weighted_confusions(h, c, k, jw)) if value is not None else None
    same = (h == c).astype(float)
    pct = estimate(same.mean(), len(rows), (w @ same) / w.sum(axis=1), jackknife=(jw @ same) / jw.sum(axis=1))
    return CategoryComparison(list(TIERS), matrix.tolist(), len(rows), n_feat,
                              estimate(value, len(rows), reps, why, jackknife=jk), pct)


# -- entry point -------------------------------------------------------------------------------

def compute(project: Project, *, n_boot: int = DEFAULT_BOOT, seed: int = DEFAULT_SEED,
            min_items: int = DEFAULT_MIN_ITEMS, progress: Progress = null_progress) -> AgreementReport:
    """Agreement figures for the project (JSON-serialisable via ``to_dict``)."""
    judged, adjudications = data.judgments(project)
    feats = data.features(project)
    return agreement_from(judged, feats, n_adjudications=len(adjudications), n_boot=n_boot,
                          seed=seed, min_items=min_items, progress=progress)


def agreement_from(judged: list[FeatureJudgment], feats: dict[int, data.FeatureInfo], *,
                   n_adjudications: int = 0, n_boot: int = DEFAULT_BOOT, seed: int = DEFAULT_SEED,
                   min_items: int = DEFAULT_MIN_ITEMS, progress: Progress = null_progress) -> AgreementReport:
    stage = "agreement"
    progress(stage, 0, 4)
    tiers, verdicts = tier_ratings(judged), verdict_ratings(judged)
    tier = variable_agreement(tiers, variable="tier", level="nominal", values=list(TIERS), weights=None,
                              n_boot=n_boot, seed=seed, min_items=min_items, with_fleiss=True)
    progress(stage, 1, 4)
    verdict = variable_agreement(verdicts, variable="verdict", level="ordinal", values=list(VERDICT_ORDER),
                                 weights="linear", n_boot=n_boot, seed=seed, min_items=min_items)
    progress(stage, 2, 4)
    per = annotator_stats(judged, tiers, verdicts, min_items)
    progress(stage, 3, 4)
    vs = tier_vs_category(judged, feats, n_boot=n_boot, seed=seed, min_items=min_items)
    progress(stage, 4, 4)
    raters = Counter(Counter(j.feature_id for j in judged if j.judged).values())
    annotators = sorted({j.annotator for j in judged})
    notes = []
    if n_adjudications:
        notes.append(f"{n_adjudications} lead adjudications are left out of inter-annotator agreement")
    if len(annotators) < 2:
        notes.append(f"only {len(annotators)} annotator(s): agreement between annotators needs two or more")
    return AgreementReport(
        n_features_judged=len({j.feature_id for j in judged if j.judged}),
        n_annotators=len(annotators), annotators=annotators,
        raters_per_feature={str(k): v for k, v in sorted(raters.items())},
        n_adjudications=n_adjudications, tier=tier, verdict=verdict, per_annotator=per,
        tier_vs_category=vs,
        settings={"n_boot": n_boot, "seed": seed, "min_items": min_items, "ci_level": 0.95,
                  "ci_method": CI_METHOD},
        notes=notes,
    )
