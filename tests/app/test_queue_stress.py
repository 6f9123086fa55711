"""Stress: many annotators top up their queues at once, in several processes with several
threads each (one connection per thread), on one real project file, while their own notes
and skips, and a lead's adjudications, commit in between.  No feature ends up with more
holders than ``overlap`` allows, none without top examples is handed out, every queue's
positions run 0..n-1, and once every queue ran dry every feature with examples is full."""
from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from appdata import HOLDERS
from saegold.store import settings
from saegold.store.db import open_project
from saegold.store.examples import put_examples

# One process: one thread per annotator name, each topping up in small batches until two
# batches in a row come back empty, writing a note or a skip on one of its features (or, for
# the lead, an adjudication) between batches.  Prints how many assignments it was told of.
WORKER = r"""
import random, sys, threading
from saegold.store import judgments as sj, queue as sq
from saegold.store.db import open_project
path, names, seed = sys.argv[1], sys.argv[2].split(","), int(sys.argv[3])
p = open_project(path)
told = []
def work(who, rng):
    sj.ensure_annotator(p, who)
    dry = 0
    while dry < 2:
        got = sq.assign_more(p, who, n=rng.choice([1, 2, 3, 5, 8]))
        told.append(got)
        dry = dry + 1 if got == 0 else 0
        mine = sq.queue(p, who)
        if mine and rng.random() < 0.7:
            sj.append(p, sj.make_event(who, rng.choice(mine), rng.choice(["note", "skip", "flag"]), value="x"))
        if rng.random() < 0.3:
            sj.append(p, sj.make_event("lead", rng.choice(range(1, 200)), "adj_tier", value="input"))
threads = [threading.Thread(target=work, args=(w, random.Random(seed * 100 + i))) for i, w in enumerate(names)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(sum(told))
"""

# The same annotator in two processes (two SSH sessions), several annotators per process.
GROUPS = [("a1", "a2"), ("b1", "a1"), ("c1", "d1"), ("d1", "e1", "b1")]


def _build(path: Path, rng: random.Random, n: int, overlap: int) -> None:
    """Features of every category and unscored ones, a tenth without top examples, and
    judgments imported without assignments (some retracted, some a lead's)."""
    p = open_project(path, create=True)
    stamp = "2026-01-01T00:00:00Z"
    with p.write() as db:
        c = db.conn
        c.execute("INSERT INTO sources(id, name, model_id, sae_id, created_at) VALUES (1, 'm/s', 'm', 's', ?)",
                  [stamp])
        c.execute("INSERT INTO annotators(name, role, created_at) VALUES ('lead', 'lead', ?)", [stamp])
        for i in range(n):
            fid = i + 1
            c.execute("INSERT INTO features(id, source_id, idx) VALUES (?, 1, ?)", [fid, i])
            if rng.random() < 0.9:
                put_examples(c, fid, "top", [{"tokens": ["a"], "acts": [1.0]}], "test")
            cat = rng.choice(["input", "output", "cross", "obscure", None, "none"])
            if cat != "none":
                c.execute("INSERT INTO taxonomy_scores(feature_id, category, input_threshold, output_threshold, "
                          "scorer_version, created_at) VALUES (?, ?, 0.5, 0.01, 't', ?)", [fid, cat, stamp])
        for k in range(n // 2):
            who = rng.choice(["imp1", "imp2", "lead"])
            kind = "adj_tier" if who == "lead" else rng.choice(["tier", "note", "retract"])
            c.execute("INSERT INTO judgments(uuid, annotator, feature_id, kind, value, created_at) "
                      "VALUES (?, ?, ?, ?, 'input', ?)", [f"i{k}", who, rng.randrange(1, n + 1), kind, stamp])
    settings.set(p, "overlap", overlap)
    p.close()


@pytest.mark.parametrize("overlap", [1, 2, 3])
def test_many_annotators_topping_up_at_once_never_over_assign(tmp_path, overlap):
    path = tmp_path / "stress.db"
    _build(path, random.Random(overlap), n=240, overlap=overlap)
    p = open_project(path)
    before = {r["feature_id"]: r["n"] for r in p.query(HOLDERS)}
    p.close()
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(path), ",".join(g), str(10 * overlap + i)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=Path(__file__).parents[2]) for i, g in enumerate(GROUPS)]
    told = 0
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
        told += int(out)

    p = open_project(path)
    after = {r["feature_id"]: r["n"] for r in p.query(HOLDERS)}
    over = {f: n for f, n in after.items() if n > max(overlap, before.get(f, 0))}
    assert not over, f"features past overlap {overlap} (feature: holders): {over}"
    assert p.scalar("SELECT COUNT(*) FROM assignments") == told
    assert p.scalar("SELECT COUNT(*) FROM assignments a WHERE NOT EXISTS "
                    "(SELECT 1 FROM examples e WHERE e.feature_id = a.feature_id AND e.kind = 'top')") == 0
    for r in p.query("SELECT annotator, COUNT(*) n, COUNT(DISTINCT position) d, MAX(position) mx "
                     "FROM assignments GROUP BY annotator"):
        assert r["n"] == r["d"] == r["mx"] + 1, r
    with_examples = [r[0] for r in p.db.execute("SELECT DISTINCT feature_id FROM examples WHERE kind = 'top'")]
    assert all(after.get(f, 0) >= overlap for f in with_examples)   # every queue ran dry
    p.close()
