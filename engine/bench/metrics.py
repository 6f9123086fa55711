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
