"""Calibration of the automatic benchmarks against human label verdicts.

For each benchmark (detection, fuzzing, embedding, and any other in the project) and each
automatic category (plus "all"):

- AUROC of the benchmark score for human "correct" (partly counted as negative) and for
  "correct or partly" (partly counted as positive), each with a seeded bootstrap CI;
- Spearman correlation of the score with the ordinal verdict (wrong 0 < partly 1 < correct 2),
  with a label-permutation p-value (see :func:`spearman_permutation`);
- a calibration map score -> P(human says correct) (see :mod:`calibration_map`);
- the true-vs-shuffled control next to the human verdict rates.

Rows: every (label, annotator) verdict on a label that has a benchmark score.  Keeping each
annotator's verdict (rather than a majority) estimates P(a human says correct), keeps
disagreement as the noise it is, and needs no tie rule; CIs and CV folds resample or split
by label, so one label's rows always stay together.  Lead adjudications are left out.
"""
from __future__ import annotations

import warnings
from collections import Counter, defaultdict
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from saegold.engine.progress import Progress, null_progress
from saegold.store.benchmarks import BENCHMARKS
from saegold.store.db import Project
from saegold.store.judgments import TIERS

from . import active, data, ppi, thresholds
from .ppi import TierShare
from .defaults import DEFAULT_MIN_ROWS
from .calibration_map import CHOICE_RULE, CalibrationMap, fit_calibration
from .measures import auroc, weighted_auroc
from .resample import DEFAULT_BOOT, DEFAULT_SEED, Estimate, cluster_counts, estimate

# Chance of the AUROC of a benchmark score for the human verdict -- 0.5 whatever the benchmark's
# own chance level (0.5 for detection / fuzzing / embedding, 1/3 for steering; see
# engine.bench.CHANCE), since an AUROC compares scores, not a score with its chance level.
CHANCE = 0.5
VERDICT_CODE = {"wrong": 0, "partly": 1, "correct": 2}


#: One-sided level of the "tells true labels from shuffled ones" call.
SHUFFLED_LEVEL = 0.025
#: Up to this many labels the sign-flip test enumerates every flip (2^n); above, it draws
#: SIGN_FLIPS random ones.
EXACT_FLIPS_UP_TO = 16
SIGN_FLIPS = 20_000
SHUFFLED_RULE = (f"true labels are told from shuffled ones when a one-sided paired sign-flip permutation "
                 f"test of mean(true - shuffled) > 0 over labels gives p <= {SHUFFLED_LEVEL} (exact up to "
                 f"{EXACT_FLIPS_UP_TO} labels, {SIGN_FLIPS:,} random flips above)")


@dataclass
class ShuffledControl:
    n_labels: int  # labels of the category scored with both a true and a shuffled label (judged or not)
    mean_true: float | None
    mean_shuffled: float | None
    gap: Estimate  # mean(true - shuffled) over those labels
    auroc: Estimate  # separability of true from shuffled scores
    p_value: float | None = None  # one-sided paired sign-flip test of gap > 0
    tells_apart: bool = False  # p_value <= SHUFFLED_LEVEL
    rule: str = SHUFFLED_RULE


@dataclass
class Cell:
    benchmark: str
    category: str  # 'all' or an automatic category
    n_labels: int
    n_rows: int  # (label, annotator) verdicts
    verdicts: dict[str, int]
    human_correct_rate: float | None
    human_correct_or_partly_rate: float | None
    mean_score: float | None
    auroc_correct: Estimate  # positive: correct; partly counts as negative
    auroc_correct_or_partly: Estimate  # positive: correct or partly
    spearman: Estimate
    spearman_p: float | None
    calibration: CalibrationMap
    shuffled: ShuffledControl
    conclusion: str = ""
    auroc_p: float | None = None  # one-sided label-permutation p of AUROC(correct) > 0.5
    auroc_p_below: float | None = None  # one-sided label-permutation p of AUROC(correct) < 0.5
    # The judged labels' own score CIs (LABEL_CI_RULE): mean half-width, and the reliability
    # 1 - mean(se^2) / var(score) over labels (se = half-width / 1.96); None without CIs.
    label_ci_halfwidth: float | None = None
    reliability: float | None = None
    unverified: int = 0  # judged labels whose score used negatives no model verified


@dataclass
class BenchmarkSummary:
    benchmark: str
    n_true_scores: int
    n_shuffled_scores: int
    n_unscored: int  # score rows with no value (nothing could be scored)
    items_scored: int
    parse_failures: int
    # true-label scores: the mean half-width of each one's own 95% CI (stored with the score),
    # and how many of them were judged on negatives no model verified
    label_ci_halfwidth: float | None = None
    n_with_ci: int = 0
    unverified: int = 0


@dataclass
class MethodSummary:
    """How humans judge one label method's labels, next to what the benchmarks say of them."""

    method: str
    n_labels: int  # labels with at least one verdict
    n_rows: int
    correct: Estimate  # share of verdicts 'correct' (CI over labels)
    correct_or_partly: Estimate
    preferred: int  # times an annotator preferred one of its labels
    mean_score: dict[str, float | None]  # benchmark -> mean true-label score of its judged labels


@dataclass
class CalibrationReport:
    benchmarks: list[BenchmarkSummary]
    cells: list[Cell]
    methods: list[MethodSummary]
    thresholds: thresholds.ThresholdFit
    findings: list[str]
    n_verdicts: int
    settings: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    # Per label method x category: share of labels humans call correct over all live labels
    # (prediction-powered, next to the judged-only estimate); see engine.stats.ppi.
    ppi: list[ppi.PPIEstimate] = field(default_factory=list)
    # Per human tier x category: share of all features humans would put in the tier (same estimators).
    tiers: list[TierShare] = field(default_factory=list)   # (the field 'ppi' above hides the module here)
    # The 'all' estimates reweighted by the active queue's draw probabilities (engine.stats.active).
    active: list[active.ActiveRow] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def cell(self, benchmark: str, category: str = "all") -> Cell | None:
        return next((c for c in self.cells if c.benchmark == benchmark and c.category == category), None)


#: One-sided level of each per-cell call ('predicts' and 'anti-predicts' together: 5% two-sided).
PREDICTS_LEVEL = 0.025
#: Fewest label permutations behind that call, whatever --bootstrap says: the smallest p is
#: 1 / (1 + permutations), which must reach 0.025 / 4 (the best-predictor rule over 4 benchmarks).
MIN_PERMUTATIONS = 1000
PREDICTS_RULE = (f"'predicts' / 'anti-predicts' when a one-sided label-permutation test of AUROC > 0.5 / "
                 f"< 0.5 gives p <= {PREDICTS_LEVEL} (the labels' scores permuted among labels, each label's "
                 f"verdicts kept together; as many permutations as bootstrap resamples, at least "
                 f"{MIN_PERMUTATIONS}); the 95% CI shown "
                 f"with it is a percentile bootstrap over labels, which is not the test (deciding by the CI "
                 f"alone fired in 4-5% of null worlds at 10 labels for a 2.5% call)")
BEST_RULE = ("'shown to predict humans' when the best benchmark's one-sided label-permutation p of AUROC > 0.5 is at "
             "most 0.025 divided by the number of benchmarks compared (Bonferroni: picking the best of several "
             "must not raise the false-positive rate)")


Z95 = 1.959963984540054
LABEL_CI_RULE = (
    "each label's score carries its own 95% CI (Wilson or Agresti-Caffo over its examples); reported "
    "as the mean half-width and as the reliability 1 - mean(se^2) / var(scores) over the judged labels "
    "(se = half-width / 1.96; the share of the spread of scores between labels that is not per-label "
    "noise; no criterion, human verdicts included, can correlate with the scores above about its "
    "square root; approximate: half-width / 1.96 stands for the standard error, which with Wilson-type "
    "intervals understates the noise a little near 0.5, so a pure-noise benchmark reads about 0.1, "
    "not 0, in seeded simulations).  The AUROC, Spearman and their tests are NOT weighted by these CIs: the labels of "
    "one benchmark run are judged on the same number of examples, so their CIs differ mostly through "
    "the score itself (Wilson-type widths shrink toward 0 and 1), and inverse-variance weights would "
    "weight a label by how extreme its score is -- a weight that depends on the score changes what "
    "the AUROC measures; unweighted, the label-permutation tests stay exact")


def label_noise(values: np.ndarray, lows: np.ndarray, highs: np.ndarray) -> tuple[float | None, float | None]:
    """(mean half-width of the labels' own 95% CIs, reliability 1 - mean(se^2) / var(values)).

    ``values``/``lows``/``highs``: one per label, NaN where a label has no CI (left out).
    Reliability needs 3 labels with a CI and scores that vary; it is clipped to [0, 1] (noise
    estimates above the observed spread: the scores are all noise as far as can be told)."""
    ok = np.isfinite(values) & np.isfinite(lows) & np.isfinite(highs)
    if not ok.any():
        return None, None
    half = (highs[ok] - lows[ok]) / 2
    width = float(half.mean())
    if ok.sum() < 3:
        return width, None
    spread = float(np.var(values[ok], ddof=1))
    if spread <= 0:
        return width, None
    noise = float(np.mean((half / Z95) ** 2))
    return width, float(min(1.0, max(0.0, 1.0 - noise / spread)))


def auroc_permutation(x: np.ndarray, pos: np.ndarray, groups: np.ndarray, n_perm: int, seed: int
                      ) -> tuple[float | None, float | None]:
    """One-sided label-permutation p-values of AUROC(x for ``pos``) > 0.5 and of < 0.5.

    Under the null (score unrelated to the verdicts) the labels' scores are exchangeable:
    each permutation gives every label another label's score, keeping a label's verdicts
    together (as :func:`spearman_permutation`).  p = (1 + #{perm AUROC at least as extreme})
    / (1 + n_perm), valid at any number of labels (with 4 labels no p reaches 0.025, which is
    right: 4! = 24 orders cannot show it at that level)."""
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0 or n_perm < 1:
        return None, None
    label_score = np.zeros(int(groups.max()) + 1)
    label_score[groups] = x
    rng = np.random.default_rng(seed)
    perms = np.argsort(rng.random((n_perm, len(label_score))), axis=1)
    ranks = _rank_rows(np.vstack([x[None, :], label_score[perms][:, groups]]))
    auc = (ranks[:, pos].sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)  # Mann-Whitney, ties half
    # The same formula on every row; 1e-12 absorbs summation-order rounding between equal values.
    above = (1 + np.sum(auc[1:] >= auc[0] - 1e-12)) / (1 + n_perm)
    below = (1 + np.sum(auc[1:] <= auc[0] + 1e-12)) / (1 + n_perm)
    return float(above), float(below)


def predicts(c: Cell) -> bool:
    """The PREDICTS_RULE, upper side: is the benchmark shown to predict human 'correct'?"""
    return c.auroc_correct.value is not None and c.auroc_p is not None and c.auroc_p <= PREDICTS_LEVEL


def anti_predicts(c: Cell) -> bool:
    return (c.auroc_correct.value is not None and c.auroc_p_below is not None
            and c.auroc_p_below <= PREDICTS_LEVEL)


def _conclusion(est: Estimate, p_above: float | None, p_below: float | None) -> str:
    """The worded per-cell call (PREDICTS_RULE) with the AUROC, its CI and the test's p."""
    if est.value is None:
        reason = est.reason or f"n={est.n_items}"
        return reason if reason.startswith("not enough data") else f"not enough data: {reason}"
    lead = f"AUROC {est.value:.2f}"
    span = f"{lead} [{est.ci[0]:.2f}, {est.ci[1]:.2f}]" if est.ci is not None else f"{lead} (no CI: {est.reason})"
    if p_above is None or p_below is None:
        return f"{span}; no permutation test (one class only); cannot tell it from chance"
    if p_above <= PREDICTS_LEVEL:
        return (f"predicts human 'correct': {span}, {est.value - CHANCE:+.2f} above chance "
                f"(one-sided label-permutation p={p_above:.2g} <= {PREDICTS_LEVEL})")
    if p_below <= PREDICTS_LEVEL:
        return (f"anti-predicts human 'correct': {span}, {est.value - CHANCE:+.2f} below chance "
                f"(one-sided label-permutation p={p_below:.2g} <= {PREDICTS_LEVEL})")
    return (f"indistinguishable from chance: {span} (one-sided label-permutation p={min(p_above, p_below):.2g} "
            f"for AUROC {'>' if p_above <= p_below else '<'} 0.5, needs <= {PREDICTS_LEVEL})")


def _auroc_est(x: np.ndarray, pos: np.ndarray, groups: np.ndarray, counts: np.ndarray,
               min_rows: int) -> Estimate:
    n = len(x)
    if n < min_rows:
        return Estimate.missing(n, f"not enough data (n={n}, need {min_rows})")
    value, why = auroc(x, pos)
    if value is None:
        return Estimate.missing(n, f"{why}, n={n}")
    return estimate(value, n, weighted_auroc(x, pos, counts[:, groups]))


def sign_flip_p(diff: np.ndarray, seed: int) -> float | None:
    """One-sided p of a paired sign-flip permutation test of mean(diff) > 0.

    Under the null (true and shuffled scores of a label exchangeable) each difference is as
    likely negated; the p counts the flips whose sum reaches the observed one, the identity
    included.  Exact (all 2^n flips) up to ``EXACT_FLIPS_UP_TO`` differences, where a
    bootstrap CI was too narrow (5.6% false calls at 10 labels for a 2.5% test); else
    ``SIGN_FLIPS`` random flips, p = (1 + #hits) / (1 + flips).
    """
    d = np.asarray(diff, dtype=float)
    n = len(d)
    if n == 0:
        return None
    observed = d.sum()
    # Sums of the same values in another sign pattern: 1e-9 absorbs rounding between equal sums.
    tol = 1e-9 * max(1.0, float(np.abs(d).sum()))
    if n <= EXACT_FLIPS_UP_TO:
        signs = 1 - 2 * ((np.arange(2 ** n)[:, None] >> np.arange(n)[None, :]) & 1)
        return float(np.mean(signs @ d >= observed - tol))
    rng = np.random.default_rng(seed)
    hits, done = 0, 0
    if n > LARGE_CONTROL:
        # The same test, cheaper random signs: 8 per random byte (s = 2 bit - 1, so the flipped
        # sum is 2 bits @ d - sum d), summed in float32 in blocks that keep the 0/1 matrix small.
        # float32 sums of n values carry a relative error ~1e-7 * sqrt(n): the tolerance is
        # 1e-4 of sum |d| here (ties between a flipped sum and the observed one are then counted
        # as hits, which only makes the test more conservative).
        tol32 = 1e-4 * max(1.0, float(np.abs(d).sum()))
        d32 = d.astype(np.float32)
        while done < SIGN_FLIPS:
            b = min(250, SIGN_FLIPS - done)
            bits = np.unpackbits(rng.integers(0, 256, size=(b, (n + 7) // 8), dtype=np.uint8), axis=1)[:, :n]
            hits += int(np.sum(2.0 * (bits.astype(np.float32) @ d32).astype(np.float64) - observed
                               >= observed - tol32))
            done += b
        return float((1 + hits) / (1 + SIGN_FLIPS))
    while done < SIGN_FLIPS:
        b = min(2000, SIGN_FLIPS - done)
        signs = rng.integers(0, 2, size=(b, n)) * 2 - 1
        hits += int(np.sum(signs @ d >= observed - tol))
        done += b
    return float((1 + hits) / (1 + SIGN_FLIPS))


#: Above this many labels the true-vs-shuffled control (every scored label of a category, judged or
#: not: 32,000 in a 16k-feature project) gets normal CIs from the label-level influence function
#: (clustered over labels, as the bootstrap is) instead of a bootstrap, O(n log n) instead of
#: O(resamples x n), and its sign-flip test cheaper random signs (tests/perf/perf_calibrate.py);
#: at this size the two intervals agree (tests/stats/test_calibration_stats.py).
LARGE_CONTROL = 2000


def paired_auroc_ci(t: np.ndarray, s: np.ndarray, level: float = 0.95) -> Estimate:
    """AUROC of true scores ``t`` against shuffled scores ``s`` (one of each per label; ties
    half) with a normal CI from its influence function, clustered by label: label k adds
    F_k = share of shuffled scores below t_k and 1 - G_k = share of true scores above s_k;
    var(AUROC) ~ sum_k (F_k + 1 - G_k - 2 AUROC)^2 / n^2 (the Hajek projection of the
    two-sample U-statistic, each label's two terms together)."""
    from scipy.stats import norm, rankdata

    n = len(t)
    r = rankdata(np.concatenate([t, s]))
    f = (r[:n] - rankdata(t)) / n
    g = (r[n:] - rankdata(s)) / n
    auc = float(f.mean())
    se = float(np.sqrt(np.sum((f + 1 - g - 2 * auc) ** 2))) / n
    z = float(norm.ppf((1 + level) / 2))
    return Estimate(auc, n, [max(0.0, auc - z * se), min(1.0, auc + z * se)])


def _shuffled(labels: list[str], true_by: dict[str, float], shuf_by: dict[str, float],
              n_boot: int, seed: int, min_rows: int) -> ShuffledControl:
    both = [u for u in labels if u in true_by and u in shuf_by]
    n = len(both)
    t = np.array([true_by[u] for u in both])
    s = np.array([shuf_by[u] for u in both])
    if n < min_rows:
        short = f"not enough labels with a shuffled control (n={n}, need {min_rows})"
        return ShuffledControl(n, float(t.mean()) if n else None, float(s.mean()) if n else None,
                               Estimate.missing(n, short), Estimate.missing(n, short))
    diff = t - s
    if n > LARGE_CONTROL:  # normal intervals (see LARGE_CONTROL)
        half = 1.959963984540054 * float(np.std(diff, ddof=1)) / np.sqrt(n)
        gap = Estimate(float(diff.mean()), n, [float(diff.mean()) - half, float(diff.mean()) + half])
        p = sign_flip_p(diff, seed)
        return ShuffledControl(n, float(t.mean()), float(s.mean()), gap, paired_auroc_ci(t, s), p,
                               p is not None and p <= SHUFFLED_LEVEL)
    counts = cluster_counts(n, n_boot, seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = estimate(diff.mean(), n, (counts @ diff) / counts.sum(axis=1))
    x = np.concatenate([t, s])
    pos = np.concatenate([np.ones(n, bool), np.zeros(n, bool)])
    groups = np.concatenate([np.arange(n), np.arange(n)])
    value, why = auroc(x, pos)
    sep = estimate(value, n, weighted_auroc(x, pos, counts[:, groups]), why)
    p = sign_flip_p(diff, seed)
    return ShuffledControl(n, float(t.mean()), float(s.mean()), gap, sep, p,
                           p is not None and p <= SHUFFLED_LEVEL)


def _cell(benchmark: str, category: str, rows: list[tuple[str, float, int]], labels: list[str],
          true_by: dict[str, float], shuf_by: dict[str, float], *, n_boot: int, seed: int,
          min_rows: int, ci_by: dict[str, tuple[float | None, float | None]] | None = None,
          unverified: AbstractSet[str] = frozenset()) -> Cell:
    """``rows``: (label_uuid, score, verdict code) for one benchmark and category."""
    x = np.array([r[1] for r in rows], dtype=float)
    v = np.array([r[2] for r in rows], dtype=int)
    if rows:
        uniq, groups = np.unique([r[0] for r in rows], return_inverse=True)
    else:
        uniq, groups = np.zeros(0, str), np.zeros(0, int)
    n = len(rows)
    counts = cluster_counts(len(uniq), n_boot, seed)
    verdicts = {k: int((v == c).sum()) for k, c in VERDICT_CODE.items()}
    strict = _auroc_est(x, v == 2, groups, counts, min_rows)
    lenient = _auroc_est(x, v >= 1, groups, counts, min_rows)
    if n < min_rows:
        rho = Estimate.missing(n, f"not enough data (n={n}, need {min_rows})")
        p = None
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r_val = float(spearmanr(x, v).statistic)
        rho = (Estimate(r_val, n) if np.isfinite(r_val)
               else Estimate.missing(n, f"undefined: scores or verdicts are constant (n={n})"))
        p = spearman_permutation(x, v, groups, n_boot, seed)[1] if rho.value is not None else None
    cal = fit_calibration(x, v == 2, groups, min_rows=min_rows, n_boot=n_boot, seed=seed)
    cell = Cell(
        benchmark, category, len(uniq), n, verdicts,
        float((v == 2).mean()) if n else None, float((v >= 1).mean()) if n else None,
        float(x.mean()) if n else None, strict, lenient, rho, p, cal,
        _shuffled(labels, true_by, shuf_by, n_boot, seed, min_rows))
    if strict.value is not None:
        cell.auroc_p, cell.auroc_p_below = auroc_permutation(x, v == 2, groups, max(n_boot, MIN_PERMUTATIONS), seed)
    cell.conclusion = _conclusion(strict, cell.auroc_p, cell.auroc_p_below)
    judged = list(uniq)
    if ci_by and judged:
        nan = float("nan")
        ci = [ci_by.get(u, (None, None)) for u in judged]
        cell.label_ci_halfwidth, cell.reliability = label_noise(
            np.array([true_by[u] for u in judged], dtype=float),
            np.array([nan if lo is None else lo for lo, _ in ci], dtype=float),
            np.array([nan if hi is None else hi for _, hi in ci], dtype=float))
    cell.unverified = sum(u in unverified for u in judged)
    return cell


def _rank_rows(a: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(a, axis=-1)  # average ranks for ties, as spearmanr


def spearman_permutation(x: np.ndarray, v: np.ndarray, groups: np.ndarray, n_perm: int, seed: int
                         ) -> tuple[float | None, float | None]:
    """(Spearman rho of score and verdict over all rows, two-sided label-permutation p).

    The rows of one label share its score and have correlated verdicts, so they are not
    independent and ``spearmanr``'s p is too small (14.8% of null worlds under 0.05 at 30
    labels).  Under the null (score unrelated to verdicts) the labels' scores are
    exchangeable: each permutation gives every label another label's score, keeping a
    label's verdicts together.  p = (1 + #{|rho_perm| >= |rho|}) / (1 + n_perm).
    """
    if len(x) == 0 or n_perm < 1:
        return None, None
    label_score = np.zeros(int(groups.max()) + 1)
    label_score[groups] = x  # every row of a label carries its score
    rv = _rank_rows(v.astype(float))
    rv = rv - rv.mean()
    rng = np.random.default_rng(seed)
    perms = np.argsort(rng.random((n_perm, len(label_score))), axis=1)
    xs = np.vstack([x[None, :], label_score[perms][:, groups]])
    rx = _rank_rows(xs)
    rx -= rx.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (rx @ rv) / np.sqrt((rx * rx).sum(axis=1) * (rv @ rv))
    if not np.isfinite(rho[0]):
        return None, None
    # The same formula on every row; 1e-12 absorbs summation-order rounding between equal |rho|.
    extreme = np.abs(rho[1:]) >= abs(rho[0]) - 1e-12
    return float(rho[0]), float((1 + extreme.sum()) / (1 + n_perm))


def _rate(hit: np.ndarray, groups: np.ndarray, n_groups: int, n_boot: int, seed: int) -> Estimate:
    n = len(hit)
    if n == 0:
        return Estimate.missing(0, "no verdicts")
    w = cluster_counts(n_groups, n_boot, seed)[:, groups]
    with np.errstate(invalid="ignore", divide="ignore"):
        return estimate(hit.mean(), n, (w @ hit) / w.sum(axis=1))


def method_summaries(verdict_rows: list[tuple[str, str, int]], labels: dict[str, data.LabelInfo],
                     preferences: Counter, true_by: dict[str, dict[str, float]], benchmarks: list[str],
                     *, n_boot: int, seed: int) -> list[MethodSummary]:
    by_method: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for u, _, code in verdict_rows:
        if u in labels:
            by_method[labels[u].method].append((u, code))
    out = []
    for method, rows in sorted(by_method.items()):
        uniq, groups = np.unique([u for u, _ in rows], return_inverse=True)
        codes = np.array([c for _, c in rows])
        means = {}
        for b in benchmarks:
            vals = [true_by[b][u] for u in uniq if u in true_by[b]]
            means[b] = float(np.mean(vals)) if vals else None
        out.append(MethodSummary(
            method, len(uniq), len(rows),
            _rate((codes == 2).astype(float), groups, len(uniq), n_boot, seed),
            _rate((codes >= 1).astype(float), groups, len(uniq), n_boot, seed),
            sum(preferences[u] for u in uniq), means))
    return out


def prediction_powered(judged: list, feats: dict, labels: dict, true_by: dict[str, dict[str, float]],
                       benchmarks: list[str], verdict_rows: list[tuple[str, str, int]], *, project: Project,
                       seed: int, extra: dict | None = None
                       ) -> tuple[list[ppi.PPIEstimate], list[ppi.TierShare], float]:
    """The prediction-powered label and tier shares, with the stopping rule against the
    project's ``target_ci_width`` (also returned).  ``extra`` (if given) receives the inputs and
    per-item predictions (for the active queue's weights and reweighted estimates)."""
    from saegold.store import queue as store_queue
    from saegold.store import settings as store_settings

    target_width = store_settings.load(project).target_ci_width
    judged_features = {j.feature_id for j in judged if j.judged}
    # The population is the queue's sampling frame: features it can hand out (those with top
    # examples; store.queue) plus any judged anyway.  A dead feature the score job kept (no
    # examples) is never drawn, so a PPI guarantee says nothing about it, and the stopping rule
    # must not count it as a feature left to judge.
    frame = store_queue.sampling_frame(project) | judged_features
    feats = {fid: f for fid, f in feats.items() if fid in frame}
    labels = {u: lab for u, lab in labels.items() if lab.feature_id in frame}
    inp = ppi.inputs(labels, feats, true_by, benchmarks, verdict_rows, judged_features)
    preds: dict = {}
    labels_est = ppi.estimates(inp, list(TIERS), seed=seed, target_width=target_width, preds_out=preds)
    tier_rows = [(j.feature_id, j.annotator, j.tier) for j in judged if j.tier is not None]
    tinp = ppi.tier_inputs(feats, tier_rows, judged_features)
    tpreds: dict = {}
    tiers = ppi.tier_estimates(tinp, TIERS, list(TIERS), seed=seed, target_width=target_width, preds_out=tpreds)
    if extra is not None:
        pop = [lab for lab in labels.values() if lab.live]
        extra.update(label_feature=np.array([lab.feature_id for lab in pop], dtype=int), label_inp=inp,
                     label_preds=preds, tier_feature=np.array(sorted(feats), dtype=int), tier_inp=tinp,
                     tier_preds=tpreds, labels_est=labels_est, tiers=tiers)
    return labels_est, tiers, target_width


def _annotators_per_item(inp: ppi.PPIInputs) -> float:
    counts = np.bincount(inp.rows_label)
    counts = counts[counts > 0]
    return float(counts.mean()) if len(counts) else 1.0


ACTIVE_NOTE = ("some features were handed out by the active queue (queue_order = active), not uniformly within "
               "their category: the stratified prediction-powered shares and their stopping rule assume the "
               "latter; read the estimates reweighted by the draw probabilities, and their own stopping rule (more draws "
               "of the active queue)")


ACTIVE_STOP_RULE = ("active queue: more draws to the target width from the Hansen-Hurwitz variance (var over "
                    "draws / n + the verdicts' own variance) / N^2, the draws' variance held at its value now; "
                    "new features judged = more draws x the share of draws so far that handed out a new feature; not reachable: "
                    "the verdicts' own noise alone is wider than the target")


def active_rows(project: Project, extra: dict) -> list[active.ActiveRow]:
    """The 'all' estimates reweighted by the active queue's recorded draw probabilities (none
    when the project has no draws)."""
    from saegold.store import queue as store_queue

    draws = store_queue.active_draws(project)
    if not draws:
        return []
    pool = set(store_queue.active_population(project)[0])
    from saegold.store import settings as store_settings

    width_to_reach = store_settings.load(project).target_ci_width
    out = []
    inp = extra["label_inp"]
    method = np.array(inp.method, dtype=object)
    k = _annotators_per_item(inp)
    for m in sorted(set(inp.method)):
        for target, (pred, share, judged) in extra["label_preds"].items():
            mine = method == m
            out.append(active.reweighted("label", m, target, np.where(mine, extra["label_feature"], -1), pred,
                                         share, judged, draws, pool, k, target_width=width_to_reach))
    k = _annotators_per_item(extra["tier_inp"])
    for tier, (pred, share, judged) in extra["tier_preds"].items():
        out.append(active.reweighted("tier", tier, tier, extra["tier_feature"], pred, share, judged, draws, pool, k,
                                     target_width=width_to_reach))
    return out


def _project_estimates(project: Project, seed: int) -> tuple[list[ppi.PPIEstimate], list[ppi.TierShare], float, dict]:
    """The project's prediction-powered estimates from its own data (as :func:`prediction_powered`),
    with the extra inputs and predictions; ``extra['features']``: every feature read."""
    judged, _ = data.judgments(project)
    feats = data.features(project)
    labels = data.labels(project)
    benchmarks, true_by = _true_scores(data.bench_scores(project))
    verdict_rows = [(u, j.annotator, VERDICT_CODE[v]) for j in judged for u, v in j.verdicts.items()
                    if v in VERDICT_CODE]
    extra: dict = {"features": feats}
    labels_est, tiers, target = prediction_powered(judged, feats, labels, true_by, benchmarks, verdict_rows,
                                                   project=project, seed=seed, extra=extra)
    return labels_est, tiers, target, extra


def sampling_weights(project: Project, *, seed: int = DEFAULT_SEED) -> tuple[dict[int, float], str]:
    """Per feature, how much a verdict on it would shrink the widest 'all' interval (see
    engine.stats.active), and which estimate that is."""
    _, _, _, extra = _project_estimates(project, seed)
    feats = extra["features"]
    rows = [(e.ppi.ci[1] - e.ppi.ci[0], "label", e.method, e.target) for e in extra["labels_est"]
            if e.category == "all" and e.ppi.ci] + \
           [(e.ppi.ci[1] - e.ppi.ci[0], "tier", e.tier, e.tier) for e in extra["tiers"]
            if e.category == "all" and e.ppi.ci]
    if not rows:
        return {}, "no estimate has an interval yet: every feature weighs the same (uniform draws)"
    width, kind, name, target = max(rows, key=lambda r: r[0])
    out: dict[int, float] = {fid: 0.0 for fid in feats}
    if kind == "label":
        pred, share, judg = extra["label_preds"][target]
        mine = np.array(extra["label_inp"].method, dtype=object) == name
        w = active.weights(pred[mine], pred[mine & judg], share[mine & judg])
        for fid, x in zip(extra["label_feature"][mine].tolist(), w.tolist()):
            out[fid] += x
        what = f"{name} labels {target}"
    else:
        pred, share, judg = extra["tier_preds"][target]
        w = active.weights(pred, pred[judg], share[judg])
        out.update(zip(extra["tier_feature"].tolist(), w.tolist()))
        what = f"features in tier {name}"
    return out, f"widest interval: {what} (95% CI width {width:.3f})"




@dataclass
class WeightsRefresh:
    """What :func:`refresh_sampling_weights` did."""

    before: str  # the weights' state before: 'missing' | 'stale' | 'fresh'
    refreshed: bool
    n: int  # features weighed (stored ones, when not refreshed)
    why: str  # which estimate the weights favour

    def line(self) -> str:
        """One line for the command line or the app."""
        if not self.refreshed:
            return f"active queue: sampling weights up to date ({self.n} feature(s); {self.why})"
        what = "computed" if self.before == "missing" else "recomputed (judgments or results changed since)"
        if not self.n:   # nothing to weigh by yet: say that, not "weights of 0 features"
            return f"active queue: sampling weights {what}: {self.why}"
        return f"active queue: sampling weights of {self.n} feature(s) {what}; {self.why}"


def refresh_sampling_weights(project: Project, *, force: bool = False, seed: int = DEFAULT_SEED
                             ) -> WeightsRefresh:
    """Compute and store the active queue's sampling weights when they are missing or stale
    (store.queue.active_weights_state: judgments, labels or results changed since they were
    computed), or always with ``force``; fresh ones are left as they are.  The inputs' mark
    is taken before computing, so a change made meanwhile leaves them stale for next time."""
    from saegold.store import queue as store_queue

    st = store_queue.active_weights_state(project)
    if st.state == "fresh" and not force:
        return WeightsRefresh("fresh", False, st.n, st.reason)
    mark = store_queue.active_inputs_mark(project)
    weights, why = sampling_weights(project, seed=seed)
    n = store_queue.set_active_weights(project, weights, mark=mark, reason=why)
    return WeightsRefresh(st.state, True, n, why)


def _true_scores(scores: list[data.BenchScore]) -> tuple[list[str], dict[str, dict[str, float]]]:
    benchmarks = list(BENCHMARKS) + sorted({s.benchmark for s in scores} - set(BENCHMARKS))
    true_by: dict[str, dict[str, float]] = defaultdict(dict)
    for s in scores:
        if s.value is not None and s.control == "true":
            true_by[s.benchmark][s.label_uuid] = float(s.value)
    return benchmarks, true_by


def stopping(project: Project, *, seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """What `saegold status` shows of the stopping rule: every prediction-powered estimate's CI
    width now and about how many more judged features reach the project's target width."""
    labels_est, tiers, target, extra = _project_estimates(project, seed)
    act = active_rows(project, extra)   # none without draws of the active queue
    return {"target_ci_width": target, "rule": ppi.STOP_RULE,
            "note": ACTIVE_NOTE if act else None,
            "labels": [asdict(e) for e in labels_est], "tiers": [asdict(e) for e in tiers],
            "active": [asdict(a) for a in act], "active_rule": ACTIVE_STOP_RULE if act else None}


def compute(project: Project, *, n_boot: int = DEFAULT_BOOT, seed: int = DEFAULT_SEED,
            min_rows: int = DEFAULT_MIN_ROWS, grid: int = thresholds.GRID,
            progress: Progress = null_progress) -> CalibrationReport:
    """The full calibration report (JSON-serialisable via ``to_dict``)."""
    judged, adjudications = data.judgments(project)
    feats = data.features(project)
    labels = data.labels(project)
    scores = data.bench_scores(project)

    summaries: list[BenchmarkSummary] = []
    true_by: defaultdict[str, dict[str, float]] = defaultdict(dict)   # benchmark -> label uuid -> score
    shuf_by: defaultdict[str, dict[str, float]] = defaultdict(dict)
    ci_by: dict[str, dict[str, tuple]] = defaultdict(dict)
    unverified: dict[str, set[str]] = defaultdict(set)
    benchmarks = list(BENCHMARKS) + sorted({s.benchmark for s in scores} - set(BENCHMARKS))
    for b in benchmarks:
        mine = [s for s in scores if s.benchmark == b]
        for s in mine:
            if s.value is not None:
                (true_by if s.control == "true" else shuf_by)[b][s.label_uuid] = float(s.value)
                if s.control == "true":
                    ci_by[b][s.label_uuid] = (s.ci_low, s.ci_high)
                    if s.negatives_verified is False:
                        unverified[b].add(s.label_uuid)
        halves = [(hi - lo) / 2 for lo, hi in ci_by[b].values() if lo is not None and hi is not None]
        summaries.append(BenchmarkSummary(
            b, sum(s.control == "true" and s.value is not None for s in mine),
            sum(s.control == "shuffled" and s.value is not None for s in mine),
            sum(s.value is None for s in mine), sum(s.n for s in mine), sum(s.parse_failures for s in mine),
            float(np.mean(halves)) if halves else None, len(halves), len(unverified[b])))

    verdict_rows = [(u, j.annotator, VERDICT_CODE[v]) for j in judged for u, v in j.verdicts.items()
                    if v in VERDICT_CODE]

    def category_of(label_uuid: str) -> str | None:
        lab = labels.get(label_uuid)
        f = feats.get(lab.feature_id) if lab else None
        return f.category if f else None

    cells = []
    categories = ["all", *TIERS]
    total = len(benchmarks) * len(categories)
    for bi, b in enumerate(benchmarks):
        for ci, cat in enumerate(categories):
            keep = [r for r in verdict_rows if r[0] in true_by[b] and (cat == "all" or category_of(r[0]) == cat)]
            rows = [(u, true_by[b][u], code) for u, _, code in keep]
            cat_labels = sorted(u for u in true_by[b] if cat == "all" or category_of(u) == cat)
            cells.append(_cell(b, cat, rows, cat_labels, true_by[b], shuf_by[b], n_boot=n_boot,
                               seed=seed, min_rows=min_rows, ci_by=ci_by[b], unverified=unverified[b]))
            progress("calibration", bi * len(categories) + ci + 1, total)
    fit = thresholds.fit_thresholds(thresholds.threshold_rows(judged, feats), data.thresholds(project), grid=grid,
                                    n_boot=n_boot, seed=seed)
    methods = method_summaries(verdict_rows, labels, Counter(j.preference for j in judged if j.preference),
                               true_by, benchmarks, n_boot=n_boot, seed=seed)
    progress("prediction-powered estimates", 0, 1)
    extra: dict = {}
    ppi_estimates, tier_shares, target_width = prediction_powered(
        judged, feats, labels, true_by, benchmarks, verdict_rows, project=project, seed=seed, extra=extra)
    active_estimates = active_rows(project, extra)
    progress("prediction-powered estimates", 1, 1)
    notes = []
    if adjudications:
        notes.append(f"{len(adjudications)} lead adjudications are left out (they are not independent verdicts)")
    unscored = Counter(u for u, _, _ in verdict_rows if not any(u in true_by[b] for b in benchmarks))
    if unscored:
        notes.append(f"{len(unscored)} judged labels have no benchmark score and are not used")
    if active_estimates:
        notes.append(ACTIVE_NOTE)
    return CalibrationReport(
        summaries, cells, methods, fit, findings(cells, summaries, fit, methods, ppi_estimates, tier_shares),
        len(verdict_rows),
        settings={"n_boot": n_boot, "seed": seed, "min_rows": min_rows, "ci_level": 0.95,
                  "chance": CHANCE, "rows": "each (label, annotator) verdict",
                  "ci_method": ("percentile bootstrap over labels (the calibration error: the union of a "
                                "basic, pivotal, and a percentile bootstrap interval over labels)"),
                  "rules": {"predicts": PREDICTS_RULE, "best_predictor": BEST_RULE,
                            "true_vs_shuffled": SHUFFLED_RULE, "thresholds": thresholds.RULE,
                            "calibration_map": CHOICE_RULE, "prediction_powered": ppi.RULE,
                            "tier_shares": ppi.TIER_RULE, "stopping": ppi.STOP_RULE,
                            "active_queue": active.RULE, "label_ci": LABEL_CI_RULE},
                  "target_ci_width": target_width,
                  "spearman_p": f"two-sided label-permutation test ({n_boot} permutations of the labels' "
                                "scores, each label's verdicts kept together)"},
        notes=notes, ppi=ppi_estimates, tiers=tier_shares, active=active_estimates)


def category_findings(cells: list[Cell]) -> list[str]:
    """Per category: which benchmarks track human verdicts better than chance (PREDICTS_RULE: a
    one-sided label-permutation p of AUROC > 0.5 at most 0.025), which are not shown to, and
    which lack the data --
    e.g. whether activation benchmarks track humans on input features and steering on output ones."""
    out = []

    def est(c: Cell) -> str:
        a = c.auroc_correct
        p = "" if c.auroc_p is None else f", p={c.auroc_p:.2g}"
        return f"{c.benchmark} (AUROC {a.value:.2f}" + (f" [{a.ci[0]:.2f}, {a.ci[1]:.2f}]" if a.ci else ", no CI") + f"{p})"

    for cat in TIERS:
        mine = [c for c in cells if c.category == cat and c.n_labels]
        if not mine:
            continue
        track = [c for c in mine if predicts(c)]
        shown = [c for c in mine if c not in track and c.auroc_correct.value is not None]
        missing = [c.benchmark for c in mine if c.auroc_correct.value is None]
        line = f"{cat} features: " + (f"{', '.join(est(c) for c in track)} track human verdicts better than chance"
                                      if track else "no benchmark is shown to track human verdicts better than chance")
        if shown:
            line += f"; not shown for {', '.join(est(c) for c in shown)}"
        if missing:
            line += f"; too few verdicts for {', '.join(missing)}"
        out.append(line + ".")
    return out


BEST_LEVEL = 0.025


def _auroc_of(c: Cell) -> float:
    """A ranked cell's AUROC (cells are ranked only where they have one)."""
    v = c.auroc_correct.value
    return v if v is not None else float("-inf")


def best_shown(ranked: list[Cell]) -> bool:
    """The BEST_RULE: is the highest-AUROC benchmark shown to predict humans?"""
    best = max(ranked, key=_auroc_of)
    return best.auroc_p is not None and best.auroc_p <= BEST_LEVEL / len(ranked)


def findings(cells: list[Cell], summaries: list[BenchmarkSummary], fit: thresholds.ThresholdFit,
             methods: Sequence[MethodSummary] = (), ppi_estimates: Sequence[ppi.PPIEstimate] = (),
             tier_shares: Sequence[ppi.TierShare] = ()) -> list[str]:
    """Plain sentences answering: which benchmark predicts human judgment, where, how far from chance."""
    out = []
    judged = [m for m in methods if m.correct.value is not None]
    if judged:
        def rate(m: MethodSummary) -> str:
            ci = f" [{m.correct.ci[0]:.0%}, {m.correct.ci[1]:.0%}]" if m.correct.ci else ""
            return f"{m.method} {m.correct.value:.0%}{ci} of {m.n_rows}"
        out.append("Humans judge labels correct: " + "; ".join(rate(m) for m in judged) + ".")
    over_all = [e for e in ppi_estimates if e.category == "all" and e.target == "correct" and e.ppi.ci
                and e.n_judged < e.n_labels]
    if over_all:
        def share(e: ppi.PPIEstimate) -> str:
            assert e.ppi.ci is not None and e.classical.ci is not None   # filtered; a PPI interval comes with both
            worth = "" if e.worth is None else f", worth {e.worth:.0f} judged labels"
            return (f"{e.method} {e.ppi.value:.0%} [{e.ppi.ci[0]:.0%}, {e.ppi.ci[1]:.0%}] of {e.n_labels} labels "
                    f"(prediction-powered{worth}; judged labels only {e.classical.value:.0%} "
                    f"[{e.classical.ci[0]:.0%}, {e.classical.ci[1]:.0%}] of {e.n_judged})")
        out.append("Over all live labels, humans would call correct: " + "; ".join(share(e) for e in over_all)
                   + ". Stratified by category; valid if the judged labels are a uniform random sample of each "
                     "method's labels within each category.")
    tiers_all = [e for e in tier_shares if e.category == "all" and e.ppi.ci and e.n_judged < e.n_features]
    if tiers_all:
        def tier(e: ppi.TierShare) -> str:
            assert e.ppi.ci is not None   # filtered above
            stop = "" if e.stopping is None else f"; {e.stopping.text()}"
            return f"{e.tier} {e.ppi.value:.0%} [{e.ppi.ci[0]:.0%}, {e.ppi.ci[1]:.0%}]{stop}"
        out.append(f"Of all {tiers_all[0].n_features} features, humans would put in each tier "
                   f"(prediction-powered from {tiers_all[0].n_judged} judged features): "
                   + "; ".join(tier(e) for e in tiers_all) + ".")
    for s in summaries:
        mine = [c for c in cells if c.benchmark == s.benchmark]
        overall = next(c for c in mine if c.category == "all")
        if s.n_true_scores == 0:
            out.append(f"{s.benchmark}: no benchmark scores in this project.")
            continue
        good = [c for c in mine if c.category != "all" and predicts(c)]
        where = (f"; it does for {', '.join(f'{c.category} (AUROC {c.auroc_correct.value:.2f})' for c in good)}"
                 if good else "")
        out.append(f"{s.benchmark}, all categories: {overall.conclusion}{where}.")
        sh = overall.shuffled
        if sh.gap.value is not None:
            sep = ("tells true labels from shuffled ones" if sh.tells_apart
                   else "does NOT tell true labels from shuffled ones (not shown to measure anything here)")
            humans = (f"humans judge {overall.human_correct_rate:.0%} of its labels correct"
                      if overall.human_correct_rate is not None else "no human verdicts yet")
            out.append(f"{s.benchmark} {sep}: true {sh.mean_true:.2f} vs shuffled {sh.mean_shuffled:.2f} "
                       f"(gap {sh.gap.value:+.2f}, one-sided sign-flip p={sh.p_value:.2g} over {sh.n_labels} "
                       f"labels; rule: p <= {SHUFFLED_LEVEL}); {humans}.")
        if overall.label_ci_halfwidth is not None:
            rel = ("" if overall.reliability is None else
                   f"; per-label noise is about {1 - overall.reliability:.0%} of the spread of scores between "
                   f"them (reliability {overall.reliability:.2f}: no criterion can correlate with these scores "
                   f"above about {overall.reliability ** 0.5:.2f})")
            out.append(f"{s.benchmark}: one judged label's score is known to about "
                       f"±{overall.label_ci_halfwidth:.2f} (mean half-width of its own 95% CI over "
                       f"{overall.n_labels} labels){rel}; the figures above are not weighted by these CIs "
                       "(see rules: label_ci).")
        if s.unverified:
            out.append(f"{s.benchmark}: {s.unverified} of {s.n_true_scores} true-label scores were judged on other "
                       "features' examples no model verified as negatives (imports, score --no-verified-negatives, "
                       "or older results): the feature may fire on some, which lowers their scores"
                       + (f"; {overall.unverified} of them judged by humans" if overall.unverified else "") + ".")
        if s.parse_failures:
            out.append(f"{s.benchmark}: {s.parse_failures} unparseable judge answers out of "
                       f"{s.items_scored} items (excluded, not scored as wrong).")
    out += category_findings(cells)
    ranked = [c for c in cells if c.category == "all" and c.auroc_correct.value is not None]
    if ranked:
        best = max(ranked, key=_auroc_of)
        beats = best_shown(ranked)
        p = "n/a" if best.auroc_p is None else f"{best.auroc_p:.2g}"
        out.append(f"Best predictor of human judgment: {best.benchmark} (highest AUROC, "
                   f"{best.auroc_correct.value:.2f}, of {len(ranked)})"
                   + (f"; shown to predict humans (permutation p={p}, needs <= {BEST_LEVEL / len(ranked):.2g})"
                      if beats else f", but not shown to predict humans (permutation p={p}, needs <= "
                                    f"{BEST_LEVEL / len(ranked):.2g})")
                   + f". Rules: {PREDICTS_RULE}; {BEST_RULE}.")
    if fit.fitted is not None and fit.cv_kappa is not None:
        verdict = ("fitted thresholds improve on the current ones: change recommended"
                   if fit.recommended else
                   "the current thresholds already split the judged features best" if fit.fitted_is_current
                   else "the fitted thresholds are not shown to improve on the current ones: keep the current")
        out.append(f"Taxonomy thresholds: {verdict}. Current (input {fit.current[0]:.3g}, output "
                   f"{fit.current[1]:.3g}) reproduce human tiers with kappa "
                   f"{'n/a' if fit.current_kappa is None else f'{fit.current_kappa:.2f}'}; fitted "
                   f"(input {fit.fitted[0]:.3g}, output {fit.fitted[1]:.3g}) reach cross-validated kappa "
                   f"{fit.cv_kappa:.2f}; {thresholds.decision(fit)}.")
    elif fit.reason:
        out.append(f"Taxonomy thresholds: {fit.reason}.")
    return out
