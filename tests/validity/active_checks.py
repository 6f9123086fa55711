"""Seeded simulation of the active queue (issue 16, point 3): judgments saved and coverage.

Run: .venv/bin/python tests/validity/active_checks.py [--reps N] [--seed S]

Measured (150 worlds, seed 16, loaded 2-core machine, 392 s): to reach a 95% CI width of 0.04,
uniform 530 judged features, active 411 (23% fewer, short of the 25% issue 16 asked for);
coverage after 1000 draws: active 94.7% at 95%, 86.0% +- 2.8% at 90% (uniform 95.3% / 88.7%).

World: N = 2000 features, one label each; latent quality q ~ N(0, 1), P(a human says
correct) = 1 / (1 + exp(-5 q)); one benchmark scores every label, score = q + N(0, 0.2^2)
(SHARP; the gain shrinks as the scores get less informative: with MODERATE, slope 3 and noise
0.3, the variance ratio active/uniform with exact predictions is 0.82 instead of 0.65);
each feature judged is judged by 2 annotators (independent verdicts).  The truth is the
mean of P over the N labels.  Two queues, the same number of draws:

- uniform: every draw uniform over all features (q = 1/N);
- active: the first 50 draws uniform, then every 25 draws the map (logistic of the score, fitted
  on the verdicts so far) is refitted and draws follow engine.stats.active.draw_probabilities of
  engine.stats.active.weights of its predictions (80% sqrt(f(1-f)), 20% uniform).

Draws are with replacement (a repeat costs no judgment).  Every 25 draws both are estimated by
the engine's estimator (engine.stats.active.hh_ppi) with the map fitted so far, to find the
judged features (distinct draws) at which the 95% CI first reaches the target width (0.04);
after 1000 draws, with the engine's cross-fitted predictions (engine.stats.ppi.cross_fit), the
coverage of the 95% and 90% intervals.
"""
from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

N_POP = 2000
BURN_IN = 50
STEP = 25


#: (slope of P(correct) in the quality, benchmark noise sd): the scores' informativeness.
SHARP = (5.0, 0.2)
MODERATE = (3.0, 0.3)


def world(rng: np.random.Generator, n_pop: int = N_POP, kind: tuple[float, float] = SHARP):
    q = rng.normal(size=n_pop)
    p = 1 / (1 + np.exp(-kind[0] * q))
    score = q + kind[1] * rng.normal(size=n_pop)
    return p, score


def _map(score: np.ndarray, judged: np.ndarray, y: np.ndarray) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression

    idx = np.flatnonzero(judged)
    rows_x = np.concatenate([score[idx], score[idx]])
    rows_y = np.concatenate([np.ones(len(idx)), np.zeros(len(idx))])
    w = np.concatenate([y[idx], 1 - y[idx]])  # the share as two weighted rows
    if len(idx) < 2 or w[: len(idx)].sum() == 0 or w[len(idx):].sum() == 0:
        return np.full(len(score), y[idx].mean() if len(idx) else 0.5)
    model = LogisticRegression(C=1.0, solver="newton-cholesky").fit(rows_x[:, None], rows_y, sample_weight=w)
    return model.predict_proba(score[:, None])[:, 1]


def run(rng: np.random.Generator, active: bool, max_draws: int, target: float, seed: int,
        levels=(0.95, 0.90), kind: tuple[float, float] = SHARP):
    """One queue on one world: (judged features when the 95% width first reached target or None,
    {level: covered at the end}, final 95% width)."""
    from saegold.engine.stats import active as act

    p, score = world(rng, kind=kind)
    n_pop = len(p)
    y = np.full(n_pop, np.nan)  # a judged feature's share of 'correct' (2 annotators)
    judged = np.zeros(n_pop, bool)
    draws, probs = [], []
    q = np.full(n_pop, 1.0 / n_pop)
    reached, covered, width = None, {}, None
    while len(draws) < max_draws:
        if active and len(draws) >= BURN_IN and len(draws) % STEP == 0:
            f = _map(score, judged, np.nan_to_num(y))
            q = act.draw_probabilities(act.weights(f, f[judged], y[judged]))
        i = int(rng.choice(n_pop, p=q))
        draws.append(i)
        probs.append(q[i])
        if not judged[i]:
            judged[i] = True
            y[i] = (rng.random(2) < p[i]).mean()
        if len(draws) % STEP == 0 and len(draws) >= BURN_IN and reached is None:
            # the width as the draws go: with the map fitted on all verdicts so far (one fit, not
            # cross-fitted: this only times the stopping point; the final estimate is cross-fitted)
            f = _map(score, judged, np.nan_to_num(y))
            d = np.array(draws)
            est = act.hh_ppi(y[d], f[d], np.array(probs), float(f.sum()), n_pop, level=0.95,
                             verdict_var=float((f * (1 - f)).sum() / 2))
            width = est.ppi.ci[1] - est.ppi.ci[0]
            if reached is None and width <= target:
                reached = int(judged.sum())
    d = np.array(draws)
    truth = float(p.mean())
    f = _cross_fitted(score, judged, y, seed)
    for level in levels:
        est = act.hh_ppi(y[d], f[d], np.array(probs), float(f.sum()), n_pop, level=level,
                         verdict_var=float((f * (1 - f)).sum() / 2))
        covered[level] = est.ppi.ci[0] <= truth <= est.ppi.ci[1]
        if level == 0.95:
            width = est.ppi.ci[1] - est.ppi.ci[0]
    return reached, covered, width, int(judged.sum())


def _cross_fitted(score: np.ndarray, judged: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """The engine's cross-fitted predictions (5 folds over judged features; each feature's
    two verdict rows carry its share: 2 annotators, y in {0, 0.5, 1})."""
    from saegold.engine.stats.ppi import cross_fit

    idx = np.flatnonzero(judged)
    k = np.round(y[idx] * 2).astype(int)  # annotators who said correct
    rows_label = np.repeat(idx, 2)
    rows_y = np.column_stack([k >= 1, k >= 2]).ravel().astype(float)
    return cross_fit(score[:, None], rows_label, rows_y, judged, seed)[0]


def compare(reps: int, seed: int, *, target: float = 0.04, max_draws: int = 1000,
            kind: tuple[float, float] = SHARP) -> dict[str, float]:
    out: dict[str, list] = {"uniform": [], "active": []}
    cover: dict[str, dict[float, int]] = {"uniform": {0.95: 0, 0.90: 0}, "active": {0.95: 0, 0.90: 0}}
    widths: dict[str, float] = {"uniform": 0.0, "active": 0.0}
    for r in range(reps):
        for name in ("uniform", "active"):
            rng = np.random.default_rng([seed, r])  # the same world for both queues
            reached, covered, width, _ = run(rng, name == "active", max_draws, target, seed=r, kind=kind)
            out[name].append(reached if reached is not None else np.nan)
            for level, c in covered.items():
                cover[name][level] += c
            widths[name] += width
    res = {}
    for name in out:
        a = np.array(out[name], dtype=float)
        res[f"{name} judged to target"] = float(np.nanmean(a)) if np.isfinite(a).any() else float("nan")
        res[f"{name} never reached"] = int(np.isnan(a).sum())
        res[f"{name} coverage 95"] = cover[name][0.95] / reps
        res[f"{name} coverage 90"] = cover[name][0.90] / reps
        res[f"{name} final width"] = widths[name] / reps
    res["saving"] = 1 - res["active judged to target"] / res["uniform judged to target"]
    res["reps"] = reps
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=16)
    args = ap.parse_args(argv)
    t0 = time.time()
    c = compare(args.reps, args.seed)
    n = c["reps"]
    se = lambda p: math.sqrt(p * (1 - p) / n)  # noqa: E731
    print(f"{n} worlds of {N_POP} features, target 95% CI width 0.04: judged features to reach it "
          f"uniform {c['uniform judged to target']:.0f}, active {c['active judged to target']:.0f} "
          f"({c['saving']:.0%} fewer; never reached within 1000 draws: {c['uniform never reached']} / "
          f"{c['active never reached']}); coverage after 1000 draws: uniform 95% {c['uniform coverage 95']:.1%}, "
          f"90% {c['uniform coverage 90']:.1%}; active 95% {c['active coverage 95']:.1%} ± "
          f"{se(c['active coverage 95']):.1%}, 90% {c['active coverage 90']:.1%} ± {se(c['active coverage 90']):.1%} "
          f"[{time.time() - t0:.0f} s]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
