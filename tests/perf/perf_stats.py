"""How long agreement, calibration and the gold export take on a project of realistic size.

Run: .venv/bin/python tests/perf/perf_stats.py [N_FEATURES]   (default 2000)

Builds a project through the store helpers: N features with taxonomy scores, two candidate
labels each, three benchmarks (true + shuffled), three annotators with overlap 2 (every
feature judged by two of them).  Prints wall times; compare them within one run.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from saegold.engine import gold
from saegold.engine.stats import agreement, calibration
from saegold.store import features as store_features
from saegold.store import labels as store_labels
from saegold.store.db import open_project
from saegold.store.judgments import append_many, ensure_annotator, make_event

TIERS = ("input", "output", "cross", "obscure")


def build(path: Path, n: int, n_judged: int | None = None) -> None:
    """``n`` scored features with two labels each, three benchmarks (true and shuffled) per
    label; two annotators judge ``n_judged`` of them (None: every one), tier and verdicts.
    tests/perf/perf_calibrate.py builds its world here too."""
    rng = np.random.default_rng(0)
    project = open_project(path, create=True)
    events = []
    annotators = ("ann", "bob", "cat")
    judged = set(range(n)) if n_judged is None else set(rng.choice(n, size=n_judged, replace=False).tolist())
    with project.write() as db:
        sid = store_features.get_or_create_source(db, "tiny", "3-res", layer=3)
        for i in range(n):
            fid = store_features.upsert_feature(db, sid, i)
            inp, out = rng.random(), rng.random() * 0.05
            store_features.put_score(db, fid, input_threshold=0.5, output_threshold=0.01,
                                     scorer_version="perf", input_score=inp, output_score=out)
            truth = store_features.categorize(inp, out, 0.4, 0.02)
            pair = [annotators[i % 3], annotators[(i + 1) % 3]]
            for m in ("eleuther_acts_top5", "baez"):
                u = store_labels.add_label(db, fid, m, f"{m} {i}", origin="saegold")
                lid = db.execute("SELECT id FROM labels WHERE uuid = ?", [u]).fetchone()[0]
                q = rng.random()
                for b, slope in (("detection", 0.4), ("fuzzing", 0.0), ("embedding", 0.2)):
                    for control, v in (("true", 0.5 + slope * q + rng.normal(0, 0.1)),
                                       ("shuffled", 0.5 + rng.normal(0, 0.1))):
                        db.execute("INSERT INTO bench_scores(label_id, benchmark, control, value, n, "
                                   "created_at) VALUES (?, ?, ?, ?, 20, '2026-01-01')", [lid, b, control, v])
                for a in pair if i in judged else ():
                    v = q + rng.normal(0, 0.15)
                    verdict = "correct" if v > 0.6 else "partly" if v > 0.3 else "wrong"
                    events.append(make_event(a, fid, "verdict", value=verdict, label_uuid=u, seconds_spent=30.0))
            for a in pair if i in judged else ():
                tier = truth if rng.random() < 0.8 else TIERS[rng.integers(4)]
                events.append(make_event(a, fid, "tier", value=tier, seconds_spent=30.0))
    for a in annotators:
        ensure_annotator(project, a)
    append_many(project, events)
    project.close()


def timed(label: str, fn):
    t0 = time.perf_counter()
    out = fn()
    print(f"{label:<45} {time.perf_counter() - t0:8.2f} s")
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "perf.db"
        timed(f"build project ({n} features, {6 * n} judgments)", lambda: build(path, n))
        project = open_project(path)
        rep = timed("agreement.compute (1000 bootstrap resamples)", lambda: agreement.compute(project))
        print(f"  tier alpha {rep.tier.krippendorff_alpha.value:.3f} ci {rep.tier.krippendorff_alpha.ci}; "
              f"verdict alpha {rep.verdict.krippendorff_alpha.value:.3f}")
        cal = timed("calibration.compute (1000 resamples, grid 40)", lambda: calibration.compute(project))
        det = cal.cell("detection")
        print(f"  detection AUROC {det.auroc_correct.value:.3f} ci {det.auroc_correct.ci}; "
              f"fitted thresholds {cal.thresholds.fitted} cv kappa {cal.thresholds.cv_kappa:.3f}")
        for fmt in ("jsonl", "csv", "parquet"):
            out = Path(tmp) / f"gold.{fmt}"
            timed(f"export gold --format {fmt}", lambda: gold.export_gold(project, fmt=fmt, output=out))
        project.close()


if __name__ == "__main__":
    main()
