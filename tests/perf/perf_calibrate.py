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


from perf_stats import build  # the same world (tests/perf is this script's first path entry)

from saegold.engine.stats import calibration
from saegold.store.db import open_project



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
