"""Prediction-powered estimates over every labelled feature (issue 16, first point).

Question answered, per label method x automatic category (and 'all' categories): what share
of the method's live labels would humans call correct (and correct-or-partly) -- over all
labelled features, not only the judged ones?

- The **classical** estimate uses the judged labels alone: the mean over judged labels of the
  share of their annotators' verdicts that say "correct", with a CLT interval
  (``ppi_py.classical_mean_ci``).
- The **prediction-powered** estimate (PPI++, Angelopoulos, Duchi & Zrnic 2023; the
  ``ppi_py.ppi_mean_ci`` / ``ppi_mean_pointestimate`` implementation with the power-tuning
  weight ``lambda`` estimated from the data and clipped to [0, 1]) adds the predictions for
  every unjudged label and corrects their bias with the judged ones.  With useless
  predictions lambda goes to 0 and it is the classical estimate; its interval is valid
  whatever the predictions' quality.
- The **predictions** are P(a human says correct) from a logistic map of every benchmark's
  true-label score (a missing score imputed by the training mean, with a missing indicator)
  plus the category and the method: a Platt map over all benchmarks at once.  They are
  **cross-fitted**: the judged labels are split into K folds (K <= 5, by label); the map fitted
  on the other folds predicts a fold's judged labels, and every unjudged label gets the mean of
  the K maps' predictions (cross-prediction, Zrnic & Candes 2024), so no judged label
  predicts itself.
- "Worth N judged labels": the number of judged labels a classical estimate would need for
  an interval as narrow as the PPI one, n x (classical width / PPI width)^2.

Both intervals assume the judged labels are a uniform random sample of the stratum's labels
(the queue draws features at random within a category).  Coverage is checked by a seeded
simulation (tests/validity/ppi_checks.py; fast version in tests/stats/test_ppi.py).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .resample import Estimate

#: Two-sided level of both intervals (as every CI in the report).
PPI_LEVEL = 0.95
#: Fewest judged labels in a stratum for an estimate (the CLT intervals need some).
MIN_JUDGED = 10
MAX_FOLDS = 5
TARGETS = ("correct", "correct_or_partly")
RULE = ("PPI++ (ppi_py.ppi_mean_ci, power-tuned) with cross-fitted predictions from a logistic map of the "
        "benchmark scores, category and method (K <= 5 folds over judged labels); classical: the judged "
        "labels alone (ppi_py.classical_mean_ci); both assume the judged labels are a uniform random "
        "sample of the stratum; 'worth' = judged labels x (classical CI width / PPI CI width)^2")


@dataclass
class PPIEstimate:
    method: str
    category: str  # 'all' or an automatic category
    target: str  # 'correct' | 'correct_or_partly'
    n_labels: int  # live labels of the method in the category (the population)
    n_judged: int  # of them with at least one verdict
    classical: Estimate  # judged labels alone
    ppi: Estimate  # prediction-powered, over all n_labels
    lam: float | None = None  # PPI++ power-tuning weight (0: classical, 1: plain PPI)
    worth: float | None = None  # judged labels a classical CI as narrow would need
    reason: str | None = None


@dataclass
class PPIInputs:
    """Per label of the population (index i): its features for the map, its stratum, and
    (when judged) its verdict rows."""

    x: np.ndarray  # (N, p) design matrix, missing scores as NaN (imputed per fold)
    method: list[str]
    category: list[str | None]
    rows_label: np.ndarray  # (R,) population index of each (label, annotator) verdict row
    rows_code: np.ndarray  # (R,) verdict code: 0 wrong, 1 partly, 2 correct


def _impute(x_tr: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Missing scores -> the training mean (0 when the column is all missing), plus one
    missing-indicator column per score column."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN column: its mean is NaN
        mean = np.nanmean(x_tr, axis=0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    miss = ~np.isfinite(x)
    return np.hstack([np.where(miss, mean, x), miss.astype(float)])


def cross_fit(x: np.ndarray, rows_label: np.ndarray, rows_y: np.ndarray, judged: np.ndarray, seed: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """Cross-fitted P(y) for every population label: (out-of-fold prediction for each judged
    label, mean of the K fold maps' predictions for each unjudged one) as one (N,) array, and
    the fold of each judged label (-1 for unjudged)."""
    from sklearn.linear_model import LogisticRegression

    n_pop = len(x)
    judged_idx = np.flatnonzero(judged)
    k = min(MAX_FOLDS, len(judged_idx))
    fold = np.full(n_pop, -1)
    rng = np.random.default_rng(seed)
    fold[judged_idx] = rng.permutation(np.arange(len(judged_idx)) % k)
    pred = np.zeros(n_pop)
    unjudged = ~judged
    for f in range(k):
        train_rows = fold[rows_label] != f
        tr_labels = np.unique(rows_label[train_rows])
        y_tr = rows_y[train_rows]
        targets = (fold == f) | unjudged
        if y_tr.min() == y_tr.max():  # one class in the training folds: its rate is the best guess
            p = np.full(int(targets.sum()), float(y_tr[0]))
        else:
            xs = _impute(x[tr_labels], x)
            mu, sd = xs[tr_labels].mean(axis=0), xs[tr_labels].std(axis=0)
            sd = np.where(sd > 0, sd, 1.0)
            z = (xs - mu) / sd
            model = LogisticRegression(C=1.0)  # L2: many columns, few judged labels
            model.fit(z[rows_label[train_rows]], y_tr)
            p = model.predict_proba(z[targets])[:, 1]
        out = np.zeros(n_pop)
        out[targets] = p
        pred[fold == f] = out[fold == f]
        pred[unjudged] += out[unjudged] / k
    return pred, fold


def stratum_estimate(y: np.ndarray, yhat: np.ndarray, yhat_unlabeled: np.ndarray, level: float = PPI_LEVEL
                     ) -> tuple[Estimate, Estimate, float | None, float | None, str | None]:
    """(classical, PPI, lambda, worth, reason) for one stratum: ``y`` the judged labels' shares,
    ``yhat`` their cross-fitted predictions, ``yhat_unlabeled`` the unjudged labels' ones."""
    from ppi_py import classical_mean_ci, ppi_mean_ci, ppi_mean_pointestimate

    n, n_unl = len(y), len(yhat_unlabeled)
    if n < MIN_JUDGED:
        why = f"not enough data (n={n} judged labels, need {MIN_JUDGED})"
        return Estimate.missing(n, why), Estimate.missing(n + n_unl, why), None, None, why
    alpha = 1 - level
    lo, hi = classical_mean_ci(y, alpha=alpha)
    classical = Estimate(float(y.mean()), n, [float(lo), float(hi)])
    if n_unl == 0:
        why = "every label of the stratum is judged: the classical estimate is the whole population's"
        return classical, Estimate(classical.value, n, classical.ci, why), 0.0, float(n), why
    if np.ptp(y) == 0 and np.ptp(np.concatenate([yhat, yhat_unlabeled])) == 0:
        why = "judged shares and predictions are all equal: no interval"
        return classical, Estimate(float(y[0]), n + n_unl, None, why), None, None, why
    lam = _lambda(y, yhat, yhat_unlabeled)
    value = float(np.squeeze(ppi_mean_pointestimate(y, yhat, yhat_unlabeled, lam=lam)))
    lo, hi = ppi_mean_ci(y, yhat, yhat_unlabeled, alpha=alpha, lam=lam)
    ppi = Estimate(value, n + n_unl, [float(np.squeeze(lo)), float(np.squeeze(hi))])
    width_c, width_p = classical.ci[1] - classical.ci[0], ppi.ci[1] - ppi.ci[0]
    worth = float(n * (width_c / width_p) ** 2) if width_p > 0 else None
    return classical, ppi, lam, worth, None


def _lambda(y: np.ndarray, yhat: np.ndarray, yhat_unlabeled: np.ndarray) -> float:
    """PPI++'s power-tuning weight for a mean, the formula ``ppi_py`` uses for ``lam=None``:
    cov(y, yhat) / ((1 + n/N) var(all predictions)), clipped to [0, 1].  Computed here once
    so the point estimate, the interval and the report share it (a test checks it against the
    library's own choice)."""
    n, n_unl = len(y), len(yhat_unlabeled)
    cov = float(np.mean((y - y.mean()) * (yhat - yhat.mean())))
    var = float(np.var(np.concatenate([yhat, yhat_unlabeled]), ddof=1))
    if not var > 0:
        return 0.0
    return float(np.clip(cov / ((1 + n / n_unl) * var), 0.0, 1.0))


def estimates(inp: PPIInputs, categories: list[str], *, seed: int, level: float = PPI_LEVEL,
              targets: tuple[str, ...] = TARGETS) -> list[PPIEstimate]:
    """Every method x category (plus 'all') x target estimate of the population in ``inp``."""
    n_pop = len(inp.method)
    judged = np.zeros(n_pop, bool)
    judged[inp.rows_label] = True
    counts = np.bincount(inp.rows_label, minlength=n_pop).astype(float)
    out: list[PPIEstimate] = []
    preds = {}
    shares = {}
    for target in targets:
        rows_y = (inp.rows_code == 2) if target == "correct" else (inp.rows_code >= 1)
        rows_y = rows_y.astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            shares[target] = np.bincount(inp.rows_label, weights=rows_y, minlength=n_pop) / counts
        preds[target] = (cross_fit(inp.x, inp.rows_label, rows_y, judged, seed)[0]
                         if judged.sum() >= 2 and n_pop else np.zeros(n_pop))
    method = np.array(inp.method, dtype=object)
    category = np.array([c if c is not None else "" for c in inp.category], dtype=object)
    for m in sorted(set(inp.method)):
        for cat in ["all", *categories]:
            member = (method == m) & ((category == cat) if cat != "all" else True)
            if not member.any():
                continue
            for target in targets:
                lab, unl = member & judged, member & ~judged
                c, p, lam, worth, why = stratum_estimate(shares[target][lab], preds[target][lab],
                                                         preds[target][unl], level)
                out.append(PPIEstimate(m, cat, target, int(member.sum()), int(lab.sum()), c, p, lam, worth, why))
    return out


def inputs(labels: dict, features: dict, true_by: dict[str, dict[str, float]], benchmarks: list[str],
           verdict_rows: list[tuple[str, str, int]]) -> PPIInputs:
    """The population (every live label) and its design matrix from the project's data:
    one column per benchmark (the label's true-label score, NaN when unscored), one-hot
    category and one-hot method."""
    from store.judgments import TIERS

    pop = [lab for lab in labels.values() if lab.live]
    index = {lab.uuid: i for i, lab in enumerate(pop)}
    methods = sorted({lab.method for lab in pop})
    cats = [features[lab.feature_id].category if lab.feature_id in features else None for lab in pop]
    x = np.full((len(pop), len(benchmarks) + len(TIERS) + len(methods)), np.nan)
    for i, lab in enumerate(pop):
        for j, b in enumerate(benchmarks):
            x[i, j] = true_by[b].get(lab.uuid, np.nan)
        x[i, len(benchmarks):] = 0.0
        if cats[i] in TIERS:
            x[i, len(benchmarks) + TIERS.index(cats[i])] = 1.0
        x[i, len(benchmarks) + len(TIERS) + methods.index(lab.method)] = 1.0
    rows = [(index[u], code) for u, _, code in verdict_rows if u in index]
    return PPIInputs(x, [lab.method for lab in pop], cats,
                     np.array([r[0] for r in rows], dtype=int), np.array([r[1] for r in rows], dtype=int))
