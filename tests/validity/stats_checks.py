"""Seeded simulations that check the calibration and agreement statistics against known truths.

Run: .venv/bin/python tests/validity/stats_checks.py [CHECK ...] [--reps N] [--seed S]
     CHECK: spearman thresholds agreement shuffled ece rules (default: all)
     (rules runs reps/4 worlds of 3 benchmarks; agreement and ece reps/2)

Each check draws worlds whose population values are known, runs the engine's own code on
them, and prints the false-positive rate / coverage / power with its Monte Carlo standard
error (sqrt(p(1-p)/reps)).  The test suite runs the same functions with few replications and
loose bounds (tests/stats/test_validity_fast.py); this script runs them in full.

Worlds (the same in the suite and here):

- spearman: L labels, each judged by 2 or 3 annotators whose verdicts share the label's
  latent quality (correlated within a label); the benchmark score is independent of it.
  A test at 5% should reject in at most 5% of worlds.
- thresholds: F features with input ~ U(0,1), output ~ U(0,0.1), two annotators each, who
  give the category of a planted pair (0.5, 0.01) with probability 0.5 and a uniform tier
  otherwise.  With the planted pair current, a change should be recommended in at most ~5% of
  worlds; with a wrong current pair, (0.65, 0.02) or the clearly wrong (0.75, 0.04), in as many
  as possible (power).
- agreement: 30 items with a true tier (probabilities 0.4, 0.3, 0.2, 0.1); each of 3
  annotators judges an item with probability 0.8 (at least 2 per item) and reports the true
  tier with probability 0.6, else a uniform tier.  Population alpha = kappa = (po-pe)/(1-pe)
  and percent agreement po are known in closed form; 95% intervals should cover them 95% of
  the time.
- shuffled: L labels; the true-label and shuffled-label scores are drawn from the same
  distribution (a label effect plus noise, rounded to 0.1 like a balanced accuracy on 10
  items).  The one-sided 2.5% "tells true from shuffled" call should fire in <= 2.5%.
- ece: n verdicts on one label each, score x ~ U(0,1), P(correct | x) = 1/(1+exp(-(3x-1.5))).
  The reported calibration error is compared with the fitted map's calibration error on the
  known truth (same 10 equal-width bins of predicted P, 200,000 fresh scores), and its 95%
  interval's coverage of it is counted; then the interval alone for fixed predictors
  (ce_interval_coverage).
- rules: null worlds of 'spearman' (10 labels of 2-6 verdicts, 30 and 80 of 2-3) with three
  unrelated benchmarks: how often 'predicts', 'predicts or anti-predicts' and 'best predictor
  shown to predict humans' fire, by the report's rules and by the old CI rules.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass

import numpy as np

TIER_P = np.array([0.4, 0.3, 0.2, 0.1])


@dataclass
class Rate:
    hits: int
    reps: int

    @property
    def p(self) -> float:
        return self.hits / self.reps if self.reps else float("nan")

    @property
    def se(self) -> float:
        return math.sqrt(self.p * (1 - self.p) / self.reps) if self.reps else float("nan")

    def __str__(self) -> str:
        return f"{self.p:6.1%} ± {self.se:.1%} ({self.hits}/{self.reps})"


# -- 19.1: Spearman p under the null, label-clustered rows ------------------------------------

def spearman_world(rng: np.random.Generator, n_labels: int, max_annotators: int = 3):
    """(rows, labels, true_by): verdicts correlated within a label (2..``max_annotators`` per
    label), scores unrelated."""
    rows, true_by = [], {}
    for i in range(n_labels):
        u = f"l{i:04d}"
        q = rng.normal()
        true_by[u] = float(rng.random())
        for _ in range(int(rng.integers(2, max_annotators + 1))):
            z = q + 0.5 * rng.normal()
            rows.append((u, true_by[u], 0 if z < -0.4 else 1 if z < 0.4 else 2))
    return rows, sorted(true_by), true_by


def spearman_null(reps: int, n_labels: int, seed: int, n_boot: int = 200) -> Rate:
    from saegold.engine.stats import calibration

    rng = np.random.default_rng(seed)
    hits = 0
    for r in range(reps):
        rows, labels, true_by = spearman_world(rng, n_labels)
        cell = calibration._cell("b", "all", rows, labels, true_by, {}, n_boot=n_boot, seed=r, min_rows=10)
        hits += cell.spearman_p is not None and cell.spearman_p < 0.05
    return Rate(hits, reps)


def conclusions_null(reps: int, n_labels: int, seed: int, n_benchmarks: int = 3, n_boot: int = 500,
                     full: bool = True, max_annotators: int = 3) -> dict[str, Rate]:
    """Null worlds (every benchmark unrelated to the verdicts): how often the worded calls fire.

    'predicts' (one-sided 2.5%) and 'either side' ('predicts' or 'anti-predicts'; 5%) by the
    report's rule (a one-sided label-permutation p <= 0.025) and by the old one (the AUROC's
    95% percentile-bootstrap CI above / not including 0.5); 'best predictor shown to predict
    humans' (best of ``n_benchmarks``): the old rule (its CI above 0.5) and the report's
    (Bonferroni label-permutation p).  ``full`` runs the whole report cell; otherwise only the
    AUROC pieces (fast)."""
    from saegold.engine.stats import calibration
    from saegold.engine.stats.measures import auroc, weighted_auroc
    from saegold.engine.stats.resample import cluster_counts, estimate

    rng = np.random.default_rng(seed)
    hits = {"predicts": 0, "predicts (old rule: CI)": 0, "either side": 0, "either side (old rule: CI)": 0,
            "best (old rule: CI)": 0, "best (rule)": 0}
    cells_seen = 0
    for rep in range(reps):
        rows, labels, _ = spearman_world(rng, n_labels, max_annotators)
        cells = []
        for b in range(n_benchmarks):
            score = {u: float(rng.random()) for u in labels}
            brows = [(u, score[u], c) for u, _, c in rows]
            if full:
                cells.append(calibration._cell(f"b{b}", "all", brows, labels, score, {}, n_boot=n_boot,
                                               seed=rep * 10 + b, min_rows=10))
                continue
            x = np.array([r[1] for r in brows])
            v = np.array([r[2] for r in brows])
            _, groups = np.unique([r[0] for r in brows], return_inverse=True)
            counts = cluster_counts(int(groups.max()) + 1, n_boot, rep * 10 + b)
            est = estimate(auroc(x, v == 2)[0], len(x), weighted_auroc(x, v == 2, counts[:, groups]))
            cell = calibration.Cell.__new__(calibration.Cell)
            cell.benchmark, cell.auroc_correct = f"b{b}", est
            cell.auroc_p, cell.auroc_p_below = (calibration.auroc_permutation(x, v == 2, groups, n_boot, rep * 10 + b)
                                                if est.value is not None else (None, None))
            cell.conclusion = calibration._conclusion(est, cell.auroc_p, cell.auroc_p_below)
            cells.append(cell)
        ranked = [c for c in cells if c.auroc_correct.value is not None]
        for c in ranked:
            cells_seen += 1
            ci = c.auroc_correct.ci
            hits["predicts"] += c.conclusion.startswith("predicts")
            hits["either side"] += c.conclusion.startswith(("predicts", "anti-predicts"))
            hits["predicts (old rule: CI)"] += bool(ci and ci[0] > 0.5)
            hits["either side (old rule: CI)"] += bool(ci and (ci[0] > 0.5 or ci[1] < 0.5))
        if ranked:
            best = max(ranked, key=lambda c: c.auroc_correct.value)
            hits["best (old rule: CI)"] += bool(best.auroc_correct.ci and best.auroc_correct.ci[0] > 0.5)
            hits["best (rule)"] += calibration.best_shown(ranked)
    return {k: Rate(v, reps if k.startswith("best") else cells_seen) for k, v in hits.items()}


def predicts_null_independent(reps: int, n_labels: int, seed: int, n_perm: int = 500) -> dict[str, Rate]:
    """The per-cell call alone in ``reps`` independent null worlds (one benchmark each, so the
    Monte Carlo error is what it says; in conclusions_null three cells share a world's
    verdicts and the printed SE understates the noise): how often the label-permutation p of
    AUROC > 0.5 / < 0.5 is at most 0.025."""
    from saegold.engine.stats import calibration

    rng = np.random.default_rng(seed)
    above = below = n = 0
    for r in range(reps):
        rows, _, _ = spearman_world(rng, n_labels)
        v = np.array([c for _, _, c in rows])
        _, groups = np.unique([u for u, _, _ in rows], return_inverse=True)
        x = rng.random(n_labels)[groups]
        pa, pb = calibration.auroc_permutation(x, v == 2, groups, n_perm, r)
        if pa is None:
            continue
        n += 1
        above += pa <= calibration.PREDICTS_LEVEL
        below += pb <= calibration.PREDICTS_LEVEL
    return {"predicts": Rate(above, n), "anti-predicts": Rate(below, n)}


# -- 19.2: recommending fitted thresholds ------------------------------------------------------

PLANTED = (0.5, 0.01)
WRONG = (0.65, 0.02)
CLEARLY_WRONG = (0.75, 0.04)


def threshold_world(rng: np.random.Generator, n_features: int, accuracy: float = 0.5):
    from saegold.store.judgments import TIERS
    from saegold.engine.stats.thresholds import categories

    inp, out = rng.random(n_features), rng.random(n_features) * 0.1
    planted = categories(inp, out, *PLANTED)
    rows = []
    for f in range(n_features):
        for _ in range(2):
            tier = int(planted[f]) if rng.random() < accuracy else int(rng.integers(0, len(TIERS)))
            rows.append((f, float(inp[f]), float(out[f]), tier))
    return rows


def recommended(fit) -> bool:
    return bool(getattr(fit, "recommended", getattr(fit, "improves", False)))


def threshold_decisions(reps: int, n_features: int, seed: int, current=PLANTED, n_boot: int = 1000) -> Rate:
    import inspect

    from saegold.engine.stats.thresholds import fit_thresholds

    kw = {"n_boot": n_boot} if "n_boot" in inspect.signature(fit_thresholds).parameters else {}
    rng = np.random.default_rng(seed)
    hits = sum(recommended(fit_thresholds(threshold_world(rng, n_features), current, **kw)) for _ in range(reps))
    return Rate(hits, reps)


# -- 19.3: agreement interval coverage ---------------------------------------------------------

AGREE_R = 0.6


def agreement_truth(r: float = AGREE_R, p: np.ndarray = TIER_P) -> tuple[float, float]:
    """(chance-corrected agreement, percent agreement) of two annotators in this world."""
    k = len(p)
    e = (1 - r) / k
    po = float(np.sum(p * ((r + e) ** 2 + (k - 1) * e ** 2)))
    m = r * p + e
    pe = float(np.sum(m ** 2))
    return (po - pe) / (1 - pe), po


def agreement_world(rng: np.random.Generator, n_items: int, n_annotators: int = 3, r: float = AGREE_R,
                    p_judge: float = 0.8):
    from saegold.engine.stats.agreement import Ratings

    k = len(TIER_P)
    true = rng.choice(k, size=n_items, p=TIER_P)
    m = np.where(rng.random((n_annotators, n_items)) < r, true[None, :],
                 rng.integers(0, k, (n_annotators, n_items))).astype(float)
    judged = rng.random((n_annotators, n_items)) < p_judge
    for c in np.flatnonzero(judged.sum(axis=0) < 2):  # at least two judgments per item
        judged[rng.choice(n_annotators, 2, replace=False), c] = True
    m[~judged] = np.nan
    return Ratings([f"a{i}" for i in range(n_annotators)], list(range(n_items)), np.arange(n_items), m, k)


def agreement_coverage(reps: int, n_items: int, seed: int, n_boot: int = 500) -> dict[str, Rate]:
    from saegold.engine.stats import agreement
    from saegold.store.judgments import TIERS

    chance_corrected, po = agreement_truth()
    rng = np.random.default_rng(seed)
    hits = {"alpha": 0, "percent": 0, "kappa": 0}
    n = {"alpha": 0, "percent": 0, "kappa": 0}
    shared = []
    for rep in range(reps):
        r = agreement_world(rng, n_items)
        v = agreement.variable_agreement(r, variable="tier", level="nominal", values=list(TIERS), weights=None,
                                         n_boot=n_boot, seed=rep, min_items=5)
        for name, est, truth in (("alpha", v.krippendorff_alpha, chance_corrected),
                                 ("percent", v.percent_agreement, po)):
            n[name] += 1
            hits[name] += est.ci is not None and est.ci[0] <= truth <= est.ci[1]
        pair = v.pairwise_kappa[0]
        shared.append(pair.kappa.n_items)
        n["kappa"] += 1
        hits["kappa"] += pair.kappa.ci is not None and pair.kappa.ci[0] <= chance_corrected <= pair.kappa.ci[1]
    out = {k: Rate(hits[k], n[k]) for k in hits}
    out["_shared"] = float(np.mean(shared))  # type: ignore[assignment]
    return out


# -- 19.4: true vs shuffled at small n ---------------------------------------------------------

def shuffled_world(rng: np.random.Generator, n_labels: int):
    labels = [f"l{i:03d}" for i in range(n_labels)]
    effect = rng.normal(0.6, 0.12, n_labels)
    true_by = {u: float(np.clip(np.round(e + rng.normal(0, 0.12), 1), 0, 1)) for u, e in zip(labels, effect)}
    shuf_by = {u: float(np.clip(np.round(e + rng.normal(0, 0.12), 1), 0, 1)) for u, e in zip(labels, effect)}
    return labels, true_by, shuf_by


def tells_apart(sh) -> bool:
    """The report's call "tells true labels from shuffled ones" (old: gap CI above 0)."""
    if hasattr(sh, "tells_apart"):
        return bool(sh.tells_apart)
    return bool(sh.gap.ci and sh.gap.ci[0] > 0)


def shuffled_null(reps: int, n_labels: int, seed: int, n_boot: int = 1000) -> Rate:
    from saegold.engine.stats import calibration

    rng = np.random.default_rng(seed)
    hits = 0
    for rep in range(reps):
        labels, t, s = shuffled_world(rng, n_labels)
        hits += tells_apart(calibration._shuffled(labels, t, s, n_boot, rep, 10))
    return Rate(hits, reps)


# -- 19.5: cross-validated calibration error ---------------------------------------------------

def ece_truth_p(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-(3 * x - 1.5)))


def binned_error(pred: np.ndarray, target: np.ndarray, n_bins: int = 10, squared: bool = False) -> float:
    """Bin-weighted |mean pred - mean target| (or its RMS) over equal-width bins of pred."""
    which = np.clip(np.digitize(pred, np.linspace(0, 1, n_bins + 1)[1:-1]), 0, n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        sel = which == b
        if sel.any():
            gap = pred[sel].mean() - target[sel].mean()
            total += sel.mean() * (gap ** 2 if squared else abs(gap))
    return math.sqrt(total) if squared else total


def ece_study(reps: int, n: int, seed: int, n_boot: int = 1000, n_fresh: int = 200_000) -> dict[str, float]:
    """Mean reported figure vs mean true figure of the fitted map, their correlation, and the
    coverage of the reported interval (when there is one)."""
    from saegold.engine.stats.calibration_map import _fit_predict, fit_calibration

    rng = np.random.default_rng(seed)
    fresh = rng.random(n_fresh)
    p_fresh = ece_truth_p(fresh)
    reported, truth, covered, with_ci = [], [], 0, 0
    for _ in range(reps):
        x = rng.random(n)
        y = rng.random(n) < ece_truth_p(x)
        cal = fit_calibration(x, y, np.arange(n), n_boot=n_boot)
        if cal.method is None:
            continue
        f = _fit_predict(cal.method, x, y.astype(float), fresh)
        debiased = hasattr(cal, "cv_calibration_error")
        if debiased:
            est = cal.cv_calibration_error
            true_value = binned_error(f, p_fresh, squared=True)
            value = est.value
            if est.ci is not None and value is not None:
                with_ci += 1
                covered += est.ci[0] <= true_value <= est.ci[1]
        else:
            value = cal.cv_ece
            true_value = binned_error(f, p_fresh)
        if value is None:
            continue
        reported.append(value)
        truth.append(true_value)
    rep, tru = np.array(reported), np.array(truth)
    return {"reps": len(rep), "mean_reported": float(rep.mean()), "mean_true": float(tru.mean()),
            "corr": float(np.corrcoef(rep, tru)[0, 1]) if len(rep) > 2 and rep.std() and tru.std() else float("nan"),
            "coverage": covered / with_ci if with_ci else float("nan"), "with_ci": with_ci}


def ce_interval_coverage(reps: int, n: int, seed: int, slope: float = 1.5, n_boot: int = 300) -> dict[str, Rate]:
    """Coverage of the calibration-error interval for a fixed predictor (no map fitted, so the
    interval alone is checked): x ~ U(0,1), P(correct | x) = ece_truth_p(x), predicted P =
    ece_truth_p(slope (x - 0.5) + 0.5) (over-confident for slope > 1); the truth is the binned
    RMS error of that predictor on 400,000 fresh scores.  'interval': the report's; 'percentile
    (old)': the percentile interval of the resamples' debiased errors it replaced."""
    from saegold.engine.stats.calibration_map import calibration_error_ci, debiased_calibration_error
    from saegold.engine.stats.resample import cluster_counts

    rng = np.random.default_rng(seed)
    fx = rng.random(400_000)
    truth = binned_error(ece_truth_p(slope * (fx - 0.5) + 0.5), ece_truth_p(fx), squared=True)
    new = old = 0
    for r in range(reps):
        x = rng.random(n)
        y = (rng.random(n) < ece_truth_p(x)).astype(float)
        pred = ece_truth_p(slope * (x - 0.5) + 0.5)
        w = cluster_counts(n, n_boot, r)
        ci, _ = calibration_error_ci(pred, y, w)
        new += ci is not None and ci[0] <= truth <= ci[1]
        lo, hi = np.percentile(np.sqrt(np.maximum(debiased_calibration_error(pred, y, w), 0.0)), [2.5, 97.5])
        old += lo <= truth <= hi
    return {"interval": Rate(new, reps), "percentile (old)": Rate(old, reps), "_truth": truth}  # type: ignore[dict-item]


# -- main --------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checks", nargs="*", default=["spearman", "thresholds", "agreement", "shuffled", "ece", "rules"])
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=20260)
    args = ap.parse_args(argv)
    for check in args.checks:
        t0 = time.time()
        if check == "spearman":
            for n_labels in (30, 80):
                print(f"spearman p < 0.05 under the null, {n_labels} labels: "
                      f"{spearman_null(args.reps, n_labels, args.seed)}  (nominal 5%)")
        elif check == "rules":
            for n_labels, max_ann in ((10, 6), (30, 3), (80, 3)):
                for name, rate in conclusions_null(max(1, args.reps // 4), n_labels, args.seed,
                                                   max_annotators=max_ann).items():
                    nominal = "5%" if name.startswith("either side") else "2.5%"
                    print(f"null world, {n_labels} labels of 2-{max_ann} verdicts, 3 benchmarks: '{name}' fires "
                          f"{rate}  (nominal {nominal}; the 3 cells of a world share its verdicts, so the "
                          f"SE understates the noise)")
                for name, rate in predicts_null_independent(args.reps * 3, n_labels, args.seed).items():
                    print(f"independent null worlds, {n_labels} labels of 2-3 verdicts: '{name}' (label-permutation "
                          f"p <= 0.025) fires {rate}  (nominal 2.5%)")
        elif check == "thresholds":
            for f in (30, 60):
                print(f"thresholds, {f} features, planted pair current: change recommended "
                      f"{threshold_decisions(args.reps, f, args.seed)}  (want <= ~5%)")
                for k, wrong in enumerate((WRONG, CLEARLY_WRONG)):
                    print(f"thresholds, {f} features, wrong pair {wrong} current: change recommended "
                          f"{threshold_decisions(args.reps, f, args.seed + 1 + k, current=wrong)}  (power)")
        elif check == "agreement":
            reps = max(1, args.reps // 2)
            cov = agreement_coverage(reps, 30, args.seed)
            cc, po = agreement_truth()
            print(f"agreement, 30 items, 3 annotators (truth: alpha = kappa = {cc:.3f}, percent {po:.3f}); "
                  f"pairs share {cov.pop('_shared'):.1f} items on average")
            for name, rate in cov.items():
                print(f"  95% interval coverage, {name:8s}: {rate}  (nominal 95%)")
        elif check == "shuffled":
            for n_labels in (10, 20, 40):
                print(f"true-vs-shuffled call under the null, {n_labels} labels: "
                      f"{shuffled_null(args.reps, n_labels, args.seed)}  (nominal one-sided 2.5%)")
        elif check == "ece":
            for n in (50, 100, 200):
                s = ece_study(max(1, args.reps // 2), n, args.seed)
                cov = Rate(round(s["coverage"] * s["with_ci"]), s["with_ci"])
                print(f"calibration error, n={n}: reported mean {s['mean_reported']:.3f} vs true mean "
                      f"{s['mean_true']:.3f}; corr {s['corr']:+.2f}; 95% interval coverage {cov} "
                      f"(reps {s['reps']})")
            for slope in (1.0, 1.5, 2.0):
                for n in (50, 100, 200):
                    c = ce_interval_coverage(args.reps, n, args.seed, slope)
                    print(f"calibration error of a fixed predictor (slope {slope}, true RMS error "
                          f"{c.pop('_truth'):.3f}), n={n}: 95% interval coverage {c['interval']}, "
                          f"old percentile interval {c['percentile (old)']}")
        else:
            print(f"unknown check {check!r}", file=sys.stderr)
            return 2
        print(f"  [{check}: {time.time() - t0:.0f} s]", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
