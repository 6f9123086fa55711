"""Benchmark metrics and bootstrap confidence intervals."""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import stats
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

N_RESAMPLES = 4999


def balanced_accuracy(truth: Sequence[int], predicted: Sequence[int]) -> float | None:
    """Mean of the hit rate on positives and the correct-rejection rate on negatives.

    None unless both classes are present (one class alone cannot say anything balanced)."""
    if len(set(truth)) < 2:
        return None
    return float(balanced_accuracy_score(list(truth), list(predicted)))


def auroc(truth: Sequence[int], scores: Sequence[float]) -> float | None:
    """Area under the ROC curve of ``scores`` for positives vs negatives (ties count half)."""
    if len(set(truth)) < 2:
        return None
    return float(roc_auc_score(list(truth), list(scores)))


def cosine(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``matrix`` with ``vector`` (0 where a norm is 0)."""
    m = np.asarray(matrix, dtype=np.float64)
    v = np.asarray(vector, dtype=np.float64)
    norms = np.linalg.norm(m, axis=1) * np.linalg.norm(v)
    dots = m @ v
    return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)


def mean_ci(values: Sequence[float], *, seed: int = 0, confidence: float = 0.95,
            n_resamples: int = N_RESAMPLES) -> tuple[float | None, float | None, float | None]:
    """(mean, low, high): the mean with a percentile bootstrap CI (scipy.stats.bootstrap).

    Resampling is over the items given (labels), seeded.  With fewer than two items the CI is
    undefined (None); with all items equal it is that value."""
    v = np.asarray([x for x in values if x is not None and not math.isnan(x)], dtype=float)
    if len(v) == 0:
        return None, None, None
    mean = float(v.mean())
    if len(v) < 2:
        return mean, None, None
    if np.all(v == v[0]):
        return mean, mean, mean
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.bootstrap((v,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                              method="percentile", vectorized=True, rng=np.random.default_rng(seed))
    return mean, float(res.confidence_interval.low), float(res.confidence_interval.high)


# -- per-label confidence intervals ------------------------------------------------------------
# One label's score rests on a few dozen judged examples; these intervals say how far that
# score can move by the luck of which examples were drawn and how the judge answered them.
# Their coverage is checked by seeded simulation (tests/bench/test_bench_ci.py, fast;
# tests/validity/bench_ci_checks.py, full grid).

Z95 = 1.959963984540054


def _clip(lo: float, hi: float) -> tuple[float, float]:
    return max(0.0, lo), min(1.0, hi)


def wilson_ci(k: int, n: int, z: float = Z95) -> tuple[float | None, float | None]:
    """Wilson score interval of a proportion ``k / n`` (steering: right picks / answers)."""
    if n <= 0:
        return None, None
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return _clip(mid - half, mid + half)


def balanced_accuracy_ci(truth: Sequence[int], predicted: Sequence[int],
                         z: float = Z95) -> tuple[float | None, float | None]:
    """95% interval of a balanced accuracy ``(TPR + TNR) / 2``: Agresti-Caffo style, each rate
    adjusted by z^2/4 successes and failures (two rates share the z^2/2 of one), the two
    rates' variances summed.  Keeps its coverage at the edges (a perfect 20/20 score still
    gets an interval) where a bootstrap of 20 examples collapses to a point."""
    pos = [p for t, p in zip(truth, predicted) if t == 1]
    neg = [p for t, p in zip(truth, predicted) if t == 0]
    if not pos or not neg:
        return None, None
    add = z * z / 4

    def rate(hits: int, n: int) -> tuple[float, float]:
        p = (hits + add) / (n + 2 * add)
        return p, p * (1 - p) / (n + 2 * add)

    tpr, v1 = rate(sum(pos), len(pos))
    tnr, v0 = rate(sum(1 - p for p in neg), len(neg))
    mid, half = (tpr + tnr) / 2, z * math.sqrt(v1 + v0) / 2
    return _clip(mid - half, mid + half)


def auroc_ci(truth: Sequence[int], scores: Sequence[float],
             z: float = Z95) -> tuple[float | None, float | None]:
    """95% interval of an AUROC (Hanley & McNeil 1982 standard error), on the logit scale so
    it stays inside [0, 1] (an AUROC of 0 or 1 is first pulled in by half an observation)."""
    n1 = sum(1 for t in truth if t == 1)
    n0 = len(truth) - n1
    a = auroc(truth, scores)
    if a is None:
        return None, None
    eps = 0.5 / (n1 * n0)
    a_ = min(max(a, eps), 1 - eps)
    q1, q2 = a_ / (2 - a_), 2 * a_ * a_ / (1 + a_)
    var = (a_ * (1 - a_) + (n1 - 1) * (q1 - a_ * a_) + (n0 - 1) * (q2 - a_ * a_)) / (n1 * n0)
    se_logit = math.sqrt(max(var, 0.0)) / (a_ * (1 - a_))
    centre = math.log(a_ / (1 - a_))
    return 1 / (1 + math.exp(-(centre - z * se_logit))), 1 / (1 + math.exp(-(centre + z * se_logit)))
