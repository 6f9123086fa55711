"""How long `saegold calibrate` takes on 16k features with 2,000 judgments (issue 16: < 30 s).

Run: .venv/bin/python tests/perf/perf_calibrate.py [N_FEATURES] [N_JUDGED_FEATURES]   (default 16000 1000)

Builds a project through the store helpers: N features with taxonomy scores, two candidate
labels each (eleuther_acts_top5, baez), three benchmarks scoring every label (true +
shuffled), and N_JUDGED features judged by two annotators each (tier and a verdict on both
labels: 2 x N_JUDGED judgments).  Times `calibration.compute` at the command's defaults
(1,000 bootstrap resamples), with the time of each phase from its progress callback, then
the whole `saegold calibrate --json` command.  Prints the figures.
"""
from __future__ import annotations

import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from saegold.engine.stats import calibration
from saegold.store import features as store_features
from saegold.store import labels as store_labels
from saegold.store.db import open_project
from saegold.store.judgments import append_many, ensure_annotator, make_event

TIERS = ("input", "output", "cross", "obscure")


def build(path: Path, n: int, n_judged: int) -> None:
    rng = np.random.default_rng(0)
    project = open_project(path, create=True)
    events = []
    annotators = ("ann", "bob", "cat")
    judged = set(rng.choice(n, size=n_judged, replace=False).tolist())
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
                if i in judged:
                    for a in pair:
                        v = q + rng.normal(0, 0.15)
                        verdict = "correct" if v > 0.6 else "partly" if v > 0.3 else "wrong"
                        events.append(make_event(a, fid, "verdict", value=verdict, label_uuid=u,
                                                 seconds_spent=30.0))
            if i in judged:
                for a in pair:
                    tier = truth if rng.random() < 0.8 else TIERS[rng.integers(4)]
                    events.append(make_event(a, fid, "tier", value=tier, seconds_spent=30.0))
    for a in annotators:
        ensure_annotator(project, a)
    append_many(project, events)
    project.close()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 16000
    n_judged = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "perf.db"
        t0 = time.perf_counter()
        build(path, n, n_judged)
        print(f"built {n:,} features, {2 * n:,} labels, {2 * n_judged:,} judgments in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
        phases: dict[str, float] = {}
        last = [time.perf_counter()]

        def progress(phase: str, done: int, total: int) -> None:
            t = time.perf_counter()
            phases[phase] = phases.get(phase, 0.0) + t - last[0]
            last[0] = t

        with open_project(path, readonly=True) as project:
            t0, c0 = time.perf_counter(), time.process_time()
            last[0] = t0
            rep = calibration.compute(project, progress=progress)
            total, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"calibration.compute (1,000 resamples): {total:.1f} s wall, {cpu:.1f} s CPU (target < 30 s; "
              f"on a shared machine the CPU time is the figure to read)")
        for phase, s in phases.items():
            print(f"  {phase}: {s:.1f} s")
        allc = next(e for e in rep.ppi if e.category == "all" and e.target == "correct")
        print(f"  ({allc.method} correct, all: PPI {allc.ppi.value:.3f} {allc.ppi.ci}, judged {allc.n_judged})")
        from saegold.tui.cli import main as cli

        t0, c0 = time.perf_counter(), time.process_time()
        with contextlib.redirect_stdout(io.StringIO()):
            cli(["--db", str(path), "calibrate", "--json"])
        print(f"saegold calibrate --json (whole command, in process): {time.perf_counter() - t0:.1f} s wall, "
              f"{time.process_time() - c0:.1f} s CPU")


if __name__ == "__main__":
    main()
