"""The counts `saegold status` and `annotate`'s start line show (read through small indexes
and one pass per source, issue 17) equal a naive recount of the raw rows, on a seeded
project with every case: top examples from rank 0, top examples only at later ranks (the
small index of rank-0 rows does not hold them), negative examples only, none; scored and
unscored; live, superseded, failed and imported labels."""
from __future__ import annotations

import random
from collections import defaultdict

import pytest

from saegold.store import features as F
from saegold.store import queue as sq
from saegold.store.examples import put_context, put_example_rows
from saegold.store.labels import add_label
from saegold.store.status import feature_counts, label_methods, not_judgeable, status
from saegold.tui.commands.annotate import queue_notice

CATS = ("input", "output", "cross", "obscure")


def _examples(db, fid: int, sid: int, kind: str, ranks: list[int]) -> None:
    rows = []
    for r in ranks:
        cid = put_context(db, sid, token_ids=[r, fid, 7], tokens=[f" t{r}", f" f{fid}", " x"])
        rows.append((fid, kind, r, None, cid, None, 0, 1.0 - r / 100, "scored"))
    put_example_rows(db, rows)


@pytest.fixture
def mixed(project):
    rng = random.Random(17)
    with project.write() as db:
        sids = [F.get_or_create_source(db, "m", f"{k}-src", layer=k) for k in range(3)]
        F.get_or_create_source(db, "m", "9-empty")          # a source without features
        for sid in sids:
            for idx in range(25):
                fid = F.upsert_feature(db, sid, idx)
                shape = rng.choice(["from0", "later", "negative", "none", "from0"])
                if shape == "from0":
                    _examples(db, fid, sid, "top", list(range(rng.randint(1, 4))))
                elif shape == "later":                      # e.g. ranks 2..4 only
                    start = rng.randint(1, 3)
                    _examples(db, fid, sid, "top", list(range(start, start + rng.randint(1, 3))))
                elif shape == "negative":
                    _examples(db, fid, sid, "negative", [0, 1])
                if rng.random() < 0.7:
                    F.put_score(db, fid, input_threshold=0.5, output_threshold=0.1, scorer_version="v1",
                                input_score=rng.random(), output_score=rng.random() * 0.2, device="cpu")
                for method in ("baez", "eleuther_acts_top5"):
                    u = rng.random()
                    if u < 0.2:
                        add_label(db, fid, method, None, origin="saegold", status="failed", error="x")
                    elif u < 0.5:
                        add_label(db, fid, method, "old", origin="saegold")
                        add_label(db, fid, method, "redo", origin="saegold")      # supersedes "old"
                    elif u < 0.7:
                        add_label(db, fid, method, "one", origin="saegold")
                    elif u < 0.8:                                                 # imported: two live
                        add_label(db, fid, method, "np a", origin="neuronpedia")
                        add_label(db, fid, method, "np b", origin="neuronpedia")
    return project


def _naive(project):
    feats = project.query("SELECT f.id, s.name FROM features f JOIN sources s ON s.id = f.source_id")
    top = {r["feature_id"] for r in project.query("SELECT feature_id FROM examples WHERE kind = 'top'")}
    scored = {r["feature_id"] for r in project.query("SELECT feature_id FROM taxonomy_scores")}
    labels = project.query("SELECT feature_id, method, status, superseded_at, origin FROM labels")
    live = {r["feature_id"] for r in labels if r["status"] == "ok" and r["superseded_at"] is None}
    per: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(
        ("features", "with_examples", "scored", "labeled"), 0))
    for r in project.query("SELECT name FROM sources"):
        per[r["name"]]
    for f in feats:
        c = per[f["name"]]
        c["features"] += 1
        c["with_examples"] += f["id"] in top
        c["scored"] += f["id"] in scored
        c["labeled"] += f["id"] in live
    methods: dict[str, dict] = {}
    for r in labels:
        m = methods.setdefault(r["method"], {"ok": 0, "superseded": 0, "failed": 0, "features": set(),
                                             "origins": set()})
        m["origins"].add(r["origin"])
        if r["status"] == "failed":
            m["failed"] += 1
        elif r["superseded_at"] is None:
            m["ok"] += 1
            m["features"].add(r["feature_id"])
        else:
            m["superseded"] += 1
    return per, methods, len(top)


def test_status_counts_equal_a_naive_recount(mixed):
    per, methods, judgeable = _naive(mixed)
    # the fixture really has every case, the one the small index misses included
    later = mixed.scalar("SELECT COUNT(*) FROM features f WHERE EXISTS (SELECT 1 FROM examples e WHERE "
                         "e.feature_id = f.id AND e.kind = 'top') AND NOT EXISTS (SELECT 1 FROM examples e "
                         "WHERE e.feature_id = f.id AND e.kind = 'top' AND e.rank = 0)")
    assert later >= 3
    assert 0 < judgeable < sum(c["features"] for c in per.values())

    data = status(mixed)
    got = {s["name"]: {k: s[k] for k in ("features", "with_examples", "scored", "labeled")}
           for s in data["sources"]}
    assert got == dict(per)
    expect_nj = {name: c["features"] - c["with_examples"] for name, c in per.items()
                 if c["features"] > c["with_examples"]}
    assert data["not_judgeable"]["by_source"] == expect_nj == not_judgeable(mixed)
    assert data["not_judgeable"]["features"] == sum(expect_nj.values())
    assert [r["name"] for r in feature_counts(mixed)] == sorted(per)

    lm = {r["method"]: r for r in label_methods(mixed)}
    assert set(lm) == set(methods)
    for name, m in methods.items():
        assert (lm[name]["ok"], lm[name]["superseded"], lm[name]["failed"], lm[name]["features"]) == \
            (m["ok"], m["superseded"], m["failed"], len(m["features"]))
        assert set(lm[name]["origins"].split(",")) == m["origins"]

    line = queue_notice(mixed)
    assert line.startswith(f"{judgeable:,} feature(s) can be judged; "
                           f"{sum(expect_nj.values()):,} feature(s) cannot be judged")


def test_queue_hands_out_features_whose_top_examples_start_later(project):
    """A feature with top examples only at ranks >= 1 can be judged: the queue hands it out
    (fresh, and again to a second annotator once someone holds it)."""
    with project.write() as db:
        sid = F.get_or_create_source(db, "m", "0-src")
        later = F.upsert_feature(db, sid, 0)
        _examples(db, later, sid, "top", [3, 4])
        none = F.upsert_feature(db, sid, 1)
        _examples(db, none, sid, "negative", [0])
    assert sq.assign_more(project, "ann", 10) == 1
    assert sq.queue(project, "ann") == [later]
    assert sq.assign_more(project, "bob", 10) == 1      # held by ann: the started part of the queue
    assert sq.queue(project, "bob") == [later]
