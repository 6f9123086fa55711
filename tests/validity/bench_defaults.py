"""Benchmark defaults, old vs new (issue 15): how much one label's score moves by chance alone,
and what it costs.  Prints figures; asserts nothing about timing.

* Spread: a coin-flip judge (a fair coin per example, deterministic in the request) scores
  ``--labels`` labels; the per-label detection score's spread (SD, range, 5-95% range) under
  the old defaults (top ranks 6-15, 10 negatives) and the new ones (quantiles sampler, 20
  positives, 20 negatives).  Every label's true score is 0.5, so the spread is pure noise.
  Also: how often the new per-label 95% CI holds 0.5 (its coverage on these labels).
* Cost: requests and tokens per label (detection + fuzzing, true + shuffled) from the
  client's dry run (``saegold bench --dry-run`` counts), old vs new.

Run: .venv/bin/python tests/validity/bench_defaults.py [--labels 240]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from benchkit import build_project, coin_judge, run  # noqa: E402

from saegold.engine.bench.job import BenchConfig  # noqa: E402
from saegold.engine.llm.standin_server import StandinServer  # noqa: E402
from saegold.store.db import loads, open_project  # noqa: E402

OLD = dict(sampler="top", positive_ranks=(6, 15), n_negatives=10)
NEW = dict()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--labels", type=int, default=240)
    args = ap.parse_args()
    server = StandinServer(coin_judge).start()
    try:
        with tempfile.TemporaryDirectory() as d, open_project(Path(d) / "p.db", create=True) as project:
            build_project(project, n_features=args.labels, methods=("m_true",), n_top=30, n_neg=20)
            for name, kw in (("old (top 6-15, 10 neg)", OLD), ("new (quantiles, 20 pos, 20 neg)", NEW)):
                _, usage = run(project, server, BenchConfig(benchmarks=("detection", "fuzzing"), dry_run=True, **kw))
                t = usage.total
                print(f"{name}: per label (detection + fuzzing, true + shuffled): "
                      f"{t.est_calls / args.labels:.1f} requests, {t.est_prompt_tokens / args.labels:.0f} prompt + "
                      f"{t.est_completion_tokens / args.labels:.0f} completion tokens (estimated, max_tokens bound)")
                run(project, server, BenchConfig(benchmarks=("detection",), redo=True, **kw))
                rows = [(r["value"], loads(r["details"]).get("ci")) for r in project.query(
                    "SELECT value, details FROM bench_scores WHERE benchmark = 'detection' AND control = 'true'")]
                v = np.array([x for x, _ in rows], dtype=float)
                print(f"  coin judge, {len(v)} labels: per-label detection score SD {v.std(ddof=1):.3f}, "
                      f"range {v.min():.2f}-{v.max():.2f}, 5-95% {np.quantile(v, 0.05):.2f}-{np.quantile(v, 0.95):.2f}, "
                      f"mean {v.mean():.3f}")
                cis = [c for _, c in rows if c]
                if cis:
                    print(f"  per-label 95% CI holds the true 0.5 for {sum(lo <= 0.5 <= hi for lo, hi in cis)}/"
                          f"{len(cis)} labels; median width {np.median([hi - lo for lo, hi in cis]):.3f}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
