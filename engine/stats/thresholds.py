"""Fit the taxonomy thresholds (input, output) that best reproduce the human tiers.

Grid search over candidate thresholds, maximising Cohen's kappa between the derived category
and the human tier.  The candidates for each threshold are exact midpoints between
consecutive observed scores (every one of them up to ``grid``; beyond that, evenly spaced
by rank among them), one value below and one above every score, and always the current
threshold, so the current pair is on the grid and a fit is never worse on the data than the
pair it would replace; on a tie the current pair is kept.  Each (feature, annotator) tier is
one row; grouped K-fold cross-validation over features estimates the kappa a fitted pair
gets on features it was not fitted to.

Whether to recommend the fitted pair (:data:`RULE`): like is compared with like, on the same
held-out rows.  Each row's out-of-fold category (from the pair fitted without its feature)
and its category from the current pair give two kappas against the human tiers on the same
rows; their difference is the gain, and its 95% CI comes from a bootstrap over features
(paired: both categories of a row move together).  A change is recommended only when the
whole CI is above 0, i.e. the gain exceeds its uncertainty (a one-sided 2.5% test); the
current pair is never "beaten" by noise.  The seeded simulation in
``tests/validity/stats_checks.py thresholds`` checks how often this fires when the current
pair is the planted one, and how often when it is clearly wrong.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.model_selection import GroupKFold

from saegold.store import settings
from saegold.store.db import Project
from saegold.store.judgments import TIERS, FeatureJudgment

from . import data
from .defaults import GRID
from .measures import kappa, kappa_from_confusions, weighted_confusions
from .resample import DEFAULT_BOOT, DEFAULT_SEED, Estimate, cluster_counts, estimate

MAX_FOLDS = 5
MIN_ROWS = 10
# Category codes in TIERS order: input, output, cross, obscure.
_CODE = np.array([[3, 1], [0, 2]])  # [is_input][is_output]
RULE = ("a change is recommended only when the gain in kappa of the fitted pair over the current "
        "one, both scored on the same held-out rows (cross-validated fit vs current pair), has a 95% "
        "bootstrap CI over features entirely above 0")


@dataclass
class ThresholdFit:
    n_rows: int
    n_features: int
    current: list[float]  # [input, output]
    current_kappa: float | None
    fitted: list[float] | None = None
    fitted_kappa: float | None = None  # in-sample, on all rows
    cv_kappa: float | None = None  # pooled out-of-fold
    cv_fold_kappas: list[float] = field(default_factory=list)
    folds: int = 0
    grid: list[int] = field(default_factory=list)  # candidates per threshold
    confusion: list[list[int]] = field(default_factory=list)  # human rows x fitted columns
    gain: Estimate | None = None  # cross-validated kappa minus current kappa on the same rows, with CI
    recommended: bool = False  # see RULE
    fitted_is_current: bool = False  # the best pair on the data splits the rows as the current one does
    rule: str = RULE
    reason: str | None = None


def categories(inp: np.ndarray, out: np.ndarray, t_in: float, t_out: float) -> np.ndarray:
    """Category codes (index in TIERS) exactly as :func:`store.features.categorize`."""
    return _CODE[(inp >= t_in).astype(int), (out >= t_out).astype(int)]


def candidates(values: np.ndarray, n: int = GRID, include: tuple[float, ...] = ()) -> np.ndarray:
    """Thresholds that split the observed values differently, sorted: exact midpoints between
    consecutive distinct values (all of them, or ``n`` picked evenly by rank when there are
    more), one value below and one above every value, and the values in ``include`` (the
    current threshold)."""
    u = np.unique(values)
    mids = (u[:-1] + u[1:]) / 2 if len(u) > 1 else np.zeros(0)
    if len(mids) > n:
        mids = mids[np.unique(np.round(np.linspace(0, len(mids) - 1, n)).astype(int))]
    span = float(u[-1] - u[0]) or 1.0
    extra = [float(v) for v in include if np.isfinite(v)]
    return np.unique(np.concatenate([[u[0] - 0.01 * span], mids, [u[-1] + 0.01 * span], extra]))


def _grid_kappas(inp, out, human, c_in, c_out) -> np.ndarray:
    """Kappa of every (input, output) candidate pair on these rows, shape (len(c_in), len(c_out))."""
    k = len(TIERS)
    is_out = (out[None, :] >= c_out[:, None]).astype(int)  # (O, n)
    offs = (np.arange(len(c_out)) * k * k)[:, None]
    result = np.empty((len(c_in), len(c_out)))
    for i, t in enumerate(c_in):  # one input threshold at a time keeps memory at O x n
        codes = _CODE[(inp >= t).astype(int)[None, :], is_out]  # (O, n)
        flat = (codes * k + human[None, :] + offs).ravel()
        conf = np.bincount(flat, minlength=len(c_out) * k * k).reshape(-1, k, k)
        result[i] = np.nan_to_num(kappa_from_confusions(conf), nan=-np.inf)
    return result


def _best(inp, out, human, c_in, c_out, current: Sequence[float]) -> tuple[float, float, float]:
    """The pair of candidates with the highest kappa; the current pair (always a candidate)
    wins every tie, so a fit moves only for a strictly better kappa on these rows."""
    grid = _grid_kappas(inp, out, human, c_in, c_out)
    i, o = np.unravel_index(int(np.argmax(grid)), grid.shape)
    ci, co = np.searchsorted(c_in, current[0]), np.searchsorted(c_out, current[1])
    # Same rows, same split -> the very same confusion matrix and float: an exact tie test is right.
    if ci < len(c_in) and co < len(c_out) and c_in[ci] == current[0] and c_out[co] == current[1] \
            and grid[ci, co] >= grid[i, o]:
        i, o = ci, co
    return float(c_in[i]), float(c_out[o]), float(grid[i, o])


def fit_thresholds(rows: list[tuple[int, float, float, int]], current: tuple[float, float],
                   *, grid: int = GRID, n_boot: int = DEFAULT_BOOT, seed: int = DEFAULT_SEED) -> ThresholdFit:
    """``rows``: (feature_id, input_score, output_score, human tier code)."""
    n = len(rows)
    feats = len({r[0] for r in rows})
    cur = [float(current[0]), float(current[1])]
    if n < MIN_ROWS:
        return ThresholdFit(n, feats, cur, None, reason=f"not enough data (n={n} judged features with "
                                                         f"both scores, need {MIN_ROWS})")
    g = np.array([r[0] for r in rows])
    inp = np.array([r[1] for r in rows], dtype=float)
    out = np.array([r[2] for r in rows], dtype=float)
    human = np.array([r[3] for r in rows], dtype=int)
    cur_kappa, _ = kappa(human, categories(inp, out, *cur), len(TIERS))
    if len(np.unique(human)) < 2:
        return ThresholdFit(n, feats, cur, cur_kappa,
                            reason=f"one tier only among the human judgments (n={n}): nothing to fit")
    c_in, c_out = candidates(inp, grid, (cur[0],)), candidates(out, grid, (cur[1],))
    t_in, t_out, k_in = _best(inp, out, human, c_in, c_out, cur)
    fitted = categories(inp, out, t_in, t_out)
    conf = np.zeros((len(TIERS), len(TIERS)), dtype=int)
    np.add.at(conf, (human, fitted), 1)
    fit = ThresholdFit(n, feats, cur, cur_kappa, [t_in, t_out], k_in, grid=[len(c_in), len(c_out)],
                       confusion=conf.tolist(),
                       fitted_is_current=bool(np.array_equal(fitted, categories(inp, out, *cur))))
    folds = min(MAX_FOLDS, feats)
    if folds < 2:
        fit.reason = f"not enough features to cross-validate (n={feats})"
        return fit
    oof = np.empty(n, dtype=int)
    for train, test in GroupKFold(n_splits=folds).split(inp, human, g):
        a, b, _ = _best(inp[train], out[train], human[train], candidates(inp[train], grid, (cur[0],)),
                        candidates(out[train], grid, (cur[1],)), cur)
        oof[test] = categories(inp[test], out[test], a, b)
        k_fold, _ = kappa(human[test], oof[test], len(TIERS))
        if k_fold is not None:
            fit.cv_fold_kappas.append(k_fold)
    fit.folds = folds
    fit.cv_kappa, why = kappa(human, oof, len(TIERS))
    if fit.cv_kappa is None:
        fit.reason = f"cross-validated kappa undefined ({why})"
    if fit.cv_kappa is not None and cur_kappa is not None:
        fit.gain = _gain(human, oof, categories(inp, out, *cur), g, n_boot, seed)
    fit.recommended = (not fit.fitted_is_current and fit.gain is not None and fit.gain.ci is not None
                       and fit.gain.ci[0] > 0)
    return fit


def _gain(human: np.ndarray, oof: np.ndarray, cur: np.ndarray, g: np.ndarray, n_boot: int, seed: int
          ) -> Estimate:
    """kappa(human, out-of-fold) - kappa(human, current) on the same rows, CI over features."""
    k = len(TIERS)
    _, clusters = np.unique(g, return_inverse=True)
    w = cluster_counts(int(clusters.max()) + 1, n_boot, seed)[:, clusters]
    diff = (kappa_from_confusions(weighted_confusions(human, oof, k, w))
            - kappa_from_confusions(weighted_confusions(human, cur, k, w)))
    k_oof, k_cur = kappa(human, oof, k)[0], kappa(human, cur, k)[0]
    value = k_oof - k_cur if k_oof is not None and k_cur is not None else None
    return estimate(value, len(np.unique(g)), diff)


def why_not_store(fit: ThresholdFit) -> str | None:
    """None when the fitted pair may be stored as it is; otherwise why storing it needs
    ``--force`` (it is not shown to reproduce the human tiers better than the current pair)."""
    if fit.fitted is None:
        return fit.reason or "nothing fitted"
    if fit.fitted_is_current:
        return "the current thresholds already reproduce the human tiers best on these data"
    if fit.current_kappa is not None and (fit.fitted_kappa is None or fit.fitted_kappa < fit.current_kappa):
        return (f"the fitted pair is worse on the data than the current one (kappa {fit.fitted_kappa} "
                f"vs {fit.current_kappa:.3f})")
    if not fit.recommended:
        return f"the fitted pair is not shown to be better than the current one ({decision(fit)})"
    return None


def decision(fit: ThresholdFit) -> str:
    """The gain and the rule, in words, for the report."""
    g = fit.gain
    if g is None or g.value is None:
        return f"gain not estimated: {fit.reason or 'no cross-validated kappa'}; rule: {RULE}"
    ci = f" [{g.ci[0]:+.2f}, {g.ci[1]:+.2f}]" if g.ci else f" (no CI: {g.reason})"
    return f"gain in held-out kappa {g.value:+.2f}{ci} over {g.n_items} features; rule: {RULE}"


def threshold_rows(judged: list[FeatureJudgment], feats: dict[int, data.FeatureInfo]
                   ) -> list[tuple[int, float, float, int]]:
    rows = []
    for j in judged:
        f = feats.get(j.feature_id)
        if j.tier in TIERS and f is not None and f.input_score is not None and f.output_score is not None:
            rows.append((j.feature_id, f.input_score, f.output_score, TIERS.index(j.tier)))
    return rows


def compute(project: Project, *, grid: int = GRID, n_boot: int = DEFAULT_BOOT, seed: int = DEFAULT_SEED
            ) -> ThresholdFit:
    judged, _ = data.judgments(project)
    return fit_thresholds(threshold_rows(judged, data.features(project)), data.thresholds(project), grid=grid,
                          n_boot=n_boot, seed=seed)


def store_thresholds(project: Project, input_threshold: float, output_threshold: float) -> int:
    """Make these the project's thresholds and re-derive every category; return rows updated."""
    with project.write():   # settings.change re-derives the categories in the same transaction
        settings.change(project, {"input_threshold": float(input_threshold),
                                  "output_threshold": float(output_threshold)})
        return project.scalar("SELECT COUNT(*) FROM taxonomy_scores")
