"""Figures for concurrent annotators: 8 writer processes x 500 judgments (random undo) with a
reader computing agreement, then repeated kill -9 crash trials.

    .venv/bin/python tests/perf/perf_writers.py [--writers 8] [--each 500] [--trials 50]

Prints events written per second, write latency (median, p99, max), SQLITE_BUSY retries,
crash trials run and acknowledged events lost (must be 0).  Compare figures within a run.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "robust"))

from robust_harness import check_nothing_lost, p99, run_writers, seed_project  # noqa: E402


def backup_and_merge(db: Path, work: Path) -> None:
    """Snapshot the written project, and merge it into a fresh one (twice: the second is a no-op)."""
    from saegold.store.backup import backup
    from saegold.store.db import open_project
    from saegold.store.merge import merge

    with open_project(db) as p:
        b = backup(p, work / "snapshot.db")
    print(f"backup: {b.bytes:,} bytes, {b.judgments} events, verified, in {b.seconds:.3f} s")
    target = seed_project(work / "merge-target.db", n_features=10)
    with open_project(target) as p:
        for label in ("first", "second"):
            t = time.perf_counter()
            rep = merge(p, db)
            print(f"merge ({label}): {rep.added['judgments']} judgments and {rep.added['features']} "
                  f"features added, {rep.present['judgments']} already there, {len(rep.conflicts)} "
                  f"conflicts, {time.perf_counter() - t:.3f} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--each", type=int, default=500)
    ap.add_argument("--trials", type=int, default=50)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="saegold-perf-writers-"))

    for reader in (False, True):
        db = seed_project(work / f"writers-{int(reader)}.db", n_features=200)
        r = run_writers(db, work / "w", args.writers, args.each, reader=reader, seed=1 + reader,
                        prefix=f"r{int(reader)}-")
        figures = check_nothing_lost(db, r, exact=True)
        lat = r.latencies
        print(f"{args.writers} writers x {args.each} events{' + agreement reader' if reader else ''}: "
              f"{figures['stored']} events in {r.seconds:.2f} s = {figures['stored'] / r.seconds:,.0f} events/s; "
              f"latency median {statistics.median(lat) * 1000:.2f} ms, p99 {p99(lat) * 1000:.2f} ms, "
              f"max {max(lat) * 1000:.1f} ms; busy retries {r.retries}; unretryable errors {r.errors}; "
              f"lost {figures['lost']}")
        if reader and r.reader:
            print(f"  reader ({r.reader['how']}): {r.reader['loops']} agreement computations, "
                  f"{r.reader['errors']} errors")
    backup_and_merge(db, work)

    rng = random.Random(0)
    db = seed_project(work / "crash.db")
    killed = acked = stored = lost = 0
    started = time.monotonic()
    for trial in range(args.trials):
        n = rng.randint(1, 4)
        kills = {i: 0.01 + rng.random() * 0.6 for i in range(n)}
        r = run_writers(db, work / "c", n, 5000, kill_after=kills, seed=1000 + trial, prefix=f"c{trial}-",
                        fork=True)
        f = check_nothing_lost(db, r, exact=False)
        killed += len(r.killed)
        acked += f["acked"]
        stored += f["stored"]
        lost += f["lost"]
    print(f"crash trials: {args.trials} trials, {killed} writer processes killed with SIGKILL, "
          f"{acked} events acknowledged, {stored} stored, {lost} lost "
          f"({stored - acked} committed but killed before their ack) in {time.monotonic() - started:.0f} s")
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
