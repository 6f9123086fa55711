"""A calibration map from a benchmark score to P(human says "correct").

Two candidate maps, isotonic regression and Platt scaling (logistic regression on the
score), are compared by grouped K-fold cross-validation (folds never split the rows of one
label); the one with the lower out-of-fold Brier score is chosen.  Its out-of-fold
predictions give the cross-validated expected calibration error (ECE, equal-width bins) and
the reliability diagram; the map itself is then fitted on all rows.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss
from sklearn.model_selection import GroupKFold

N_BINS = 10
MAX_FOLDS = 5
CURVE_POINTS = 21


@dataclass
class ReliabilityBin:
    lo: float
    hi: float
    n: int
    mean_predicted: float | None
    observed: float | None


@dataclass
class CalibrationMap:
    method: str | None  # 'isotonic' | 'platt' | None (not enough data)
    n: int
    reason: str | None = None
    folds: int = 0
    cv_brier: dict[str, float] = field(default_factory=dict)
    cv_ece: float | None = None
    bins: list[ReliabilityBin] = field(default_factory=list)
    curve: list[list[float]] = field(default_factory=list)  # [score, P(correct)] on a grid


def _model(method: str):
    if method == "isotonic":
        return IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0, increasing="auto")
    return LogisticRegression(C=1e4)


def _fit_predict(method: str, x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray) -> np.ndarray:
    if y_tr.min() == y_tr.max():  # one class in the training fold: its rate is the best guess
        return np.full(len(x_te), float(y_tr[0]))
    model = _model(method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if method == "isotonic":
            model.fit(x_tr, y_tr)
            return np.clip(model.predict(x_te), 0.0, 1.0)
        mu, sd = float(x_tr.mean()), float(x_tr.std()) or 1.0  # standardised: quick, stable fit
        model.fit(((x_tr - mu) / sd).reshape(-1, 1), y_tr)
        return model.predict_proba(((x_te - mu) / sd).reshape(-1, 1))[:, 1]


def reliability(pred: np.ndarray, y: np.ndarray, n_bins: int = N_BINS) -> tuple[list[ReliabilityBin], float]:
    """Equal-width bins of predicted probability, and the ECE (bin-size weighted |gap|)."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(pred, edges[1:-1]), 0, n_bins - 1)
    bins, ece = [], 0.0
    for b in range(n_bins):
        sel = which == b
        n = int(sel.sum())
        if n:
            mp, obs = float(pred[sel].mean()), float(y[sel].mean())
            ece += n / len(y) * abs(mp - obs)
            bins.append(ReliabilityBin(float(edges[b]), float(edges[b + 1]), n, mp, obs))
        else:
            bins.append(ReliabilityBin(float(edges[b]), float(edges[b + 1]), 0, None, None))
    return bins, float(ece)


def fit_calibration(scores: np.ndarray, correct: np.ndarray, groups: np.ndarray, *,
                    min_rows: int = 10) -> CalibrationMap:
    """Choose, evaluate and fit the map; degenerate inputs give a map with ``reason``."""
    x = np.asarray(scores, dtype=float)
    y = np.asarray(correct, dtype=float)
    n = len(y)
    n_groups = len(np.unique(groups)) if n else 0
    n_pos = int(y.sum()) if n else 0
    if n < min_rows:
        return CalibrationMap(None, n, f"not enough data (n={n}, need {min_rows})")
    if n_pos == 0 or n_pos == n:
        return CalibrationMap(None, n, f"one class only (n={n}, {n_pos} judged correct)")
    folds = min(MAX_FOLDS, n_groups)
    if folds < 2:
        return CalibrationMap(None, n, f"not enough labels to cross-validate (n={n_groups})")
    oof = {m: np.empty(n) for m in ("isotonic", "platt")}
    for train, test in GroupKFold(n_splits=folds).split(x, y, groups):
        for m in oof:
            oof[m][test] = _fit_predict(m, x[train], y[train], x[test])
    brier = {m: float(brier_score_loss(y, p)) for m, p in oof.items()}
    method = min(brier, key=lambda m: (brier[m], m != "platt"))  # a tie goes to the simpler map
    bins, ece = reliability(oof[method], y)
    grid = np.linspace(x.min(), x.max(), CURVE_POINTS)
    curve = _fit_predict(method, x, y, grid)
    return CalibrationMap(method, n, None, folds, brier, ece, bins,
                          [[float(s), float(p)] for s, p in zip(grid, curve)])
