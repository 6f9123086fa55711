"""Active statistical inference for the queue's ``active`` order (issue 16, Zrnic & Candes 2024).

**Design.**  In ``queue_order = active`` each fresh feature a human is handed is *drawn*
from the whole population of judgeable features with probability

    q(i) = (1 - eta) * w_i / sum_j w_j + eta / M        (M features, eta = UNIFORM_SHARE)

where ``w_i`` is how much a human verdict on feature i would shrink the widest interval
(:func:`weights`): sqrt(f_i (1 - f_i)) for the cross-fitted prediction f_i of the estimate
whose 95% CI is widest (the Neyman-optimal rule for a mean with prediction residual variance
f(1 - f); uncertain predictions -- and the thinly judged categories, whose maps are least sure
-- are drawn more), mixed with a uniform share so no feature has probability 0.  Draws are
with replacement: a draw that hits a feature already held is recorded and costs no new
judgment.  Every draw is stored with its probability (store.queue, table active_draws).

**Estimator** (:func:`hh_ppi`).  Each draw t gives an unbiased estimate of the population total
of y (Hansen-Hurwitz, the with-replacement form of active inference):

    z_t(lam) = (y_It - lam f_It) / q_t(It) + lam * sum_i f_i

so theta = mean_t z_t / N with variance var_t(z_t) / (n N^2) (the draws are a martingale
difference sequence: each q_t may depend on everything before it), a normal interval.  lam is
power-tuned as in PPI++ (cov(a, b) / var(b) with a = y/q, b = f/q, clipped to [0, 1]);
lam = 0 is the inverse-probability-weighted judged-only estimate.  A draw whose feature has no
verdict yet (a lease not judged) is left out: missing at random, as a lease released unjudged.

ppi_py's weighted PPI normalises the weights to the labelled count (a ratio estimator) and
treats labelled and unlabelled items as separate i.i.d. samples; the active design's draws are
with replacement from the whole population with per-draw probabilities, so the estimator is
written here (a few lines of NumPy).  Coverage and the saving in judgments are checked by a
seeded simulation (tests/validity/active_checks.py; fast version tests/stats/test_active.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .ppi import PPI_LEVEL, z_of
from .resample import Estimate

#: Share of each draw's probability spread uniformly over all features (none has probability 0).
UNIFORM_SHARE = 0.2
#: Fewest draws with a verdict for an estimate.
MIN_DRAWS = 10
RULE = ("active queue: features drawn with probability (1 - 0.2) * w / sum(w) + 0.2 / M, w = sqrt(f (1 - f)) "
        "of the widest estimate's prediction, recorded per draw; estimates reweighted by those probabilities "
        "(Hansen-Hurwitz PPI: mean over draws of (y - lam f)/q + lam sum f, power-tuned lam; Zrnic & Candes "
        "2024); draws whose feature has no verdict yet are left out")


def draw_probabilities(w: np.ndarray, eta: float = UNIFORM_SHARE) -> np.ndarray:
    """q over all M features: (1 - eta) w / sum w + eta / M (uniform when every w is 0)."""
    w = np.clip(np.nan_to_num(np.asarray(w, dtype=float)), 0.0, None)
    m = len(w)
    if m == 0:
        return w
    total = w.sum()
    if not total > 0:
        return np.full(m, 1.0 / m)
    return (1 - eta) * w / total + eta / m


#: Bins of the prediction for the residual estimate, and pseudo-rows pulling each bin to f (1 - f).
RESIDUAL_BINS = 10
PRIOR_ROWS = 5


def weights(pred: np.ndarray, judged_pred: np.ndarray | None = None, judged_y: np.ndarray | None = None
            ) -> np.ndarray:
    """How much a verdict on each item would shrink the interval: the root of the expected
    squared residual E[(y - f)^2 | f].  Without judged items it is sqrt(f (1 - f)) (a
    calibrated f); with them, per bin of f (deciles of the judged items' predictions) the mean
    squared residual of the judged items, pulled towards f (1 - f) by PRIOR_ROWS pseudo-rows --
    so a region where the map is wrong (not only unsure) is drawn more."""
    p = np.clip(np.asarray(pred, dtype=float), 0.0, 1.0)
    prior = p * (1 - p)
    if judged_pred is None or judged_y is None or len(judged_pred) < 2 * RESIDUAL_BINS:
        return np.sqrt(prior)
    jp = np.clip(np.asarray(judged_pred, dtype=float), 0.0, 1.0)
    res = (np.asarray(judged_y, dtype=float) - jp) ** 2
    edges = np.unique(np.quantile(jp, np.linspace(0, 1, RESIDUAL_BINS + 1)[1:-1]))
    jb, pb = np.searchsorted(edges, jp), np.searchsorted(edges, p)
    nb = np.bincount(jb, minlength=len(edges) + 1).astype(float)
    sb = np.bincount(jb, weights=res, minlength=len(edges) + 1)
    return np.sqrt((sb[pb] + PRIOR_ROWS * prior) / (nb[pb] + PRIOR_ROWS))


@dataclass
class ActiveEstimate:
    classical: Estimate  # inverse-probability weighted, judged draws alone (lam = 0)
    ppi: Estimate  # Hansen-Hurwitz PPI, power-tuned
    lam: float | None
    n_draws: int
    draw_var: float | None = None  # var over draws of z_t(lam): the part of the variance that falls as 1/n
    verdict_var: float = 0.0  # the verdicts' own variance (does not fall with more draws)


@dataclass
class ActiveStopping:
    """The stopping rule for a reweighted estimate: its CI width now and about how many more
    draws of the active queue (and new features judged, at the share of draws so far that
    handed out a new feature) reach the target width."""

    width: float | None
    target: float
    more_draws: int | None = None  # 0: reached
    more_features: int | None = None
    reachable: bool = True  # False: the verdicts' own variance alone keeps it wider
    reason: str | None = None


def more_draws(est: ActiveEstimate, n_pop: int, target: float, new_share: float = 1.0,
               level: float = PPI_LEVEL) -> ActiveStopping:
    """Projected from the Hansen-Hurwitz variance (draw_var / n + verdict_var) / N^2, with the
    draws' variance held at its value now (the draw probabilities as they are): the width
    2 z sqrt(draw_var / n + verdict_var) / N reaches ``target`` at n = draw_var / ((target N /
    2z)^2 - verdict_var) draws; never when the verdicts' own variance alone is wider."""
    if est.ppi.ci is None or est.draw_var is None:
        return ActiveStopping(None, target, reason=est.ppi.reason or "no interval yet")
    width = est.ppi.ci[1] - est.ppi.ci[0]
    if width <= target:
        return ActiveStopping(width, target, 0, 0)
    room = (target * n_pop / (2 * z_of(level))) ** 2 - est.verdict_var
    if room <= 0:
        return ActiveStopping(width, target, None, None, reachable=False,
                              reason="not reachable: the verdicts' own noise alone is wider")
    more = max(0, math.ceil(est.draw_var / room) - est.n_draws)
    return ActiveStopping(width, target, more, math.ceil(more * new_share))


def hh_ppi(y_draw: np.ndarray, f_draw: np.ndarray, q_draw: np.ndarray, f_total: float, n_pop: int,
           level: float = PPI_LEVEL, verdict_var: float = 0.0) -> ActiveEstimate:
    """Estimate of the population mean of y from draws: ``y_draw`` (the draw's item total of y
    -- the sum over the drawn feature's items in the population, 0 when it has none),
    ``f_draw`` (same for the predictions), ``q_draw`` (its draw probability), ``f_total`` (sum
    of the predictions over the whole population of ``n_pop`` items).

    The draws estimate the mean of the verdicts the population's items would get; the target
    is the mean of P(verdict) (as the PPI estimates'), which differs from it by the verdicts'
    own noise: ``verdict_var`` = sum over the population of var(y_i | P_i), estimated by the
    caller as sum f (1 - f) / annotators, is added to the variance (divided by n_pop^2)."""
    n = len(y_draw)
    if n < MIN_DRAWS:
        why = f"not enough data (n={n} draws with a verdict, need {MIN_DRAWS})"
        return ActiveEstimate(Estimate.missing(n, why), Estimate.missing(n_pop, why), None, n)
    a = y_draw / q_draw
    b = f_draw / q_draw - f_total
    var_b = float(np.var(b, ddof=1))
    lam = float(np.clip(np.cov(a, b, ddof=1)[0, 1] / var_b, 0.0, 1.0)) if var_b > 0 else 0.0
    z = z_of(level)
    out = []
    for lm in (0.0, lam):
        zt = a - lm * b
        value = float(zt.mean()) / n_pop
        draw_var = float(np.var(zt, ddof=1))
        se = math.sqrt(draw_var / n + verdict_var) / n_pop
        out.append(Estimate(value, n if lm == 0.0 else n_pop, [value - z * se, value + z * se]))
    return ActiveEstimate(out[0], out[1], lam, n, draw_var, verdict_var)


@dataclass
class ActiveRow:
    """One 'all' estimate reweighted by the active queue's draw probabilities."""

    kind: str  # 'label' | 'tier'
    name: str  # label method, or tier
    target: str  # 'correct' | 'correct_or_partly' | the tier
    n_items: int  # population: items on the features the queue draws from
    n_draws: int  # draws whose feature has the verdicts needed
    n_features: int  # distinct features among them
    classical: Estimate
    ppi: Estimate
    lam: float | None = None
    reason: str | None = None
    stopping: ActiveStopping | None = None  # with a target width: more draws to reach it


def reweighted(kind: str, name: str, target: str, item_feature: np.ndarray, pred: np.ndarray,
               share: np.ndarray, judged: np.ndarray, draws: list[tuple[int, float, int]],
               pool: set[int], annotators: float, level: float = PPI_LEVEL,
               target_width: float | None = None) -> ActiveRow:
    """The estimate of one population's mean from the active draws: ``item_feature`` (the
    feature of each item), the items' cross-fitted predictions, verdict shares and judged mask;
    ``draws`` (feature, probability, pool size); ``pool`` the features the queue draws from;
    ``annotators`` the mean verdicts per judged item (for the verdicts' own variance)."""
    inside = np.array([f in pool for f in item_feature.tolist()], dtype=bool)
    items_of: dict[int, list[int]] = {}
    for i in np.flatnonzero(inside).tolist():
        items_of.setdefault(int(item_feature[i]), []).append(i)
    ys, fs, qs, feats = [], [], [], set()
    for fid, q, _ in draws:
        mine = items_of.get(fid, [])
        if any(not judged[i] for i in mine):
            continue  # a drawn feature not judged (yet): left out, as a lease released unjudged
        ys.append(float(share[mine].sum()) if mine else 0.0)
        fs.append(float(pred[mine].sum()) if mine else 0.0)
        qs.append(q)
        feats.add(fid)
    f_in = pred[inside]
    est = hh_ppi(np.array(ys), np.array(fs), np.array(qs), float(f_in.sum()), int(inside.sum()), level,
                 verdict_var=float((f_in * (1 - f_in)).sum() / max(annotators, 1.0)))
    stop = None if target_width is None else more_draws(
        est, int(inside.sum()), target_width, new_share=len(feats) / max(len(ys), 1), level=level)
    return ActiveRow(kind, name, target, int(inside.sum()), est.n_draws, len(feats), est.classical, est.ppi,
                     est.lam, est.ppi.reason, stop)
