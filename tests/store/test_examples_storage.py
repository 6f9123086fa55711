"""Examples stored once and compactly (schema step m007, store.examples): what was written
before the change reads back exactly after the migration, contexts are shared, and merge
and backup work across the change."""
from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
from sqlite_utils import Database

from saegold.store import features as F
from saegold.store.backup import backup
from saegold.store.db import dumps, open_project
from saegold.store.examples import (all_examples, decode_acts, encode_acts, examples, find_example, prune_contexts,
                            put_examples, sparse_acts)
from saegold.store.export import records
from saegold.store.merge import merge
from saegold.store.schema import migrations

WEIRD = ["<bos>", "▁the", "\n\n", "", " ", "\u202eevil", "\x1b[31m", "[bold]x[/bold]", "🙂", "\\n", "\t", "a\u0301"]


# -- the activations blob ---------------------------------------------------------------

@pytest.mark.parametrize("acts", [
    [], [0.0, 0.0], [0.0, 1.5, 0.0, 2.25], [0.1, 0.2, 1e-30, 3.4e38],      # float64 values kept as given
    [float(np.float32(0.1)), 0.0, float(np.float32(7.3))],                 # exact float32s
    [-0.0, -1.5, 0.0], [1.0] * 70000])
def test_acts_blob_round_trips_exactly(acts):
    blob = encode_acts(acts)
    back = decode_acts(blob, len(acts))
    assert [np.float64(a).tobytes() for a in back] == [np.float64(a).tobytes() for a in acts]
    nonzero = sum(1 for a in acts if np.float64(a).view(np.int64) != 0)
    assert (blob is None) == (nonzero == 0)
    if blob is not None:
        pos, vals = sparse_acts(blob)
        assert len(pos) == nonzero
        exact32 = all(float(np.float32(a)) == a for a in acts)
        assert vals.dtype.itemsize == (4 if exact32 else 8)


def test_a_foreign_blob_is_refused():
    with pytest.raises(ValueError, match="not an activations blob"):
        sparse_acts(b"\x99abc")


# -- contexts once --------------------------------------------------------------------

def _feature(db, idx, source=("m", "s")):
    sid = F.get_or_create_source(db, *source)
    return F.upsert_feature(db, sid, idx)


def test_a_context_is_stored_once_per_source_and_vocab_once(project):
    ids = [1, 5, 7, 5]
    toks = ["<bos>", " the", " cat", " the"]
    with project.write() as db:
        fids = [_feature(db, j) for j in range(20)]
        for j, fid in enumerate(fids):
            put_examples(db, fid, "top", [{"tokens": toks, "token_ids": ids, "acts": [0, j + 1.0, 0, 0.5]}], "scored")
        other = _feature(db, 0, ("m", "other"))
        put_examples(db, other, "top", [{"tokens": toks, "token_ids": ids, "acts": [0, 1.0, 0, 0]}], "scored")
    assert project.scalar("SELECT count(*) FROM contexts") == 2          # once per source
    assert project.scalar("SELECT count(*) FROM vocab") == 2 * 3          # 3 distinct ids per source
    assert project.scalar("SELECT count(*) FROM contexts WHERE tokens IS NOT NULL") == 0
    for j, fid in enumerate(fids):
        (e,) = examples(project, fid)
        assert (e["tokens"], e["token_ids"], e["acts"], e["max_idx"], e["max_act"]) == \
            (toks, ids, [0.0, j + 1.0, 0.0, 0.5], 1, j + 1.0)


def test_strings_that_differ_from_the_vocabulary_are_kept_exactly(project):
    with project.write() as db:
        fid = _feature(db, 1)
        put_examples(db, fid, "top", [
            {"tokens": ["<bos>", " a"], "token_ids": [1, 2], "acts": [0, 1.0]},
            {"tokens": ["<bos>", "\u0020a\u200b"], "token_ids": [1, 2], "acts": [0, 0.5]},   # same id, other text
            {"tokens": WEIRD, "acts": [0.0] * (len(WEIRD) - 1) + [0.25]}], "neuronpedia")  # no ids: as given
    got = examples(project, fid)
    assert [e["tokens"] for e in got] == [["<bos>", " a"], ["<bos>", "\u0020a\u200b"], WEIRD]
    assert [e["token_ids"] for e in got] == [[1, 2], [1, 2], None]
    assert project.scalar("SELECT count(*) FROM contexts WHERE tokens IS NOT NULL") == 2


def test_an_example_without_tokens_is_refused_clearly_and_stores_nothing(project):
    # It used to fail with "TypeError: object of type 'NoneType' has no len()".
    with project.write() as db:
        fid = _feature(db, 1)
        with pytest.raises(ValueError, match="an example needs token ids or token strings"):
            put_examples(db, fid, "top", [{"acts": [1.0, 2.0]}], "x")
    assert examples(project, fid) == []
    assert project.scalar("SELECT count(*) FROM contexts") == 0


def test_replacing_examples_prunes_contexts_nobody_keeps(project):
    with project.write() as db:
        fid = _feature(db, 1)
        put_examples(db, fid, "top", [{"tokens": ["a"], "acts": [1.0]}, {"tokens": ["b"], "acts": [2.0]}], "x")
        put_examples(db, fid, "top", [{"tokens": ["b"], "acts": [2.0]}], "x")
        assert prune_contexts(db) == 1
    assert [e["tokens"] for e in examples(project, fid)] == [["b"]]
    assert project.scalar("SELECT count(*) FROM contexts") == 1


def test_a_quantile_kind_with_bins_fits_without_a_new_layout(project):
    with project.write() as db:
        fid = _feature(db, 1)
        put_examples(db, fid, "quantile", [{"tokens": ["a", "b"], "acts": [0.1, 0.0], "bin": 3},
                                           {"tokens": ["c"], "acts": [0.2], "bin": 4}], "scored")
    assert [(e["bin"], e["tokens"]) for e in examples(project, fid, "quantile")] == [(3, ["a", "b"]), (4, ["c"])]


# -- the migration ----------------------------------------------------------------------

def _old_project(path):
    """A project at schema step m003 (before this change) holding what that code wrote:
    scored examples with token ids, Neuronpedia imports with exact strings and float64
    activations, a context shared by two features, negatives, an NLA explanation and a
    benchmark naming example ids; rows written with the SQL of the writers of the time."""
    db = Database(sqlite3.connect(path))
    migrations.apply(db, stop_before="m007_contexts_once")
    t = "2026-01-01T00:00:00Z"
    db.execute("INSERT INTO sources(id, name, model_id, sae_id, created_at) VALUES (1, 'gpt2/5-res', 'gpt2', '5-res', ?)", [t])
    db.execute("INSERT INTO sources(id, name, model_id, sae_id, created_at) VALUES (2, 'gemma/np', 'gemma', 'np', ?)", [t])
    for fid, sid, idx in ((1, 1, 0), (2, 1, 1), (3, 2, 7), (4, 2, 8)):
        db.execute("INSERT INTO features(id, source_id, idx) VALUES (?, ?, ?)", [fid, sid, idx])
    rows = []
    scored = [["<|endoftext|>", " The", " cat", " sat"], [0, 464, 3797, 3332]]
    for fid, acts in ((1, [0.0, 0.0, float(np.float32(2.7)), float(np.float32(0.3))]),
                      (2, [0.0, float(np.float32(1.1)), 0.0, 0.0])):            # one context, two features
        mx = max(range(4), key=acts.__getitem__)
        rows.append((fid, "top", 0, dumps(scored[0]), dumps(scored[1]), dumps(acts), mx, acts[mx], "scored"))
        rows.append((fid, "negative", 0, dumps(["<|endoftext|>", " dog"]), dumps([0, 3290]), dumps([0.0, 0.0]), 0,
                     0.0, "scored"))
    rows.append((2, "top", 1, dumps(["<|endoftext|>", " The!"]), dumps([0, 464]), dumps([0.0, 0.5]), 1, 0.5,
                 "scored"))                                                     # id 464 with other text
    np_acts = [0.0, 0.123456789012, -0.0, 3.14159265358979, 0]
    rows.append((3, "top", 0, dumps(WEIRD[:5]), None, dumps(np_acts), 3, 3.14159265358979, "neuronpedia"))
    rows.append((4, "top", 0, dumps(WEIRD[:5]), None, dumps(np_acts), 3, 3.14159265358979, "neuronpedia"))
    rows.append((4, "top", 1, dumps(WEIRD), None, dumps([0.5] * len(WEIRD)), 0, 0.5, "neuronpedia"))
    rows.append((4, "negative", 0, dumps(["x"]), None, dumps([-0.25]), 0, -0.25, "neuronpedia"))
    db.conn.executemany("INSERT INTO examples(feature_id, kind, rank, tokens, token_ids, acts, max_idx, max_act, "
                        "origin) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    db.execute("INSERT INTO nla_explanations(example_id, nla_source, token_index, text, created_at) "
               "VALUES (5, 'nla', 1, 'cats, sitting', ?)", [t])
    db.conn.commit()
    before = [dict(zip(("id", "feature_id", "kind", "rank", "tokens", "token_ids", "acts", "max_idx", "max_act",
                        "origin"), r)) for r in db.execute(
        "SELECT id, feature_id, kind, rank, tokens, token_ids, acts, max_idx, max_act, origin FROM examples "
        "ORDER BY feature_id, kind, rank").fetchall()]
    db.conn.close()
    for r in before:
        r["tokens"], r["token_ids"], r["acts"] = json.loads(r["tokens"]), \
            None if r["token_ids"] is None else json.loads(r["token_ids"]), [float(a) for a in json.loads(r["acts"])]
    return before


def _bits(rows):
    """Rows with activations compared bit for bit (-0.0 is not 0.0)."""
    return [{**r, "acts": [np.float64(a).tobytes() for a in r["acts"]]} for r in rows]


def test_migration_keeps_every_example_exactly(tmp_path):
    path = tmp_path / "old.db"
    before = _old_project(path)
    with open_project(path) as p:
        after = [{k: e[k] for k in before[0]} for e in all_examples(p)]
        assert _bits(after) == _bits(before)
        # the shared scored context and the shared Neuronpedia context are stored once each
        assert p.scalar("SELECT count(*) FROM contexts") == 6
        assert p.scalar("SELECT tokens FROM contexts WHERE token_ids IS NOT NULL AND tokens IS NOT NULL") == \
            dumps(["<|endoftext|>", " The!"])
        assert p.scalar("SELECT text FROM nla_explanations WHERE example_id = 5") == "cats, sitting"
        assert find_example(p, "gpt2/5-res", 1, "top", 1) == (5, 2, 1)
        assert find_example(p, "gpt2/5-res", 1, "top", 0) == (3, 4, 1)
        exported = {r["feature"]: r["examples"] for r in records(p, "features", with_examples=True)}
        assert exported[8][0]["tokens"] == WEIRD[:5] and exported[8][1]["tokens"] == WEIRD
        assert [np.float64(a).tobytes() for a in exported[7][0]["acts"]] == \
            [np.float64(a).tobytes() for a in [0.0, 0.123456789012, -0.0, 3.14159265358979, 0.0]]
        with p.write() as db:       # the migrated project takes new examples at once
            put_examples(db, 1, "top", [{"tokens": ["a"], "acts": [1.0]}], "scored", replace=False)


def test_merge_reads_a_project_from_before_the_change_and_backup_copies_the_new_layout(tmp_path):
    old = tmp_path / "old.db"
    before = _old_project(old)
    # OTHER stays at m003: merge reads it read-only, as it is
    with open_project(tmp_path / "new.db", create=True) as p:
        report = merge(p, old)
        assert report.added["examples"] == len(before)
        names = {r["id"]: (r["name"], r["idx"]) for r in p.query(
            "SELECT f.id, s.name, f.idx FROM features f JOIN sources s ON s.id = f.source_id")}
        got = sorted(_bits([{k: e[k] for k in before[0] if k not in ("id", "feature_id")}
                            | {"f": names[e["feature_id"]]} for e in all_examples(p)]), key=repr)
        old_names = {1: ("gpt2/5-res", 0), 2: ("gpt2/5-res", 1), 3: ("gemma/np", 7), 4: ("gemma/np", 8)}
        want = sorted(_bits([{k: r[k] for k in r if k not in ("id", "feature_id")} | {"f": old_names[r["feature_id"]]}
                             for r in before]), key=repr)
        assert got == want
        assert p.scalar("SELECT text FROM nla_explanations") == "cats, sitting"
        assert merge(p, old).added.get("examples", 0) == 0          # a second merge finds them present
        res = backup(p, tmp_path / "copy.db")
        assert res.bytes > 0
    with open_project(tmp_path / "copy.db") as c:
        assert len(list(all_examples(c))) == len(before)


def test_lazy_examples_read_as_the_eager_ones(project):
    """The app's examples (decoded when first read, token strings kept per project) are the
    same dicts as store.examples.examples, whichever items are read first and how."""
    from saegold.store.examples import examples_lazy

    with project.write() as db:
        sid = F.get_or_create_source(db, "m", "lazy")
        fid = F.upsert_feature(db, sid, 0)
        exs = [{"tokens": [f" a{k}", f" b{k}", " c"], "token_ids": [10 + k, 20 + k, 3],
                "acts": [0.0, 1.5 + k, 0.25]} for k in range(6)]
        exs.append({"tokens": ["own", " strings"], "acts": [2.0, 0.0]})     # no ids: exact strings
        F.put_examples(db, fid, "top", exs, "scored")
    eager = examples(project, fid, "top")
    lazy = examples_lazy(project, fid, "top", limit=5)
    assert len(lazy) == 5
    assert lazy.max_acts == [e["max_act"] for e in eager[:5]]
    assert lazy[3] == eager[3] and lazy[-1] == eager[4]
    assert lazy[:2] == eager[:2] and lazy[:] == eager[:5] and list(lazy) == eager[:5]
    with pytest.raises(IndexError):
        lazy[5]
    assert examples_lazy(project, fid, "top")[:] == eager
    assert examples(project, fid, "top") == eager          # read again through the kept strings


def test_lazy_examples_survive_a_rewrite_by_another_process(project):
    """The app read a feature's example rows; before it drew them, another process (a score
    --redo) rewrote the examples and pruned the old contexts: the next read shows the new
    examples, whole, instead of failing on a context that is gone."""
    from saegold.store.db import open_project
    from saegold.store.examples import examples_lazy, prune_contexts

    with project.write() as db:
        sid = F.get_or_create_source(db, "m", "lazy2")
        fid = F.upsert_feature(db, sid, 0)
        F.put_examples(db, fid, "top", [{"tokens": [f"a{k}", "b"], "token_ids": [k, 99], "acts": [1.0 + k, 0.0]}
                                        for k in range(6)], "scored")
    lazy = examples_lazy(project, fid, "top", limit=50)
    assert lazy[0]["tokens"][0].startswith("a")
    with open_project(project.path) as other, other.write() as db:
        F.put_examples(db, fid, "top", [{"tokens": [f"z{k}", "b"], "token_ids": [100 + k, 99],
                                         "acts": [1.0 + k, 0.0]} for k in range(4)], "scored")
        assert prune_contexts(db, sid) > 0
    got = lazy[3]
    assert got["tokens"][0].startswith("z") and len(lazy) == 4
    assert lazy[:] == examples(project, fid, "top")
