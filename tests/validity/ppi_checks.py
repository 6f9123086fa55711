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
    from saegold.engine.stats.ppi import PPIInputs

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
    from saegold.engine.stats.ppi import estimates

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


STRATA = (("input", 600, -1.0), ("output", 300, 0.5), ("cross", 100, 1.5))  # name, labels, quality shift


def stratified_world(rng: np.random.Generator, per_stratum: int | dict[str, int], informative: bool = True):
    """Three categories of different sizes and different shares of good labels; the queue's
    round robin judges ``per_stratum`` labels in each (uniformly within it), so the judged
    labels over-represent the small category: a pooled estimate is biased, a stratified one not."""
    from saegold.engine.stats.ppi import PPIInputs

    qs, cats, judged = [], [], []
    start = 0
    take = {name: min(per_stratum if isinstance(per_stratum, int) else per_stratum[name], size)
            for name, size, _ in STRATA}
    for name, size, shift in STRATA:
        qs.append(rng.normal(size=size) + shift)
        cats += [name] * size
        judged.append(start + rng.choice(size, size=take[name], replace=False))
        start += size
    q = np.concatenate(qs)
    p = 1 / (1 + np.exp(-1.5 * q))
    score = q + 0.5 * rng.normal(size=len(q)) if informative else rng.normal(size=len(q))
    rows_label = np.repeat(np.concatenate(judged), 2)
    code = np.where(rng.random(len(rows_label)) < p[rows_label], 2, 0)
    x = np.column_stack([score] + [[c == name for c in cats] for name, _, _ in STRATA]).astype(float)
    inp = PPIInputs(x, ["m"] * len(q), cats, rows_label, code,
                    {name: size for name, size, _ in STRATA}, take)
    return inp, float(p.mean())


def stratified_coverage(reps: int, seed: int, *, per_stratum: int | dict[str, int] = 40, level: float = 0.90,
                        target_width: float | None = None) -> dict[str, float]:
    """Coverage and width of the 'all' row (stratified) over ``reps`` stratified worlds; with
    ``target_width``, also the stopping rule's mean projected number of more judged labels."""
    from saegold.engine.stats.ppi import estimates

    rng = np.random.default_rng(seed)
    hit = {"ppi": 0, "classical": 0}
    width = {"ppi": 0.0, "classical": 0.0}
    more, n = [], 0
    names = [name for name, _, _ in STRATA]
    for r in range(reps):
        inp, truth = stratified_world(rng, per_stratum)
        e = next(e for e in estimates(inp, names, seed=r, level=level, targets=("correct",),
                                      target_width=target_width) if e.category == "all")
        assert e.stratified
        n += 1
        for name, est in (("ppi", e.ppi), ("classical", e.classical)):
            hit[name] += est.ci[0] <= truth <= est.ci[1]
            width[name] += est.ci[1] - est.ci[0]
        if target_width is not None:
            more.append(e.stopping.more)
    out = {f"{k} coverage": hit[k] / n for k in hit}
    out.update({f"{k} width": width[k] / n for k in width})
    out["reps"] = n
    if more:
        out["more"] = float(np.mean(more))
    return out


def stopping_check(reps: int, seed: int, *, target: float = 0.08, per_stratum: int = 40) -> dict[str, float]:
    """The stopping rule against the simulation: the mean projected number of more judged labels
    for the stratified 'all' row to reach ``target`` (95% CIs), then worlds judged that much more
    (spread over the categories as the queue does): their mean width, to compare with the target."""
    from saegold.engine.stats.ppi import _spread

    first = stratified_coverage(reps, seed, per_stratum=per_stratum, level=0.95, target_width=target)
    more = int(round(first["more"]))
    give = _spread(more, {name: size - per_stratum for name, size, _ in STRATA})
    after = stratified_coverage(reps, seed + 1, level=0.95, per_stratum={k: per_stratum + v for k, v in give.items()})
    return {"width now": first["ppi width"], "more": more, "width after": after["ppi width"],
            "coverage after": after["ppi coverage"], "target": target}


THRESHOLDS = (0.0, 0.0)


def tier_world(rng: np.random.Generator, n_pop: int, per_category: int):
    """Features with input and output scores; the automatic category from thresholds at 0;
    the human tier drawn from P(tier | scores), a softmax that the category predicts but not
    perfectly; ``per_category`` features judged in each automatic category (the round robin),
    by two annotators who each draw a tier.  Truth: the mean of P(tier) over all features."""
    from saegold.engine.stats.ppi import PPIInputs
    from saegold.store.judgments import TIERS

    s_in = rng.normal(size=n_pop) + 0.3
    s_out = rng.normal(size=n_pop) - 0.5
    cat = np.where(s_in >= THRESHOLDS[0], np.where(s_out >= THRESHOLDS[1], "cross", "input"),
                   np.where(s_out >= THRESHOLDS[1], "output", "obscure"))
    # logits for input, output, cross, obscure
    logits = np.column_stack([2 * s_in - s_out, 2 * s_out - s_in, s_in + s_out, -s_in - s_out]) * 1.2
    prob = np.exp(logits - logits.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)
    judged = []
    for c in TIERS:
        members = np.flatnonzero(cat == c)
        judged.append(rng.choice(members, size=min(per_category, len(members)), replace=False))
    judged = np.concatenate(judged)
    rows_label = np.repeat(judged, 2)
    u = rng.random(len(rows_label))[:, None]
    code = (u > np.cumsum(prob[rows_label], axis=1)).sum(axis=1)
    x = np.column_stack([s_in, s_out] + [cat == c for c in TIERS]).astype(float)
    total = {c: int((cat == c).sum()) for c in TIERS}
    inp = PPIInputs(x, [""] * n_pop, list(cat), rows_label, code, total,
                    {c: min(per_category, total[c]) for c in TIERS})
    return inp, {t: float(prob[:, i].mean()) for i, t in enumerate(TIERS)}


def tier_coverage(reps: int, seed: int, *, n_pop: int = 2000, per_category: int = 40, level: float = 0.90
                  ) -> dict[str, float]:
    """Coverage of every tier's 'all' (stratified) share and of each category's share."""
    from saegold.engine.stats.ppi import tier_estimates
    from saegold.store.judgments import TIERS

    rng = np.random.default_rng(seed)
    hit = {"all ppi": 0, "all classical": 0}
    width = {"all ppi": 0.0, "all classical": 0.0}
    n = 0
    for r in range(reps):
        inp, truth = tier_world(rng, n_pop, per_category)
        for e in tier_estimates(inp, TIERS, list(TIERS), seed=r, level=level):
            if e.category != "all":
                continue
            n += 1
            for name, est in (("all ppi", e.ppi), ("all classical", e.classical)):
                hit[name] += est.ci[0] <= truth[e.tier] <= est.ci[1]
                width[name] += est.ci[1] - est.ci[0]
    out = {f"{k} coverage": hit[k] / n for k in hit}
    out.update({f"{k} width": width[k] / n for k in width})
    out["estimates"] = n
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
    t0 = time.time()
    c = stratified_coverage(args.reps, args.seed)
    n = c["reps"]
    print(f"stratified 'all' (categories of 600/300/100 labels, 40 judged in each), 90% intervals over {n} "
          f"worlds: PPI covers {c['ppi coverage']:.1%} ± {se(c['ppi coverage'], n):.1%} (width "
          f"{c['ppi width']:.3f}), classical {c['classical coverage']:.1%} (width {c['classical width']:.3f}) "
          f"[{time.time() - t0:.0f} s]", flush=True)
    t0 = time.time()
    c = stopping_check(max(1, args.reps // 5), args.seed)
    print(f"stopping rule, stratified 'all', 95% CIs: width {c['width now']:.3f} at 40 judged per category; "
          f"projected {c['more']} more judged labels to reach {c['target']}; worlds judged that much more: "
          f"width {c['width after']:.3f} (coverage {c['coverage after']:.1%}) [{time.time() - t0:.0f} s]", flush=True)
    t0 = time.time()
    c = tier_coverage(args.reps, args.seed)
    n = c["estimates"]
    print(f"tier shares, 2000 features, 40 judged per category by 2, 'all' (stratified), 90% intervals, "
          f"{n} estimates (4 tiers x {n // 4} worlds): PPI covers {c['all ppi coverage']:.1%} ± "
          f"{se(c['all ppi coverage'], n):.1%} (width {c['all ppi width']:.3f}), classical "
          f"{c['all classical coverage']:.1%} (width {c['all classical width']:.3f}) [{time.time() - t0:.0f} s]",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
