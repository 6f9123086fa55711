"""The estimators, each usable on weighted rows so bootstrap replicates run vectorised.

Point estimates come from the libraries (krippendorff, scikit-learn, statsmodels, scipy).
The vectorised forms used on bootstrap replicates (weighted AUROC, kappa from a confusion
matrix) are the same textbook formulas; the tests check them against the libraries.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Literal

import krippendorff
import numpy as np
from sklearn.metrics import cohen_kappa_score, roc_auc_score

from .resample import finite

Level = Literal["nominal", "ordinal", "interval", "ratio"]   # Krippendorff's levels of measurement


def alpha(matrix: np.ndarray, level: Level, n_values: int) -> tuple[float | None, str | None]:
    """Krippendorff's alpha of ``matrix`` (raters x units, codes 0..n_values-1, NaN = missing).

    ``level`` is 'nominal' or 'ordinal' (codes in their order).  Returns (value, None) or
    (None, reason) when alpha is undefined.
    """
    m = np.asarray(matrix, dtype=float)
    rated = np.sum(~np.isnan(m), axis=0) >= 2 if m.size else np.zeros(0, dtype=bool)
    pairable = int(rated.sum())
    if pairable == 0:
        return None, "no item was judged by two or more annotators"
    shared = m[:, rated]
    values = np.unique(shared[~np.isnan(shared)])
    if values.size < 2:
        return None, f"every rating on the {pairable} shared items is the same value (alpha is undefined)"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = krippendorff.alpha(reliability_data=m, level_of_measurement=level,
                                       value_domain=list(range(n_values)))
    except (ValueError, ZeroDivisionError) as exc:
        return None, f"alpha is undefined on these data ({exc})"
    v = finite(value)
    return (v, None) if v is not None else (None, "alpha is undefined on these data")


def kappa(a: Sequence[int] | np.ndarray, b: Sequence[int] | np.ndarray, n_values: int, weights: str | None = None
          ) -> tuple[float | None, str | None]:
    """Cohen's kappa (scikit-learn), or (None, reason) when chance agreement is total."""
    if len(a) == 0:
        return None, "no shared items"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = cohen_kappa_score(a, b, labels=list(range(n_values)), weights=weights)
    v = finite(value)
    if v is None:
        return None, f"both sides use a single, identical value on all {len(a)} items (kappa is undefined)"
    return v, None


def kappa_weight_matrix(n_values: int, weights: str | None) -> np.ndarray:
    i, j = np.indices((n_values, n_values))
    if weights is None:
        return (i != j).astype(float)
    if weights == "linear":
        return np.abs(i - j).astype(float)
    if weights == "quadratic":
        return ((i - j) ** 2).astype(float)
    raise ValueError(f"unknown kappa weights {weights!r}")


def weighted_confusions(a: np.ndarray, b: np.ndarray, n_values: int, w: np.ndarray) -> np.ndarray:
    """Confusion matrices ``(B, K, K)`` of codes a (rows) vs b (cols) under row weights ``w`` (B, n)."""
    onehot = np.zeros((len(a), n_values * n_values))
    onehot[np.arange(len(a)), np.asarray(a) * n_values + np.asarray(b)] = 1.0
    return (np.atleast_2d(w) @ onehot).reshape(-1, n_values, n_values)


def kappa_from_confusions(conf: np.ndarray, weights: str | None = None) -> np.ndarray:
    """Cohen's kappa of each confusion matrix in ``conf`` (B, K, K); NaN where undefined."""
    conf = np.asarray(conf, dtype=float)
    k = conf.shape[-1]
    wm = kappa_weight_matrix(k, weights)
    total = conf.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = np.einsum("bi,bj->bij", conf.sum(axis=2), conf.sum(axis=1)) / total[:, None, None]
        return 1.0 - (wm * conf).sum(axis=(1, 2)) / (wm * expected).sum(axis=(1, 2))


def auroc(scores: Sequence[float] | np.ndarray, positive: Sequence[bool] | np.ndarray) -> tuple[float | None, str | None]:
    """AUROC (scikit-learn) of ``scores`` for the positive class, or (None, reason)."""
    y = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None, f"one class only ({n_pos} positive, {n_neg} negative)"
    return float(roc_auc_score(y, np.asarray(scores, dtype=float))), None


def weighted_auroc(scores: np.ndarray, positive: np.ndarray, w: np.ndarray) -> np.ndarray:
    """AUROC under each row of weights ``w`` (B, n), ties counted half; NaN if a class is empty.

    Equals ``roc_auc_score(positive, scores, sample_weight=w[b])`` (checked in the tests).
    """
    from scipy.sparse import csr_matrix

    y = np.asarray(positive, dtype=float)
    uniq, inv = np.unique(np.asarray(scores, dtype=float), return_inverse=True)
    rows = np.arange(len(y))
    shape = (len(y), len(uniq))
    w = np.atleast_2d(w)
    # Sparse one-hot of each row's score value: cost grows with rows, not rows x values.
    pos = np.asarray((csr_matrix((y, (rows, inv)), shape=shape).T @ w.T).T)
    neg = np.asarray((csr_matrix((1.0 - y, (rows, inv)), shape=shape).T @ w.T).T)
    below = np.cumsum(neg, axis=1) - neg
    with np.errstate(invalid="ignore", divide="ignore"):
        return (pos * (below + 0.5 * neg)).sum(axis=1) / (pos.sum(axis=1) * neg.sum(axis=1))


def fleiss(counts: np.ndarray) -> tuple[float | None, str | None]:
    """Fleiss' kappa (statsmodels) of an items x categories count table with equal row sums."""
    from statsmodels.stats.inter_rater import fleiss_kappa

    table = np.asarray(counts, dtype=float)
    if table.shape[0] == 0:
        return None, "no items"
    sums = table.sum(axis=1)
    if not np.all(sums == sums[0]) or sums[0] < 2:
        return None, "Fleiss' kappa needs the same number (>= 2) of ratings on every item"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = finite(fleiss_kappa(table, method="fleiss"))
    if value is None:
        return None, f"every rating on the {table.shape[0]} items is the same value (kappa is undefined)"
    return value, None
