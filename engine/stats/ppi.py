"""Prediction-powered estimates over every labelled feature (issue 16).

Questions answered:

- per label method x automatic category (and 'all' categories): what share of the method's
  live labels would humans call correct (and correct-or-partly) -- over all labelled
  features, not only the judged ones (:class:`PPIEstimate`);
- per human tier (input / output / cross / obscure, as humans judge it) x automatic category
  (and 'all'): what share of the features humans would put in that tier (:class:`TierShare`).

- The **classical** estimate uses the judged items alone: the mean over judged items of the
  share of their annotators' verdicts (tiers) that say "correct" (the tier), with a CLT
  interval (``ppi_py.classical_mean_ci``).
- The **prediction-powered** estimate (PPI++, Angelopoulos, Duchi & Zrnic 2023; the
  ``ppi_py.ppi_mean_ci`` / ``ppi_mean_pointestimate`` implementation with the power-tuning
  weight ``lambda`` estimated from the data and clipped to [0, 1]) adds the predictions for
  every unjudged item and corrects their bias with the judged ones.  With useless
  predictions lambda goes to 0 and it is the classical estimate; its interval is valid
  whatever the predictions' quality.
- The **predictions** are logistic maps, **cross-fitted** (the judged items split into K <= 5
  folds; the map fitted on the other folds predicts a fold's judged items, every unjudged
  item gets the mean of the K maps' predictions, Zrnic & Candes 2024), so no judged item
  predicts itself.  Labels: P(a human says correct) from every benchmark's true-label score
  (a missing score imputed by the training mean, with a missing indicator), the category and
  the method.  Tiers: P(a human picks the tier) from the feature's input and output scores
  and its automatic category (one map per tier).
- **'all' categories is stratified** (stratified PPI, Fisch et al. 2024): the queue draws
  features at random *within* each automatic category, round-robin over categories, so the
  judged items are not a uniform sample of all items.  Each category is its own stratum with
  its own PPI++ estimate (its own lambda); the 'all' figure is their population-weighted mean
  sum_k (N_k / N) theta_k with variance sum_k (N_k / N)^2 var_k, a normal interval.  A
  stratum with fewer than :data:`MIN_JUDGED` judged items enters with its classical mean
  (variance with ddof=1); one with fewer than 2 leaves 'all' without an estimate.  The
  stratification is written here (``ppi_py`` has no stratified estimator); every stratum's
  figure is the library's.
- "Worth N judged items": the number of judged items a classical estimate would need for an
  interval as narrow as the PPI one, n x (classical width / PPI width)^2.
- **Stopping rule** (:func:`more_needed`): the CI width now, and about how many more judged
  features would bring it to the project's ``target_ci_width``.  The variance of a PPI
  estimate is the library's rectifier part A / n plus its imputed part B (which judging more
  does not shrink); A and B are read off the current data, and the judged count n' that
  brings z * 2 * sqrt(A / n' + B) to the target is found per stratum; for 'all', the extra
  features are spread over the categories as the stratified queue does (equal numbers,
  each category capped at what it has left).  tests/stats/test_ppi.py checks it against the
  simulation: after adding the projected number the width is near the target.

Both intervals assume the judged items are a uniform random sample within each stratum
(the stratified queue).  Coverage is checked by a seeded simulation (tests/validity/
ppi_checks.py; fast version in tests/stats/test_ppi.py).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from .resample import Estimate

#: Two-sided level of both intervals (as every CI in the report).
PPI_LEVEL = 0.95
#: Fewest judged items in a stratum for an estimate (the CLT intervals need some).
MIN_JUDGED = 10
#: Fewest judged items a stratum needs to enter the stratified 'all' figure (classical below MIN_JUDGED).
MIN_STRATUM = 2
MAX_FOLDS = 5
TARGETS = ("correct", "correct_or_partly")
UNSCORED = "unscored"
RULE = ("PPI++ (ppi_py.ppi_mean_ci, power-tuned) with cross-fitted predictions from a logistic map of the "
        "benchmark scores, category and method (K <= 5 folds over judged labels); classical: the judged "
        "labels alone (ppi_py.classical_mean_ci); 'all' categories is stratified by automatic category "
        "(per-category estimates weighted by their share of the labels: the queue samples within "
        "categories); both assume the judged labels are a uniform random sample within each category; "
        "'worth' = judged labels x (classical CI width / PPI CI width)^2")
TIER_RULE = ("share of features humans would put in each tier: PPI++ (ppi_py.ppi_mean_ci, power-tuned) with "
             "cross-fitted predictions P(tier) from a logistic map of the input and output scores and the "
             "automatic category (K <= 5 folds over judged features); classical: the judged features "
             "alone; 'all' is stratified by automatic category; valid if the judged features are a uniform "
             "random sample within each category (the stratified queue)")
STOP_RULE = ("more judged features to reach the target CI width: the PPI variance A/n + B (rectifier and "
             "imputed parts, read off the current data) solved for n; for 'all', the extra features spread "
             "evenly over the categories as the stratified queue does; an estimate, not a promise")


@dataclass
class Stopping:
    """The stopping rule for one estimate: its CI width now and about how many more judged
    features (each by ``overlap`` annotators, as the queue hands them out) reach the target."""

    width: float | None  # width of the PPI CI now (the classical one when PPI has none)
    target: float
    more: int | None = None  # more judged features: 0 when the target is reached
    reachable: bool = True  # False: even every remaining feature judged leaves it wider
    reason: str | None = None

    def text(self) -> str:
        if self.width is None:
            return self.reason or "—"
        if not self.reachable:
            return (f"width {self.width:.3f}; the target {self.target:.3g} is not reached even with every "
                    f"remaining feature judged ({self.more:,} more)")
        if self.more == 0:
            return f"width {self.width:.3f} <= target {self.target:.3g}: reached"
        return f"width {self.width:.3f}; about {self.more:,} more judged features to reach {self.target:.3g}"


@dataclass
class PPIEstimate:
    method: str
    category: str  # 'all' or an automatic category
    target: str  # 'correct' | 'correct_or_partly'
    n_labels: int  # live labels of the method in the category (the population)
    n_judged: int  # of them with at least one verdict
    classical: Estimate  # judged labels alone
    ppi: Estimate  # prediction-powered, over all n_labels
    lam: float | None = None  # PPI++ power-tuning weight (0: classical, 1: plain PPI); None for 'all'
    worth: float | None = None  # judged labels a classical CI as narrow would need
    reason: str | None = None
    stratified: bool = False  # 'all': combined over the automatic categories
    stopping: Stopping | None = None


@dataclass
class TierShare:
    """Share of the features (of an automatic category, or all) humans would put in ``tier``."""

    tier: str
    category: str  # 'all' or an automatic category ('unscored' for features without one)
    n_features: int
    n_judged: int  # of them with at least one human tier
    classical: Estimate
    ppi: Estimate
    lam: float | None = None
    worth: float | None = None
    reason: str | None = None
    stratified: bool = False
    stopping: Stopping | None = None


@dataclass
class PPIInputs:
    """Per item of the population (index i): its features for the map, its stratum, and
    (when judged) its verdict rows."""

    x: np.ndarray  # (N, p) design matrix, missing scores as NaN (imputed per fold)
    method: list[str]
    category: list[str | None]
    rows_label: np.ndarray  # (R,) population index of each (item, annotator) row
    rows_code: np.ndarray  # (R,) verdict code: 0 wrong, 1 partly, 2 correct (tiers: index in TIERS)
    # Features per queue category and how many of them are judged (for the stopping rule's
    # conversion from items of a stratum to features the queue hands out); None: one item per feature.
    cat_features: dict[str, int] | None = None
    cat_judged: dict[str, int] | None = None


@dataclass
class Part:
    """One stratum: its size, judged count, both estimates and the pieces of their variances
    (the library's formulas: classical var = c_unit / n; PPI var = p_rect / n + p_imp)."""

    n_pop: int
    n: int
    c_value: float
    c_unit: float
    p_value: float
    p_rect: float
    p_imp: float
    lam: float | None
    category: str = ""

    def var(self, n: float | None = None, *, kind: str = "ppi") -> float:
        """Variance of the estimate with ``n`` judged items (now: the current count)."""
        n = self.n if n is None else n
        if n >= self.n_pop:
            n = self.n_pop
        c = self.c_unit / n
        return c if kind == "classical" else min(c, self.p_rect / n + self.p_imp)


def z_of(level: float) -> float:
    return NormalDist().inv_cdf((1 + level) / 2)


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
    """Cross-fitted P(y) for every population item: (out-of-fold prediction for each judged
    item, mean of the K fold maps' predictions for each unjudged one) as one (N,) array, and
    the fold of each judged item (-1 for unjudged)."""
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
            model = LogisticRegression(C=1.0, solver="newton-cholesky")  # L2; Newton: few columns, a few fast steps
            model.fit(z[rows_label[train_rows]], y_tr)
            p = model.predict_proba(z[targets])[:, 1]
        out = np.zeros(n_pop)
        out[targets] = p
        pred[fold == f] = out[fold == f]
        pred[unjudged] += out[unjudged] / k
    return pred, fold


def part(y: np.ndarray, yhat: np.ndarray, yhat_unlabeled: np.ndarray, level: float = PPI_LEVEL
         ) -> tuple[Estimate, Estimate, float | None, float | None, str | None, Part | None]:
    """(classical, PPI, lambda, worth, reason, Part) for one stratum: ``y`` the judged items'
    shares, ``yhat`` their cross-fitted predictions, ``yhat_unlabeled`` the unjudged items' ones.
    The Part is None when the stratum has too few judged items even for the stratified 'all'."""
    from ppi_py import classical_mean_ci, ppi_mean_ci, ppi_mean_pointestimate

    n, n_unl = len(y), len(yhat_unlabeled)
    if n < MIN_JUDGED:
        why = f"not enough data (n={n} judged, need {MIN_JUDGED})"
        small = None
        if n >= MIN_STRATUM or (n and n_unl == 0):  # classical, ddof=1, for the stratified 'all' only
            if np.ptp(y) == 0 and n_unl:  # unanimous: never a stratum without variance
                centre, unit, _ = add_two(float(y[0]), n, level)
            else:
                centre, unit = float(y.mean()), float(np.var(y, ddof=1)) if n > 1 else 0.0
            small = Part(n + n_unl, n, centre, unit, centre, unit, 0.0, None)
        return Estimate.missing(n, why), Estimate.missing(n + n_unl, why), None, None, why, small
    alpha = 1 - level
    lo, hi = classical_mean_ci(y, alpha=alpha)
    classical_ci = [float(lo), float(hi)]
    c_mean = float(y.mean())
    classical = Estimate(c_mean, n, classical_ci)
    c_unit = float(np.var(y))  # the library's Y.std()**2 (ddof 0)
    if n_unl == 0:
        why = "every item of the stratum is judged: the classical estimate is the whole population's"
        return (classical, Estimate(classical.value, n, classical.ci, why), 0.0, float(n), why,
                Part(n, n, c_mean, c_unit, c_mean, c_unit, 0.0, 0.0))
    if np.ptp(y) == 0:
        # Every judged item agrees (all 'correct', or every annotator picks the same tier): the CLT
        # interval has width 0.  Both intervals then use the Agresti-Coull interval (see add_two).
        centre, unit, ci = add_two(float(y[0]), n, level)
        why = "every judged item agrees: Agresti-Coull interval, predictions not used"
        return (Estimate(float(y[0]), n, ci), Estimate(float(y[0]), n + n_unl, list(ci), why), 0.0, float(n), why,
                Part(n + n_unl, n, centre, unit, centre, unit, 0.0, 0.0))
    lam = _lambda(y, yhat, yhat_unlabeled)
    value = float(np.squeeze(ppi_mean_pointestimate(y, yhat, yhat_unlabeled, lam=lam)))
    lo, hi = ppi_mean_ci(y, yhat, yhat_unlabeled, alpha=alpha, lam=lam)
    ppi_ci = [float(np.squeeze(lo)), float(np.squeeze(hi))]
    ppi = Estimate(value, n + n_unl, ppi_ci)
    width_c, width_p = classical_ci[1] - classical_ci[0], ppi_ci[1] - ppi_ci[0]
    worth = float(n * (width_c / width_p) ** 2) if width_p > 0 else None
    # ppi_mean_ci's own variance pieces: rectifier (Y - lam Yhat).std()^2 / n, imputed (lam Yhat_unl).std()^2 / N
    p = Part(n + n_unl, n, c_mean, c_unit, value, float(np.var(y - lam * yhat)),
             float(np.var(lam * yhat_unlabeled)) / n_unl, lam)
    return classical, ppi, lam, worth, None, p


def add_two(share: float, n: int, level: float = PPI_LEVEL) -> tuple[float, float, list[float]]:
    """The Agresti-Coull interval (Agresti & Coull 1998) for ``n`` judged items that all agree
    (``share`` 0 or 1), where the CLT interval has width 0: add two successes and two failures,
    p~ = (n share + 2) / (n + 4), interval p~ -+ z sqrt(p~ (1 - p~) / (n + 4)), clipped to [0, 1].
    Returns (p~, the unit variance that gives that variance over ``n`` items in :class:`Part`'s
    ``unit / n`` form, the interval).  The point estimate shown stays ``share``; the stratified
    'all' combines the strata at p~, the interval's centre, so it inherits the same coverage."""
    pt = (n * share + 2) / (n + 4)
    var = pt * (1 - pt) / (n + 4)
    half = z_of(level) * math.sqrt(var)
    return pt, var * n, [max(0.0, pt - half), min(1.0, pt + half)]


def stratum_estimate(y: np.ndarray, yhat: np.ndarray, yhat_unlabeled: np.ndarray, level: float = PPI_LEVEL
                     ) -> tuple[Estimate, Estimate, float | None, float | None, str | None]:
    """(classical, PPI, lambda, worth, reason) for one stratum (see :func:`part`)."""
    return part(y, yhat, yhat_unlabeled, level)[:5]


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


def combine(parts: dict[str, Part | None], sizes: dict[str, int], level: float = PPI_LEVEL
            ) -> tuple[Estimate, Estimate, float | None, str | None]:
    """Stratified estimate over the strata in ``sizes`` (name -> population): (classical, PPI,
    worth, reason).  Every stratum with a population needs a Part."""
    n_pop = sum(sizes.values())
    n = sum(p.n for p in parts.values() if p is not None)
    short = sorted(k for k, size in sizes.items() if size and parts.get(k) is None)
    if short:
        why = (f"not enough data: category {', '.join(short)} has fewer than {MIN_STRATUM} judged "
               f"(each category is a stratum)")
        return Estimate.missing(n, why), Estimate.missing(n_pop, why), None, why
    z = z_of(level)
    w = {k: size / n_pop for k, size in sizes.items() if size}
    ready = {k: p for k, p in parts.items() if p is not None}   # every k of w (checked above)
    out, widths = [], []
    for kind in ("classical", "ppi"):
        value = sum(w[k] * (ready[k].c_value if kind == "classical" else ready[k].p_value) for k in w)
        se = math.sqrt(sum(w[k] ** 2 * ready[k].var(kind=kind) for k in w))
        widths.append(2 * z * se)  # 'worth' compares the unclipped widths
        # a share: the normal interval clipped to [0, 1] (only ever adds coverage)
        ci = [max(0.0, value - z * se), min(1.0, value + z * se)]
        out.append(Estimate(float(value), n if kind == "classical" else n_pop, ci))
    wc, wp = widths
    worth = float(n * (wc / wp) ** 2) if wp > 0 else None
    return out[0], out[1], worth, None


def _spread(total: int, room: dict[str, int]) -> dict[str, int]:
    """``total`` more features spread as the stratified queue does: equal turns per category,
    a category out of unjudged features dropping out (water-filling)."""
    left, give = total, {k: 0 for k in room}
    open_ = sorted((r, k) for k, r in room.items() if r > 0)
    while left > 0 and open_:
        share = left // len(open_) or 1
        r, k = open_[0]
        if r - give[k] <= share:  # the smallest fills up
            step = r - give[k]
            for _, kk in open_:
                add = min(step, left)
                give[kk] += add
                left -= add
            open_ = [(rr, kk) for rr, kk in open_ if rr - give[kk] > 0]
        else:
            for _, kk in open_:
                add = min(share, left)
                give[kk] += add
                left -= add
    return give


def more_needed(parts: dict[str, Part], weights: dict[str, float], per_feature: dict[str, float],
                room: dict[str, int], target: float, level: float = PPI_LEVEL) -> Stopping:
    """Stopping rule for the estimate sum_k w_k theta_k over ``parts``: its width now, and the
    fewest more judged features (spread over the categories by :func:`_spread`; ``room``: the
    unjudged features per category; ``per_feature``: a stratum's items per feature of its
    category) that bring it to ``target``."""
    z = z_of(level)

    def width(extra: int) -> float:
        give = _spread(extra, room)
        var = 0.0
        for k, p in parts.items():
            n = min(p.n_pop, p.n + give.get(p.category, 0) * per_feature.get(k, 1.0))
            var += weights[k] ** 2 * p.var(n)
        return 2 * z * math.sqrt(var)

    now = width(0)
    if now <= target:
        return Stopping(now, target, 0)
    hi = sum(room.values())
    if hi == 0 or width(hi) > target:
        return Stopping(now, target, hi, False)
    lo = 0  # width(lo) > target >= width(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if width(mid) <= target else (mid, hi)
    return Stopping(now, target, hi)


def _stratified_rows(member: np.ndarray, judged: np.ndarray, share: np.ndarray, pred: np.ndarray,
                     strata: np.ndarray, names: list[str], level: float, target_width: float | None,
                     inp: PPIInputs):
    """Per stratum name and 'all': (name, n_pop, n_judged, classical, ppi, lam, worth, reason,
    stratified, stopping)."""
    rows, parts, sizes = [], {}, {}
    feats = inp.cat_features or {}
    cat_judged = inp.cat_judged or {}
    room = {k: feats.get(k, 0) - cat_judged.get(k, 0) for k in names}
    per_feature = {}
    for name in names:
        m = member & (strata == name)
        sizes[name] = int(m.sum())
        if not m.any():
            continue
        lab, unl = m & judged, m & ~judged
        c, p, lam, worth, why, pt = part(share[lab], pred[lab], pred[unl], level)
        if pt is not None:
            pt.category = name
        parts[name] = pt
        per_feature[name] = sizes[name] / feats[name] if feats.get(name) else 1.0
        stop = None
        if target_width is not None:
            if p.value is None or p.ci is None or pt is None:   # an interval comes with its Part
                stop = Stopping(None, target_width, reason=why)
            else:
                stop = more_needed({name: pt}, {name: 1.0}, per_feature,
                                   {name: room[name] if feats else int(unl.sum())}, target_width, level)
        rows.append((name, sizes[name], int(lab.sum()), c, p, lam, worth, why, False, stop))
    sizes = {k: v for k, v in sizes.items() if v}
    if sizes:
        c, p, worth, why = combine(parts, sizes, level)
        n_pop = sum(sizes.values())
        stop = None
        if target_width is not None:
            if why:
                stop = Stopping(None, target_width, reason=why)
            else:
                ready = {k: pk for k, pk in parts.items() if pk is not None}   # every stratum (no reason)
                stop = more_needed(ready, {k: sizes[k] / n_pop for k in sizes}, per_feature,
                                   room if feats else {k: ready[k].n_pop - ready[k].n for k in sizes},
                                   target_width, level)
        rows.insert(0, ("all", n_pop, int((member & judged).sum()), c, p, None, worth, why, True, stop))
    return rows


def estimates(inp: PPIInputs, categories: list[str], *, seed: int, level: float = PPI_LEVEL,
              targets: tuple[str, ...] = TARGETS, target_width: float | None = None,
              preds_out: dict | None = None) -> list[PPIEstimate]:
    """Every method x category (plus 'all', stratified) x target estimate of the population in
    ``inp``; ``preds_out`` (if given) receives per target (cross-fitted predictions, judged
    items' shares, judged mask)."""
    n_pop = len(inp.method)
    judged = np.zeros(n_pop, bool)
    judged[inp.rows_label] = True
    counts = np.bincount(inp.rows_label, minlength=n_pop).astype(float)
    method = np.array(inp.method, dtype=object)
    strata = np.array([c if c is not None else UNSCORED for c in inp.category], dtype=object)
    names = list(categories) + ([UNSCORED] if UNSCORED not in categories and (strata == UNSCORED).any() else [])
    out: list[PPIEstimate] = []
    for target in targets:
        rows_y = ((inp.rows_code == 2) if target == "correct" else (inp.rows_code >= 1)).astype(float)
        share, pred = _share_and_prediction(inp, rows_y, judged, counts, seed)
        if preds_out is not None:
            preds_out[target] = (pred, share, judged)
        for m in sorted(set(inp.method)):
            for name, size, nj, c, p, lam, worth, why, strat, stop in _stratified_rows(
                    method == m, judged, share, pred, strata, names, level, target_width, inp):
                out.append(PPIEstimate(m, name, target, size, nj, c, p, lam, worth, why, strat, stop))
    order = {t: i for i, t in enumerate(targets)}
    cat_order = {c: i for i, c in enumerate(["all", *names])}
    out.sort(key=lambda e: (e.method, cat_order[e.category], order[e.target]))
    return out


def _share_and_prediction(inp: PPIInputs, rows_y: np.ndarray, judged: np.ndarray, counts: np.ndarray,
                          seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per population item: the share of its judgments that hit the target (NaN when unjudged)
    and its cross-fitted prediction (zeros with fewer than 2 judged items)."""
    n_pop = len(judged)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.bincount(inp.rows_label, weights=rows_y, minlength=n_pop) / counts
    pred = (cross_fit(inp.x, inp.rows_label, rows_y, judged, seed)[0]
            if judged.sum() >= 2 and n_pop else np.zeros(n_pop))
    return share, pred


def tier_estimates(inp: PPIInputs, tiers: tuple[str, ...], categories: list[str], *, seed: int,
                   level: float = PPI_LEVEL, target_width: float | None = None,
                   preds_out: dict | None = None) -> list[TierShare]:
    """Per human tier x automatic category (plus 'all', stratified): the share of the features
    humans would put in that tier.  ``inp.rows_code`` holds each (feature, annotator) tier as its
    index in ``tiers``."""
    n_pop = len(inp.category)
    judged = np.zeros(n_pop, bool)
    judged[inp.rows_label] = True
    counts = np.bincount(inp.rows_label, minlength=n_pop).astype(float)
    strata = np.array([c if c is not None else UNSCORED for c in inp.category], dtype=object)
    names = [*categories, UNSCORED]
    everyone = np.ones(n_pop, bool)
    out: list[TierShare] = []
    for t, tier in enumerate(tiers):
        rows_y = (inp.rows_code == t).astype(float)
        share, pred = _share_and_prediction(inp, rows_y, judged, counts, seed)
        if preds_out is not None:
            preds_out[tier] = (pred, share, judged)
        for name, size, nj, c, p, lam, worth, why, strat, stop in _stratified_rows(
                everyone, judged, share, pred, strata, names, level, target_width, inp):
            out.append(TierShare(tier, name, size, nj, c, p, lam, worth, why, strat, stop))
    return out


def _queue_counts(features: dict, judged_features: set[int]) -> tuple[dict[str, int], dict[str, int]]:
    """Features per queue category and how many of them are judged."""
    total: dict[str, int] = {}
    done: dict[str, int] = {}
    for fid, f in features.items():
        cat = f.category if f.category is not None else UNSCORED
        total[cat] = total.get(cat, 0) + 1
        done[cat] = done.get(cat, 0) + (fid in judged_features)
    return total, done


def inputs(labels: dict, features: dict, true_by: dict[str, dict[str, float]], benchmarks: list[str],
           verdict_rows: list[tuple[str, str, int]], judged_features: set[int] | None = None) -> PPIInputs:
    """The population (every live label) and its design matrix from the project's data:
    one column per benchmark (the label's true-label score, NaN when unscored), one-hot
    category and one-hot method."""
    from saegold.store.judgments import TIERS

    pop = [lab for lab in labels.values() if lab.live]
    index = {lab.uuid: i for i, lab in enumerate(pop)}
    methods = sorted({lab.method for lab in pop})
    cats = [features[lab.feature_id].category if lab.feature_id in features else None for lab in pop]
    x = np.full((len(pop), len(benchmarks) + len(TIERS) + len(methods)), np.nan)
    for j, b in enumerate(benchmarks):
        scores = true_by[b]
        x[:, j] = [scores.get(lab.uuid, np.nan) for lab in pop]
    x[:, len(benchmarks):] = 0.0
    for i, lab in enumerate(pop):
        if cats[i] in TIERS:
            x[i, len(benchmarks) + TIERS.index(cats[i])] = 1.0
        x[i, len(benchmarks) + len(TIERS) + methods.index(lab.method)] = 1.0
    rows = [(index[u], code) for u, _, code in verdict_rows if u in index]
    if judged_features is None:
        judged_features = {pop[i].feature_id for i, _ in rows}
    total, done = _queue_counts(features, judged_features)
    return PPIInputs(x, [lab.method for lab in pop], cats,
                     np.array([r[0] for r in rows], dtype=int), np.array([r[1] for r in rows], dtype=int),
                     total, done)


def tier_inputs(features: dict, tier_rows: list[tuple[int, str, str]], judged_features: set[int] | None = None
                ) -> PPIInputs:
    """The population (every feature) for the tier shares: input and output score (NaN when
    unscored) and one-hot automatic category; ``tier_rows``: (feature id, annotator, tier)."""
    from saegold.store.judgments import TIERS

    ids = sorted(features)
    index = {fid: i for i, fid in enumerate(ids)}
    x = np.zeros((len(ids), 2 + len(TIERS)))
    for i, fid in enumerate(ids):
        f = features[fid]
        x[i, 0] = np.nan if f.input_score is None else f.input_score
        x[i, 1] = np.nan if f.output_score is None else f.output_score
        if f.category in TIERS:
            x[i, 2 + TIERS.index(f.category)] = 1.0
    rows = [(index[fid], TIERS.index(t)) for fid, _, t in tier_rows if fid in index and t in TIERS]
    if judged_features is None:
        judged_features = {fid for fid, _, _ in tier_rows}
    total, done = _queue_counts(features, judged_features)
    return PPIInputs(x, [""] * len(ids), [features[fid].category for fid in ids],
                     np.array([r[0] for r in rows], dtype=int), np.array([r[1] for r in rows], dtype=int),
                     total, done)
