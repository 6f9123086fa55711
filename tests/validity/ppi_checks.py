"""Seeded simulation of the prediction-powered estimates in `calibrate` (issue 16, first point).

Run: .venv/bin/python tests/validity/ppi_checks.py [--reps N] [--seed S]   (90% intervals: N worlds; 95%: N/2)

World: a label method with N labels on features of one category; each label has a latent
quality q ~ N(0, 1) and P(a human says correct) = 1 / (1 + exp(-1.5 q)), P(correct or partly)
= P + (1 - P) / 2.  n labels, drawn uniformly, are judged by 2 annotators each (independent
verdicts given the label).  One benchmark scores every label: informative (score = q + N(0,
0.5^2)) or useless (score independent of q).  The truth is the mean of P (and of P(correct or
partly)) over the N labels.  Each replication runs the engine's own estimator
(engine.stats.ppi.estimates: cross-fitted predictions, PPI++ and classical intervals) and
counts how often each interval covers the truth, with its Monte Carlo error, and the mean
widths.  The suite runs it with fewer replications (tests/stats/test_ppi.py).
"""
from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np


def ppi_world(rng: np.random.Generator, n_pop: int, n_judged: int, informative: bool):
    """(PPIInputs, truth per target)."""
    from engine.stats.ppi import PPIInputs

    q = rng.normal(size=n_pop)
    p = 1 / (1 + np.exp(-1.5 * q))
    score = q + 0.5 * rng.normal(size=n_pop) if informative else rng.normal(size=n_pop)
    judged = rng.choice(n_pop, size=n_judged, replace=False)
    rows_label = np.repeat(judged, 2)
    u = rng.random(len(rows_label))
    pl = p[rows_label]
    code = np.where(u < pl, 2, np.where(u < pl + (1 - pl) / 2, 1, 0))
    inp = PPIInputs(score[:, None], ["m"] * n_pop, ["input"] * n_pop, rows_label, code)
    return inp, {"correct": float(p.mean()), "correct_or_partly": float((p + (1 - p) / 2).mean())}


def coverage(reps: int, seed: int, *, n_pop: int = 1000, n_judged: int = 100, informative: bool = True,
             level: float = 0.90) -> dict[str, float]:
    from engine.stats.ppi import estimates

    rng = np.random.default_rng(seed)
    hit = {"ppi": 0, "classical": 0}
    width = {"ppi": 0.0, "classical": 0.0}
    worth, n = 0.0, 0
    for r in range(reps):
        inp, truth = ppi_world(rng, n_pop, n_judged, informative)
        for e in estimates(inp, ["input"], seed=r, level=level, targets=("correct",)):
            if e.category != "all" or e.target != "correct":
                continue
            n += 1
            for name, est in (("ppi", e.ppi), ("classical", e.classical)):
                hit[name] += est.ci[0] <= truth[e.target] <= est.ci[1]
                width[name] += est.ci[1] - est.ci[0]
            worth += e.worth
    out = {f"{k} coverage": hit[k] / n for k in hit}
    out.update({f"{k} width": width[k] / n for k in width})
    out["worth"] = worth / n
    out["reps"] = n
    return out


def se(p: float, n: int) -> float:
    return math.sqrt(p * (1 - p) / n)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=16)
    args = ap.parse_args(argv)
    for informative in (True, False):
        for level, reps in ((0.90, args.reps), (0.95, max(1, args.reps // 2))):
            t0 = time.time()
            c = coverage(reps, args.seed, informative=informative, level=level)
            n = c["reps"]
            print(f"{'informative' if informative else 'useless'} scores, 1000 labels, 100 judged by 2, "
                  f"{level:.0%} intervals over {n} worlds: PPI covers {c['ppi coverage']:.1%} ± "
                  f"{se(c['ppi coverage'], n):.1%} (width {c['ppi width']:.3f}), classical "
                  f"{c['classical coverage']:.1%} ± {se(c['classical coverage'], n):.1%} (width "
                  f"{c['classical width']:.3f}); worth {c['worth']:.0f} judged labels "
                  f"[{time.time() - t0:.0f} s]", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
