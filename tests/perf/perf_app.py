"""Annotation app performance on a 100,000-feature project.

Prints: project build time, queue assignment time, keypress -> next feature fully rendered
on a real pseudo-terminal (p50 / p95 / max over N presses; real SQLite), the same
without the screen (session + Rich text only), and `saegold annotate` startup to the first feature on
screen in a real pseudo-terminal.  Targets: p95 < 50 ms, startup < 2 s.

    .venv/bin/python tests/perf/perf_app.py [--features 100000] [--presses 200]
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "app"))

from store.db import dumps, now, open_project  # noqa: E402

WORDS = "the cat sat on a mat while dog ran to park and rain fell over Paris in spring".split()
CATS = ("input", "output", "cross", "obscure")


def build(path: Path, n: int, seed: int = 0) -> float:
    """Bulk-insert a realistic project: 2 top examples of 32 tokens, 3 x 8 logit tokens,
    taxonomy scores, 2 labels per non-obscure feature, and 20,000 judgments by others."""
    t0 = time.perf_counter()
    rng = random.Random(seed)
    p = open_project(path, create=True)
    stamp = now()
    with p.write() as db:
        c = db.conn
        c.execute("INSERT INTO sources(id, name, model_id, sae_id, created_at) VALUES (1, 'm/s', 'm', 's', ?)", [stamp])
        c.executemany("INSERT INTO features(id, source_id, idx, density, max_act) VALUES (?, 1, ?, ?, ?)",
                      ((i + 1, i, rng.random() * 0.01, 1 + rng.random() * 10) for i in range(n)))
        ex_rows, lt_rows, tax_rows, lab_rows = [], [], [], []
        for i in range(n):
            fid = i + 1
            for r in range(2):
                toks = [" " + rng.choice(WORDS) for _ in range(32)]
                acts = [round(rng.random(), 3) if rng.random() < 0.2 else 0.0 for _ in range(32)]
                mx = max(range(32), key=acts.__getitem__)
                ex_rows.append((fid, "top", r, dumps(toks), dumps(acts), mx, acts[mx], "scored"))
            for kind in ("promoted", "suppressed", "amplified_next"):
                for r in range(8):
                    lt_rows.append((fid, kind, r, " " + rng.choice(WORDS), r, rng.random()))
            cat = CATS[rng.randrange(4)]
            tax_rows.append((fid, rng.random(), rng.random() * 0.02, cat, 0.5, 0.01, "From my experience, the",
                             "perf", stamp))
            if cat != "obscure":
                for m in ("eleuther_acts_top5", "baez"):
                    lab_rows.append((f"{fid}-{m}", fid, m, f"label {m} {fid}", "saegold", stamp))
        c.executemany("INSERT INTO examples(feature_id, kind, rank, tokens, acts, max_idx, max_act, origin) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", ex_rows)
        c.executemany("INSERT INTO logit_tokens(feature_id, kind, rank, token, token_id, value) VALUES (?, ?, ?, ?, ?, ?)",
                      lt_rows)
        c.executemany("INSERT INTO taxonomy_scores(feature_id, input_score, output_score, category, input_threshold, "
                      "output_threshold, continuation, scorer_version, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      tax_rows)
        c.executemany("INSERT INTO labels(uuid, feature_id, method, text, origin, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                      lab_rows)
        c.executemany("INSERT INTO annotators(name, role, created_at) VALUES (?, 'annotator', ?)",
                      [(f"other{k}", stamp) for k in range(10)])
        jrows = []
        for k in range(20_000):
            fid = rng.randrange(1, n + 1)
            jrows.append((f"perf-{k}", f"other{k % 10}", "perf", fid, "tier", rng.choice(CATS), 2, 5.0, stamp))
        c.executemany("INSERT INTO judgments(uuid, annotator, login, feature_id, kind, value, confidence, "
                      "seconds_spent, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", jrows)
    p.close()
    return time.perf_counter() - t0


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def measure_keys(path: Path, presses: int) -> tuple[list[float], float]:
    from store import queue as sq
    from tui.app import render
    from tui.app.session import Session

    p = open_project(path)
    t0 = time.perf_counter()
    sq.assign_more(p, "assign-probe", n=100)
    assign_s = time.perf_counter() - t0

    # Without the screen: session.next() + building every Rich text.
    s = Session(p, "bare")
    s.start()
    bare = []
    for _ in range(presses):
        t = time.perf_counter()
        s.next()
        for fn in (render.header, render.candidates, render.judgment, render.machine):
            fn(s)
        render.examples(s.view, expanded=False)
        render.evidence(s.view)
        bare.append(time.perf_counter() - t)

    p.close()
    return bare, assign_s


def measure_pty_keys(path: Path, presses: int) -> list[float]:
    """Keypress ``n`` -> the next feature's header on a real pseudo-terminal (120x40)."""
    from test_app_kill import ANSI, Terminal
    p = open_project(path, readonly=True)
    term = Terminal([sys.executable, "-m", "tui.cli", "--db", str(path), "annotate",
                     "--annotator", "ptyperf", "--no-intro"], 120, 40)
    out = []
    try:
        term.wait_for("verdicts 0/", timeout=60)
        for k in range(1, presses + 1):
            with term.lock:
                start = len(term.out)
            t = time.perf_counter()
            term.send("n")
            needle = None
            while True:
                if needle is None:  # past the first batch the app assigns more as it goes
                    idx = p.scalar("SELECT f.idx FROM assignments a JOIN features f ON f.id = a.feature_id "
                                   "WHERE a.annotator = 'ptyperf' AND a.position = ?", [k])
                    needle = None if idx is None else f"#{idx}  density"
                if needle is not None:
                    with term.lock:
                        new = bytes(term.out[start:])
                    if needle in ANSI.sub("", new.decode("utf-8", "replace")):
                        break
                if time.perf_counter() - t > 10:
                    raise RuntimeError(f"the feature at position {k} never appeared")
                time.sleep(0.0005)
            out.append(time.perf_counter() - t)
        term.send("q")
        term.proc.wait(timeout=30)
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
        os.close(term.master)
        p.close()
    return out


def measure_startup(path: Path, runs: int = 3) -> list[float]:
    from test_app_kill import Terminal
    out = []
    for k in range(runs):
        t = time.perf_counter()
        term = Terminal([sys.executable, "-m", "tui.cli", "--db", str(path), "annotate",
                         "--annotator", f"startup{k}", "--no-intro"], 120, 40)
        term.wait_for("verdicts 0/", timeout=60)
        out.append(time.perf_counter() - t)
        term.send("q")
        term.proc.wait(timeout=30)
        os.close(term.master)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--features", type=int, default=100_000)
    ap.add_argument("--presses", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "perf.db"
        built = build(path, args.features)
        print(f"built {args.features:,} features in {built:.1f} s ({path.stat().st_size / 1e6:.0f} MB)")
        bare, assign_s = measure_keys(path, args.presses)
        pty_keys = measure_pty_keys(path, args.presses)
        print(f"assign_more (batch of 100, stratified, on {args.features:,} features): {assign_s * 1000:.0f} ms")
        for name, xs in (("keypress -> next feature on a real pty (end to end)", pty_keys),
                         ("session.next + render texts (no screen)", bare)):
            ms = [x * 1000 for x in xs]
            print(f"{name}: p50 {statistics.median(ms):.1f} ms, p95 {pct(ms, 0.95):.1f} ms, "
                  f"max {max(ms):.1f} ms over {len(ms)} presses (target p95 < 50 ms)")
        slow = sorted(range(len(pty_keys)), key=pty_keys.__getitem__)[-3:]
        print("  slowest pty presses (position: ms): "
              + ", ".join(f"{k + 1}: {pty_keys[k] * 1000:.0f}" for k in sorted(slow)))
        starts = measure_startup(path)
        print(f"`saegold annotate` start to first feature on a pty: "
              f"{', '.join(f'{s:.2f}' for s in starts)} s (median {statistics.median(starts):.2f} s; target < 2 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
