"""Seeded cluster bootstrap and the :class:`Estimate` every statistic is reported as.

A bootstrap replicate is a vector of multiplicities, one per cluster (an item, or all rows
that belong together, such as the annotators' verdicts on one label): drawing n clusters
with replacement is the multinomial(n, 1/n) count vector.  Statistics are computed with
these counts as row weights, which lets most of them run vectorised over all replicates.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .defaults import DEFAULT_BOOT, DEFAULT_SEED  # noqa: F401  (their one owner: light, for --help)

CI_LEVEL = 0.95
#: Below this share of defined replicates a CI is not reported (the statistic is too often
#: undefined on resamples, e.g. alpha when a resample holds a single value).
MIN_DEFINED_SHARE = 0.9


@dataclass
class Estimate:
    """A figure with the number of items behind it and its 95% bootstrap CI.

    ``value`` is None (never NaN) when the figure cannot be computed; ``reason`` then says
    why, with the count.  ``reason`` also explains a missing ``ci``.
    """

    value: float | None
    n_items: int
    ci: list[float] | None = None
    reason: str | None = None

    @classmethod
    def missing(cls, n_items: int, reason: str) -> Estimate:
        return cls(None, n_items, None, reason)


def finite(x: float | None) -> float | None:
    """``x`` as a float, or None when it is None/NaN/inf."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def cluster_counts(n_clusters: int, n_boot: int, seed: int) -> np.ndarray:
    """``(n_boot, n_clusters)`` multiplicities of a bootstrap over clusters."""
    rng = np.random.default_rng(seed)
    if n_clusters == 0:
        return np.zeros((n_boot, 0))
    draws = rng.integers(0, n_clusters, size=(n_boot, n_clusters))
    draws += (np.arange(n_boot) * n_clusters)[:, None]
    return np.bincount(draws.ravel(), minlength=n_boot * n_clusters).reshape(n_boot, n_clusters).astype(float)


def percentile_ci(replicates: np.ndarray, level: float = CI_LEVEL) -> tuple[list[float] | None, str | None]:
    """Percentile CI of the defined replicates, or None with a reason."""
    reps = np.asarray(replicates, dtype=float)
    ok = reps[np.isfinite(reps)]
    if reps.size == 0:
        return None, "no bootstrap replicates"
    if ok.size < MIN_DEFINED_SHARE * reps.size:
        return None, (f"CI not available: the figure is undefined on {reps.size - ok.size} of "
                      f"{reps.size} bootstrap resamples")
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(ok, [tail, 100 - tail])
    return [float(lo), float(hi)], None


def jackknife_counts(n_clusters: int) -> np.ndarray:
    """``(n_clusters, n_clusters)`` multiplicities that leave one cluster out each."""
    return 1.0 - np.eye(n_clusters)


def bca_ci(value: float, replicates: np.ndarray, jackknife: np.ndarray, level: float = CI_LEVEL
           ) -> tuple[list[float] | None, str | None]:
    """Bias-corrected and accelerated (BCa) bootstrap CI (Efron 1987; as scipy.stats.bootstrap).

    ``jackknife``: the statistic with each cluster left out, for the acceleration.  Falls back
    to the percentile CI when the corrections are undefined (all replicates on one side of
    the value, or a constant jackknife).
    """
    from scipy.stats import norm
    from scipy.stats import t as t_dist

    reps = np.asarray(replicates, dtype=float)
    ok = reps[np.isfinite(reps)]
    if reps.size == 0:
        return None, "no bootstrap replicates"
    if ok.size < MIN_DEFINED_SHARE * reps.size:
        return percentile_ci(reps, level)
    jk = np.asarray(jackknife, dtype=float)
    jk = jk[np.isfinite(jk)]
    # Ties with the point value count half (as scipy does not; it matters for discrete stats).
    below = (np.sum(ok < value) + 0.5 * np.sum(ok == value)) / ok.size
    if not 0 < below < 1 or jk.size < 2:
        return percentile_ci(reps, level)
    z0 = norm.ppf(below)
    d = jk.mean() - jk
    den = 6.0 * float(np.sum(d ** 2)) ** 1.5
    a = float(np.sum(d ** 3)) / den if den > 0 else 0.0
    # Small-sample expansion (Hesterberg 2015, "expanded percentile"): the normal quantile is
    # replaced by sqrt(n / (n - 1)) times Student's t on n - 1 degrees of freedom, n = clusters;
    # the bootstrap's plug-in spread is too small by about that much at n ~ 30.
    n = jk.size
    z = np.sqrt(n / (n - 1)) * t_dist.ppf([(1 - level) / 2, (1 + level) / 2], n - 1)
    q = norm.cdf(z0 + (z0 + z) / (1 - a * (z0 + z)))
    if not np.all(np.isfinite(q)):
        return percentile_ci(reps, level)
    lo, hi = np.percentile(ok, np.clip(q, 0, 1) * 100)
    return [float(lo), float(hi)], None


def estimate(value: float | None, n_items: int, replicates: np.ndarray | None,
             reason: str | None = None, jackknife: np.ndarray | None = None) -> Estimate:
    """Wrap a point value and its replicates; a missing value drops the CI.  With
    ``jackknife`` (leave-one-cluster-out values) the CI is BCa, else percentile."""
    value = finite(value)
    if value is None:
        return Estimate.missing(n_items, reason or f"undefined on these data (n={n_items})")
    if replicates is None:
        return Estimate(value, n_items, None, reason)
    ci, why = bca_ci(value, replicates, jackknife) if jackknife is not None else percentile_ci(replicates)
    return Estimate(value, n_items, ci, why)


def bootstrap_loop(stat: Callable[[np.ndarray], float | None], counts: np.ndarray) -> np.ndarray:
    """Replicates of a non-vectorised statistic: ``stat(cluster_multiplicities)`` per row."""
    out = np.empty(len(counts))
    for b, row in enumerate(counts):
        v = stat(row)
        out[b] = np.nan if v is None else v
    return out
