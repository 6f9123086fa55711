"""Annotation app performance on a 100,000-feature project.

Prints: project build time, queue assignment time, how long a judgment written by another
connection waits while a batch is being assigned, keypress -> next feature fully rendered
on a real pseudo-terminal (p50 / p95 / max over N presses; real SQLite), the same
without the screen (session + Rich text only), and `saegold annotate` startup to the first feature on
screen in a real pseudo-terminal.  Targets: p95 < 50 ms, startup < 2 s.

The app holds only a few features ahead of the annotator (leases, store.queue.LOOKAHEAD)
and keeps them in a background thread after each feature (store.queue.top_up: renew, release
the ones passed over and expired ones, hand out new ones): that top-up's own time is reported,
and every press measured on the pty has one in flight.  Any press can also meet one of the
app's full garbage collections (about 35-40 ms, every 30-odd presses here); the slowest
presses are listed.

    .venv/bin/python tests/perf/perf_app.py [--features 100000] [--presses 200] [--baseline DIR]

``--baseline DIR`` (a checkout of another version, e.g. ``git archive main | tar -x -C DIR``)
also measures that version's app on the same project, alternating with this one, and prints
before/after keypress and start-up figures from the one run (both versions must know the
project's schema: the newer one migrates it on opening).
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

from saegold.store.db import now, open_project  # noqa: E402
from saegold.store.examples import context_digest, encode_acts, encode_ids  # noqa: E402

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
        c.executemany("INSERT INTO vocab(source_id, token_id, token) VALUES (1, ?, ?)",
                      [(k, " " + w) for k, w in enumerate(WORDS)])
        ctx_rows = []
        for i in range(n):
            fid = i + 1
            for r in range(2):
                ids = [rng.randrange(len(WORDS)) for _ in range(32)]
                acts = [round(rng.random(), 3) if rng.random() < 0.2 else 0.0 for _ in range(32)]
                mx = max(range(32), key=acts.__getitem__)
                blob = encode_ids(ids)
                ctx_rows.append((len(ctx_rows) + 1, context_digest(blob, None), blob))
                ex_rows.append((fid, "top", r, len(ctx_rows), encode_acts(acts), mx, acts[mx], "scored"))
            for kind in ("promoted", "suppressed", "amplified_next"):
                for r in range(8):
                    lt_rows.append((fid, kind, r, " " + rng.choice(WORDS), r, rng.random()))
            cat = CATS[rng.randrange(4)]
            tax_rows.append((fid, rng.random(), rng.random() * 0.02, cat, 0.5, 0.01, "From my experience, the",
                             "perf", stamp))
            if cat != "obscure":
                for m in ("eleuther_acts_top5", "baez"):
                    lab_rows.append((f"{fid}-{m}", fid, m, f"label {m} {fid}", "saegold", stamp))
        c.executemany("INSERT INTO contexts(id, source_id, digest, token_ids) VALUES (?, 1, ?, ?)", ctx_rows)
        c.executemany("INSERT INTO examples(feature_id, kind, rank, context_id, acts, max_idx, max_act, origin) "
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


def measure_keys(path: Path, presses: int) -> tuple[list[float], float, list[float]]:
    from saegold.store import queue as sq
    from saegold.tui.app import render
    from saegold.tui.app.session import Session

    p = open_project(path)
    t0 = time.perf_counter()
    sq.assign_more(p, "assign-probe", n=100)
    assign_s = time.perf_counter() - t0

    # Without the screen: session.next() + building every Rich text (the fitted examples and
    # output evidence rendered at 80 columns, as the first screen does).
    import io

    from rich.console import Console
    console = Console(width=80, file=io.StringIO(), color_system="256")
    s = Session(p, "bare")
    s.start()
    bare, topups = [], []
    for _ in range(presses):
        t = time.perf_counter()
        s.next()
        for fn in (render.header, render.candidates, render.judgment, render.machine):
            fn(s)
        console.render_lines(render.Examples(s.view), console.options.update(height=7))
        console.render_lines(render.Evidence(s.view), console.options.update(height=8))
        bare.append(time.perf_counter() - t)
        if s.wants_refill:  # what the app's background worker does, timed on its own
            t = time.perf_counter()
            s.absorb_assignments(s.assign_batch())
            topups.append(time.perf_counter() - t)

    p.close()
    return bare, assign_s, topups


def measure_write_wait(path: Path, batches: int = 3) -> tuple[list[float], list[float]]:
    """Assign ``batches`` batches in a thread while the main thread appends judgments on its
    own connection, as the app's keypresses do: (each assignment's time, each append's)."""
    import threading

    from saegold.store import judgments as sj
    from saegold.store import queue as sq

    p = open_project(path)
    sj.ensure_annotator(p, "waitprobe")
    fid = p.scalar("SELECT MIN(id) FROM features")
    assign: list[float] = []

    def assigner() -> None:
        for _ in range(batches):
            t = time.perf_counter()
            sq.assign_more(p, "lockprobe")
            assign.append(time.perf_counter() - t)

    th = threading.Thread(target=assigner)
    writes: list[float] = []
    th.start()
    while th.is_alive():
        t = time.perf_counter()
        sj.append(p, sj.make_event("waitprobe", fid, "note", value="probe"))
        writes.append(time.perf_counter() - t)
        time.sleep(0.002)
    th.join()
    p.close()
    return assign, writes


def app_module(code: Path) -> str:
    """The command line's module in the checkout ``code`` (run with it as the current directory,
    so its own code is imported): ``saegold.tui.cli``, or ``tui.cli`` in a checkout from before
    the code was imported under the one name ``saegold``."""
    return "saegold.tui.cli" if (code / "saegold").is_dir() else "tui.cli"


def measure_pty_keys(path: Path, presses: int, code: Path = ROOT, annotator: str = "ptyperf") -> list[float]:
    """Keypress ``n`` -> the next feature's header on a real pseudo-terminal (120x40), with
    the saegold code in ``code`` (a checkout: another version, for before/after figures)."""
    from test_app_kill import ANSI, Terminal
    p = open_project(path, readonly=True)
    term = Terminal([sys.executable, "-m", app_module(code), "--db", str(path), "annotate",
                     "--annotator", annotator, "--no-intro"], 120, 40, cwd=code)
    out = []
    try:
        term.wait_for("verdicts 0/", timeout=60)
        for k in range(1, presses + 1):
            with term.lock:
                start = len(term.out)
            t = time.perf_counter()
            term.send("n")
            needle = None
            seen = -1  # bytes of output already searched: search again only when more came
            while True:
                if needle is None:  # past the first batch the app assigns more as it goes
                    idx = p.scalar("SELECT f.idx FROM assignments a JOIN features f ON f.id = a.feature_id "
                                   "WHERE a.annotator = ? AND a.position = ?", [annotator, k])
                    needle = None if idx is None else f"#{idx}  density"
                if needle is not None and len(term.out) != seen:
                    with term.lock:
                        new = bytes(term.out[start:])
                    seen = start + len(new)
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


def measure_startup(path: Path, runs: int = 3, code: Path = ROOT, tag: str = "") -> list[float]:
    from test_app_kill import Terminal
    out = []
    for k in range(runs):
        t = time.perf_counter()
        term = Terminal([sys.executable, "-m", app_module(code), "--db", str(path), "annotate",
                         "--annotator", f"startup{tag}{k}", "--no-intro"], 120, 40, cwd=code)
        term.wait_for("verdicts 0/", timeout=60)
        out.append(time.perf_counter() - t)
        term.send("q")
        term.proc.wait(timeout=30)
        os.close(term.master)
    return out


def report_keys(name: str, xs: list[float]) -> None:
    ms = [x * 1000 for x in xs]
    worst = max(range(len(ms)), key=ms.__getitem__)
    print(f"{name}: p50 {statistics.median(ms):.1f} ms, p95 {pct(ms, 0.95):.1f} ms, "
          f"max {ms[worst]:.1f} ms (press {worst + 1}) over {len(ms)} presses (target p95 < 50 ms)")


def report_slowest(xs: list[float]) -> None:
    ms = [x * 1000 for x in xs]
    slow = sorted(range(len(ms)), key=ms.__getitem__)[-3:]
    print("  slowest presses (press: ms): " + ", ".join(f"{k + 1}: {ms[k]:.0f}" for k in sorted(slow)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--features", type=int, default=100_000)
    ap.add_argument("--presses", type=int, default=200)
    ap.add_argument("--baseline", type=Path, default=None,
                    help="also measure the app of another checkout (e.g. `git archive main | tar -x -C DIR`) "
                         "on the same project, interleaved: before/after figures from one run")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "perf.db"
        built = build(path, args.features)
        print(f"built {args.features:,} features in {built:.1f} s ({path.stat().st_size / 1e6:.0f} MB)")
        bare, assign_s, topups = measure_keys(path, args.presses)
        pty_keys = measure_pty_keys(path, args.presses)
        assigns, writes = measure_write_wait(path)
        print(f"assign_more (batch of 100, stratified, on {args.features:,} features): {assign_s * 1000:.0f} ms")
        print(f"a judgment written while batches are assigned (another connection): max wait "
              f"{max(writes) * 1000:.1f} ms, median {statistics.median(writes) * 1000:.1f} ms over "
              f"{len(writes)} writes, during {len(assigns)} assignments of "
              f"{', '.join(f'{a * 1000:.0f}' for a in assigns)} ms")
        report_keys("keypress -> next feature on a real pty (end to end)", pty_keys)
        report_slowest(pty_keys)
        report_keys("session.next + render texts (no screen)", bare)
        tms = [x * 1000 for x in topups]
        print(f"lease top-up (background thread, after each feature): p50 {statistics.median(tms):.1f} ms, "
              f"p95 {pct(tms, 0.95):.1f} ms over {len(tms)} top-ups")
        starts = measure_startup(path)
        print(f"`saegold annotate` start to first feature on a pty: "
              f"{', '.join(f'{s:.2f}' for s in starts)} s (median {statistics.median(starts):.2f} s; target < 2 s)")
        if args.baseline:
            compare(path, args.baseline, args.presses)
    return 0


def compare(path: Path, baseline: Path, presses: int, rounds: int = 2) -> None:
    """Keypresses and start-up of the ``baseline`` checkout's app and of this one, on the
    same project, in alternating rounds (so both see the same machine load)."""
    keys: dict[str, list[float]] = {"before": [], "after": []}
    starts: dict[str, list[float]] = {"before": [], "after": []}
    for r in range(rounds):
        for tag, code in (("before", baseline), ("after", ROOT)):
            keys[tag] += measure_pty_keys(path, presses, code=code, annotator=f"cmp{tag}{r}")
            starts[tag] += measure_startup(path, 2, code=code, tag=f"{tag}{r}")
    for tag in ("before", "after"):
        report_keys(f"{tag}: keypress -> next feature on a pty", keys[tag])
        print(f"{tag}: start-up median {statistics.median(starts[tag]):.2f} s over {len(starts[tag])} starts")


if __name__ == "__main__":
    sys.exit(main())
