"""A redo replaces, it does not pile up (issue 12.4): `label --redo --no-cache` supersedes the
feature's live label of that method; the old one stays with its judgments, and the app, bench
and `method` references see one live label per (feature, method)."""
from __future__ import annotations

import json
import sqlite3

import pytest
from label_builders import add_feature, word_examples
from test_label_job import label, labels

from saegold.engine.bench.job import usable_labels
from saegold.engine.labeling.job import LabelOptions
from saegold.store import judgments as sj
from saegold.store import labels as sl
from saegold.store import queue as sq
from saegold.store.db import open_project
from saegold.store.errors import BadInput, SaegoldError
from saegold.store.importers.judgments import import_judgments
from saegold.store.merge import merge

M = "eleuther_acts_top5"


def _live(project):
    return [r["text"] for r in project.query(f"SELECT text FROM labels WHERE {sl.LIVE} ORDER BY id")]


def test_redo_without_cache_supersedes_the_old_label(project, llm_server):
    fid = add_feature(project, 0, examples=word_examples("dog"))
    answers = iter(["[EXPLANATION]: Dogs", "[EXPLANATION]: Canines"])
    server = llm_server(lambda req: next(answers))
    label(project, server, LabelOptions(methods=[M]))
    old = labels(project)[0]
    sj.append(project, sj.make_event("ann", fid, "verdict", value="correct", label_uuid=old["uuid"]))
    label(project, server, LabelOptions(methods=[M], redo=True), read_cache=False)
    both = labels(project)
    assert [r["text"] for r in both] == ["Dogs", "Canines"]          # the old one stays ...
    new = both[1]
    assert both[0]["superseded_by"] == new["uuid"] and both[0]["superseded_at"] and new["superseded_at"] is None
    assert _live(project) == ["Canines"]                              # ... but one is live
    assert [c["uuid"] for c in sl.candidates(project, fid)] == [new["uuid"]]   # what the app shows
    assert [r.uuid for r in usable_labels(project, [M])] == [new["uuid"]]      # what bench scores
    assert sq.states(project, "ann", [fid])[fid].candidates == [new["uuid"]]
    # the verdict on the old label stays, for what it was
    assert [e["label_uuid"] for e in sj.events(project, annotator="ann")] == [old["uuid"]]


def test_import_naming_the_method_takes_the_live_label(project, llm_server, tmp_path):
    fid = add_feature(project, 0, examples=word_examples("dog"))
    answers = iter(["[EXPLANATION]: Dogs", "[EXPLANATION]: Canines"])
    server = llm_server(lambda req: next(answers))
    label(project, server, LabelOptions(methods=[M]))
    label(project, server, LabelOptions(methods=[M], redo=True), read_cache=False)
    src, idx = project.query("SELECT s.name, f.idx FROM features f JOIN sources s ON s.id = f.source_id "
                             "WHERE f.id = ?", [fid])[0].values()
    f = tmp_path / "j.jsonl"
    f.write_text(json.dumps({"source": src, "feature": idx, "annotator": "ext", "kind": "verdict",
                             "value": "wrong", "method": M, "created_at": "2026-02-01T00:00:00Z"}) + "\n")
    import_judgments(project, [f])
    live = project.scalar(f"SELECT uuid FROM labels WHERE {sl.LIVE}")
    assert [e["label_uuid"] for e in sj.events(project, annotator="ext")] == [live]


def test_one_live_label_per_feature_and_method_is_enforced(project):
    fid = add_feature(project, 0, examples=word_examples("dog"))
    with project.write() as db:
        sl.add_label(db, fid, M, "first", origin="saegold", uuid="u1", created_at="2026-01-01T00:00:00Z")
        sl.add_label(db, fid, M, "second", origin="saegold", uuid="u2", created_at="2026-01-02T00:00:00Z")
        sl.add_label(db, fid, M, "second", origin="saegold", uuid="u2")   # the same again: nothing
        sl.add_label(db, fid, M, None, origin="saegold", status="failed", uuid="u3")  # a failed redo
    assert _live(project) == ["second"]
    assert project.scalar("SELECT superseded_by FROM labels WHERE uuid = 'u1'") == "u2"
    with pytest.raises(sqlite3.IntegrityError), project.write() as db:   # the index holds it
        db.execute("INSERT INTO labels(uuid, feature_id, method, text, origin, created_at) "
                   "VALUES ('u4', ?, ?, 'raw', 'saegold', 'now')", [fid, M])


def test_neuronpedia_explanations_of_one_type_stay_several_candidates(project):
    """Several explanations of one typeName on a feature (other models, other authors) are
    several live candidates, as stored before; `method` references to them stay ambiguous."""
    fid = add_feature(project, 0, examples=word_examples("dog"))
    with project.write() as db:
        for k, text in enumerate(("dogs", "canines")):
            db.execute("INSERT INTO labels(uuid, feature_id, method, text, origin, created_at) "
                       "VALUES (?, ?, 'oai_token-act-pair', ?, 'neuronpedia', '2026-01-01')", [f"np{k}", fid, text])
    assert len(sl.candidates(project, fid)) == 2


def test_the_migration_keeps_the_newest_live_and_supersedes_the_older(tmp_path):
    """A project made before redo superseded, with two live labels of one method on a feature."""
    path = tmp_path / "old.db"
    p = open_project(path, create=True)
    fid = add_feature(p, 0, examples=word_examples("dog"))
    p.close()
    conn = sqlite3.connect(path)
    # as made before m008: without it, and without the later steps (m009's indexes)
    for index in ("labels_live", "examples_top_first", "labels_current", "labels_method_counts",
                  "labels_current_method"):
        conn.execute(f"DROP INDEX {index}")
    conn.execute("ALTER TABLE labels DROP COLUMN superseded_at")
    conn.execute("ALTER TABLE labels DROP COLUMN superseded_by")
    conn.execute("DELETE FROM _sqlite_migrations WHERE name IN ('m008_live_labels', 'm009_scale_indexes')")
    for uuid, text, at in (("a", "old", "2026-01-01T00:00:00Z"), ("b", "new", "2026-01-03T00:00:00Z"),
                           ("c", "middle", "2026-01-02T00:00:00Z")):
        conn.execute("INSERT INTO labels(uuid, feature_id, method, text, origin, created_at) "
                     "VALUES (?, ?, ?, ?, 'saegold', ?)", [uuid, fid, M, text, at])
    for k in range(2):
        conn.execute("INSERT INTO labels(uuid, feature_id, method, text, origin, created_at) "
                     "VALUES (?, ?, 'np', 'x', 'neuronpedia', 'now')", [f"n{k}", fid])
    conn.commit()
    conn.close()
    p = open_project(path)
    got = {r["uuid"]: r["superseded_by"] for r in p.query("SELECT uuid, superseded_by FROM labels")}
    assert got == {"a": "b", "c": "b", "b": None, "n0": None, "n1": None}
    p.close()


def test_merge_keeps_one_live_label_the_newer(tmp_path):
    a = open_project(tmp_path / "a.db", create=True)
    b = open_project(tmp_path / "b.db", create=True)
    for p, (uuid, text, at) in ((a, ("ua", "ours", "2026-01-01T00:00:00Z")), (b, ("ub", "theirs", "2026-01-05T00:00:00Z"))):
        fid = add_feature(p, 0, examples=word_examples("dog"))
        with p.write() as db:
            sl.add_label(db, fid, M, text, origin="saegold", uuid=uuid, created_at=at)
    b.close()
    report = merge(a, tmp_path / "b.db")
    assert _live(a) == ["theirs"]
    assert a.scalar("SELECT superseded_by FROM labels WHERE uuid = 'ua'") == "ub"
    assert any(c.table == "labels" and "two live labels" in c.resolution for c in report.conflicts)
    a.close()
    assert issubclass(BadInput, SaegoldError)
