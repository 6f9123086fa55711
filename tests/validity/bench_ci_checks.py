"""Coverage of the per-label confidence intervals (engine/bench/metrics.py), full grid: how often
each 95% interval holds the true value, by seeded simulation.  Prints a table; the fast version
is tests/bench/test_bench_ci.py.

Run: .venv/bin/python tests/validity/bench_ci_checks.py [--trials 2000]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.stats import norm

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from saegold.engine.bench.metrics import auroc_ci, balanced_accuracy_ci, wilson_ci  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=2000)
    args = ap.parse_args()
    rng = np.random.default_rng(2026)
    print("balanced accuracy (detection, fuzzing): coverage of the 95% interval")
    worst = 1.0
    for n in (10, 20, 25):
        truth = [1] * n + [0] * n
        for tpr in (0.5, 0.7, 0.9, 1.0):
            row = []
            for tnr in (0.5, 0.7, 0.9, 1.0):
                hits = 0
                for _ in range(args.trials):
                    pred = list((rng.random(n) < tpr).astype(int)) + list((rng.random(n) >= tnr).astype(int))
                    lo, hi = balanced_accuracy_ci(truth, pred)
                    hits += lo <= (tpr + tnr) / 2 <= hi
                row.append(hits / args.trials)
                worst = min(worst, hits / args.trials)
            print(f"  n={n:2d}+{n:2d} tpr={tpr:.1f}: " + "  ".join(f"tnr={t:.1f} {c:.3f}"
                                                              for t, c in zip((0.5, 0.7, 0.9, 1.0), row)))
    print(f"  lowest coverage {worst:.3f}")
    print("AUROC (embedding), binormal unit variances, 20+20: coverage")
    for shift in (0.0, 0.5, 1.0, 2.0, 3.0):
        true_auc = norm.cdf(shift / np.sqrt(2))
        hits = 0
        for _ in range(args.trials // 2):
            s = list(rng.normal(shift, 1, 20)) + list(rng.normal(0, 1, 20))
            lo, hi = auroc_ci([1] * 20 + [0] * 20, s)
            hits += lo <= true_auc <= hi
        print(f"  AUROC {true_auc:.3f}: {hits / (args.trials // 2):.3f}")
    print("Wilson (steering 1/3, intruder 1/5): coverage")
    for p, n in ((1 / 3, 6), (1 / 3, 12), (0.2, 5), (0.2, 20), (0.9, 20)):
        ks = rng.binomial(n, p, args.trials)
        print(f"  p={p:.2f} n={n:2d}: {np.mean([lo <= p <= hi for lo, hi in (wilson_ci(int(k), n) for k in ks)]):.3f}")


if __name__ == "__main__":
    main()
