"""Store-only scale test: a synthetic source as wide as the widest public SAEs, built
directly through the store (no model), then what users wait for on it.

    .venv/bin/python tests/perf/perf_store.py [--features 262144] [--examples 100] [--presses 100]
        [--db PATH]   # keep the project there: built once, measured again by later runs
        [--baseline DIR]   # also another checkout's app, interleaved: before/after (perf_app.py)

Built with :mod:`store.examples` (contexts once per source, vocabulary once, sparse
activations): ``--contexts`` distinct 64-token contexts, per feature ``--examples`` top
examples drawn from them (each with 1-4 activating tokens, ranked by max), plus per feature
a taxonomy row and, outside ``obscure``, two candidate labels (as tests/perf/perf_app.py).
Prints the build time, the file size (and per feature), `saegold status` wall time
(target < 2 s), `saegold annotate` start-up to the first feature on a pseudo-terminal
(target < 2 s) and keypress -> next feature p50/p95 (target p95 < 50 ms).
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "app"))
sys.path.insert(0, str(ROOT / "tests" / "perf"))

from perf_app import CATS, compare, measure_pty_keys, measure_startup, pct  # noqa: E402
from saegold.store.db import now, open_project  # noqa: E402
from saegold.store.examples import Vocab, encode_sparse_f32, put_contexts_ids, put_example_rows  # noqa: E402
from saegold.store.features import get_or_create_source  # noqa: E402


def build(path: Path, n: int, per: int, n_ctx: int, vocab: int = 8192, seed: int = 0) -> float:
    """Bulk-build the project: rows made with NumPy, written through
    ``store.examples.put_example_rows`` in transactions of 8,192 features, with a large page
    cache on the building connection and the ``examples_context`` index built at the end."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    prng = random.Random(seed)
    p = open_project(path, create=True)
    p.db.execute("PRAGMA cache_size = -1000000")   # KiB: up to 1 GB for the build only
    stamp = now()
    with p.write() as db:
        sid = get_or_create_source(db, "synthetic-model", "wide-262k", d_sae=n, width=4096)
        Vocab(db, sid).add({k: f" w{k}" for k in range(vocab)})
    ctx_ids: list[int] = []
    for start in range(0, n_ctx, 50000):
        seqs = rng.integers(0, vocab, size=(min(50000, n_ctx - start), 64), dtype=np.int32)
        seqs[:, 0] = 0
        with p.write() as db:
            ctx_ids += put_contexts_ids(db, sid, list(seqs))
    ctx = np.asarray(ctx_ids, dtype=np.int64)
    # A pool of sparse activation patterns (1-4 activating tokens), each with its max.
    pool_blob, pool_mi, pool_mx = [], [], []
    for _ in range(50000):
        k = int(rng.integers(1, 5))
        pos = np.sort(rng.choice(np.arange(1, 64), size=k, replace=False))
        vals = rng.gamma(2.0, 2.0, size=k).astype(np.float32)
        m = int(np.argmax(vals))
        pool_blob.append(encode_sparse_f32(pos, vals))
        pool_mi.append(int(pos[m]))
        pool_mx.append(float(vals[m]))
    mx_arr = np.asarray(pool_mx)
    # The index on examples' context ids would take them in random order: built once at the end.
    index_sql = p.scalar("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'examples_context'")
    if index_sql:
        p.db.execute("DROP INDEX examples_context")
    ranks = list(range(per))
    chunk = 8192
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        with p.write() as db:
            c = db.conn
            c.executemany("INSERT INTO features(source_id, idx, density, max_act, n_tokens_seen) VALUES (?, ?, ?, ?, ?)",
                          [(sid, j, float(rng.random()) * 0.01, 1 + float(rng.random()) * 10, 1 << 24)
                           for j in range(start, stop)])
            fids = [r[0] for r in c.execute("SELECT id FROM features WHERE source_id = ? AND idx BETWEEN ? AND ? "
                                            "ORDER BY idx", [sid, start, stop - 1])]
            picks = rng.integers(0, len(pool_blob), size=(len(fids), per))
            # each feature's examples ranked by their max (strongest first)
            picks = np.take_along_axis(picks, np.argsort(-mx_arr[picks], axis=1, kind="stable"), axis=1)
            cpicks = ctx[rng.integers(0, len(ctx), size=(len(fids), per))]
            for fid, pk, cp in zip(fids, picks.tolist(), cpicks.tolist()):
                put_example_rows(db, [(fid, "top", r, None, cc, pool_blob[i], pool_mi[i], pool_mx[i], "scored")
                                      for r, i, cc in zip(ranks, pk, cp)])
            tax, labs = [], []
            for fid in fids:
                cat = CATS[prng.randrange(4)]
                tax.append((fid, prng.random(), prng.random() * 0.02, cat, 0.5, 0.01, "x", "perf", stamp))
                if cat != "obscure":
                    for m in ("eleuther_acts_top5", "baez"):
                        labs.append((f"{fid}-{m}", fid, m, f"label {m} {fid}", "saegold", stamp))
            c.executemany("INSERT INTO taxonomy_scores(feature_id, input_score, output_score, category, "
                          "input_threshold, output_threshold, continuation, scorer_version, created_at) "
                          "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", tax)
            c.executemany("INSERT INTO labels(uuid, feature_id, method, text, origin, created_at) "
                          "VALUES (?, ?, ?, ?, ?, ?)", labs)
        print(f"  built {stop:,} / {n:,} features ({time.perf_counter() - t0:.0f} s)", flush=True)
    if index_sql:
        with p.write() as db:
            db.execute(index_sql)
    p.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    p.close()
    return time.perf_counter() - t0


def report_build(path: Path, args: argparse.Namespace) -> None:
    built = build(path, args.features, args.examples, args.contexts)
    size = path.stat().st_size
    print(f"built {args.features:,} features x {args.examples} examples over {args.contexts:,} contexts "
          f"in {built:.0f} s: {size / 1e9:.2f} GB = {size / args.features / 1024:.1f} KB per feature")


def measure(path: Path, args: argparse.Namespace) -> None:
    t = time.perf_counter()
    p = open_project(path)          # a project made by older code is migrated first (timed apart)
    n = p.scalar("SELECT COUNT(*) FROM features")
    p.close()
    size = path.stat().st_size
    print(f"open (and migrate when older): {time.perf_counter() - t:.2f} s; {n:,} features, file "
          f"{size / 1e9:.2f} GB = {size / n / 1024:.1f} KB per feature")
    cli = [sys.executable, "-m", "saegold.tui.cli", "--db", str(path), "status"]
    times = []
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run(cli, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    print(f"`saegold status`: {', '.join(f'{x:.2f}' for x in times)} s (median {statistics.median(times):.2f} s; "
          f"target < 2 s)")
    starts = measure_startup(path)
    print(f"`saegold annotate` start to first feature on a pty: {', '.join(f'{s:.2f}' for s in starts)} s "
          f"(median {statistics.median(starts):.2f} s; target < 2 s)")
    keys = [x * 1000 for x in measure_pty_keys(path, args.presses)]
    print(f"keypress -> next feature on a pty: p50 {statistics.median(keys):.1f} ms, p95 {pct(keys, 0.95):.1f} ms, "
          f"max {max(keys):.1f} ms over {len(keys)} presses (target p95 < 50 ms)")
    if args.baseline:
        compare(path, args.baseline, args.presses)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--features", type=int, default=262_144)
    ap.add_argument("--examples", type=int, default=100)
    ap.add_argument("--contexts", type=int, default=200_000)
    ap.add_argument("--presses", type=int, default=100)
    ap.add_argument("--dir", default=None, help="where the project goes (default: a temporary directory)")
    ap.add_argument("--db", default=None,
                    help="keep the project at this path: built there when missing, measured as it is when "
                         "present (so one build serves several runs; each run leaves only released leases)")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="also measure the app of another checkout (e.g. `git archive main | tar -x -C DIR`) "
                         "on the same project, interleaved: before/after figures from one run")
    args = ap.parse_args()
    if args.db:
        path = Path(args.db)
        if not path.exists():
            report_build(path, args)
        measure(path, args)
        return 0
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "scale.db"
        report_build(path, args)
        measure(path, args)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    raise SystemExit(main())
