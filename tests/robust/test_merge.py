"""``saegold merge``: idempotent, symmetric for judgments, matched by natural keys, one transaction."""
from __future__ import annotations

import contextlib
import shutil
import sqlite3

import pytest
from robust_harness import table_dump

from saegold.store import judgments, settings
from saegold.store.db import open_project
from saegold.store.errors import BadInput, SchemaTooNew, StoreError
from saegold.store.examples import examples as stored_examples
from saegold.store.features import (get_or_create_source, put_examples, put_logit_tokens, put_score,
                            upsert_feature)
from saegold.store.labels import add_label
from saegold.store.merge import merge


def _fid(p, source: str, idx: int) -> int:
    return p.scalar("SELECT f.id FROM features f JOIN sources s ON s.id = f.source_id "
                    "WHERE s.name = ? AND f.idx = ?", [source, idx])


def _label(p, fid: int, method: str) -> str:
    return p.scalar("SELECT uuid FROM labels WHERE feature_id = ? AND method = ?", [fid, method])


def _work(path, who: str, *, extra_source: str, lead: bool = False) -> None:
    """One annotator's copy: judgments with undo, plus scores, labels and a setting of its own."""
    with open_project(path) as p:
        judgments.ensure_annotator(p, who, "lead" if lead else "annotator")
        with p.write() as db:
            # A source only this copy has, created before a shared new one: row ids now differ.
            get_or_create_source(db, extra_source, "0-res")
            sid = get_or_create_source(db, "shared-new", "3-res", layer=3)
            for i in (0, 7, 9):
                upsert_feature(db, sid, i)
        f0 = _fid(p, "tiny-model/0-res", 0)
        f1 = _fid(p, "tiny-model/0-res", 1)
        new7 = _fid(p, "shared-new/3-res", 7)
        evs = [judgments.make_event(who, f0, "tier", value="input", confidence=2),
               judgments.make_event(who, f0, "verdict", value="correct",
                                    label_uuid=_label(p, f0, "baez")),
               judgments.make_event(who, new7, "tier", value="obscure", confidence=1),
               judgments.make_event(who, f1, "note", value=f"{who} thinks so")]
        for ev in evs:
            judgments.append(p, ev)
        judgments.append(p, judgments.make_event(who, f0, "retract", target_uuid=evs[0]["uuid"]))
        with p.write() as db:
            lab = add_label(db, new7, "baez", f"{who}'s label", origin="saegold")
            lid = db.execute("SELECT id FROM labels WHERE uuid = ?", [lab]).fetchone()[0]
            db.execute("INSERT INTO bench_scores(label_id, benchmark, control, value, n, created_at) "
                       "VALUES (?, 'detection', 'true', 0.75, 10, 'now')", [lid])
            put_examples(db, new7, "top", [{"tokens": ["a", who], "acts": [0.0, 2.0]}], origin="scored")
            ex = db.execute("SELECT id FROM examples WHERE feature_id = ?", [new7]).fetchone()[0]
            db.execute("INSERT INTO nla_explanations(example_id, nla_source, token_index, text, created_at) "
                       "VALUES (?, 'nla', 1, 'about the last token', 'now')", [ex])
            put_logit_tokens(db, new7, "promoted", [(" the", 5, 1.5), (" a", 6, 1.2)])
            put_score(db, new7, input_threshold=0.5, output_threshold=0.01, scorer_version="t",
                      input_score=0.9, output_score=0.001)
            db.execute("INSERT INTO assignments(feature_id, annotator, position, created_at) "
                       "VALUES (?, ?, 0, 'now')", [new7, who])
            db.execute("INSERT INTO llm_cache(key, endpoint, model, request, response, created_at) "
                       "VALUES (?, 'http://x', 'm', '{}', '{}', 'now')", [f"key-{who}"])


@pytest.fixture
def pair(seeded, tmp_path):
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    shutil.copy(seeded, a)
    shutil.copy(seeded, b)
    _work(a, "alice", extra_source="only-a")
    _work(b, "bob", extra_source="only-b", lead=True)
    return a, b


def _judgment_set(path) -> set[tuple]:
    with open_project(path) as p:
        rows = p.query(
            "SELECT j.uuid, j.annotator, j.kind, j.value, j.label_uuid, j.confidence, j.target_uuid, "
            "j.created_at, s.name AS source, f.idx FROM judgments j JOIN features f ON f.id = j.feature_id "
            "JOIN sources s ON s.id = f.source_id")
    return {tuple(r.values()) for r in rows}


def _view(path) -> dict:
    with open_project(path) as p:
        keys = {r["id"]: (r["name"], r["idx"]) for r in p.query(
            "SELECT f.id, s.name, f.idx FROM features f JOIN sources s ON s.id = f.source_id")}
        view = judgments.current(p)
    return {(keys[fid], who, adj): (j.tier, j.confidence, dict(j.verdicts), j.preference, j.notes)
            for (fid, who, adj), j in view.items()}


def test_merge_folds_in_everything_by_natural_keys(pair):
    a, b = pair
    with open_project(a) as p:
        report = merge(p, b)
        assert report.changed
        assert _judgment_set(b) <= _judgment_set(a)
        assert p.scalar("SELECT count(*) FROM judgments") == 10
        # The shared new source was matched by name, its features by index, not by row id.
        assert p.scalar("SELECT count(*) FROM sources WHERE name = 'shared-new/3-res'") == 1
        assert p.scalar("SELECT count(*) FROM sources") == 4
        new7 = _fid(p, "shared-new/3-res", 7)
        bob7 = p.query("SELECT feature_id FROM judgments WHERE annotator = 'bob' AND value = 'obscure'")
        assert bob7 == [{"feature_id": new7}]
        assert {r["text"] for r in p.query("SELECT text FROM labels WHERE feature_id = ?", [new7])} == {
            "alice's label", "bob's label"}
        assert p.scalar("SELECT count(*) FROM bench_scores") == 2
        assert p.scalar("SELECT count(*) FROM annotators") == 2
        assert p.scalar("SELECT role FROM annotators WHERE name = 'bob'") == "lead"
        assert p.scalar("SELECT count(*) FROM assignments WHERE feature_id = ?", [new7]) == 2
        assert p.scalar("SELECT count(*) FROM llm_cache") == 2
        # Both copies scored feature 7 with different examples: ours kept, difference reported.
        assert [e["tokens"] for e in stored_examples(p, new7)] == [["a", "alice"]]
        assert [c.key for c in report.conflicts if c.table == "examples"] == ["shared-new/3-res#7 top (count)"]
        assert report.present["taxonomy_scores"] == 1
        assert report.nla_skipped == 1  # B's explanation of B's (different) example is not attached to ours
        # Features only B had get B's examples, logit tokens and NLA explanation whole.
    with open_project(b) as pb, pb.write() as db:
        put_examples(db, _fid(pb, "shared-new/3-res", 9), "top",
                     [{"tokens": ["z"], "acts": [1.0]}], origin="scored")
        ex = stored_examples(db, _fid(pb, "shared-new/3-res", 9))[0]["id"]
        db.execute("INSERT INTO nla_explanations(example_id, nla_source, token_index, text, created_at) "
                   "VALUES (?, 'nla', 0, 'z explained', 'now')", [ex])
        put_logit_tokens(db, _fid(pb, "shared-new/3-res", 9), "promoted", [(" z", 9, 3.0)])
    with open_project(a) as p:
        merge(p, b)
        f9 = _fid(p, "shared-new/3-res", 9)
        assert [e["tokens"] for e in stored_examples(p, f9)] == [["z"]]
        assert p.scalar("SELECT text FROM nla_explanations n JOIN examples e ON e.id = n.example_id "
                        "WHERE e.feature_id = ?", [f9]) == "z explained"
        assert p.scalar("SELECT token FROM logit_tokens WHERE feature_id = ?", [f9]) == " z"


def test_merging_twice_changes_nothing(pair):
    a, b = pair
    with open_project(a) as p:
        merge(p, b)
    before = table_dump(a)
    with open_project(a) as p:
        again = merge(p, b)
    assert not again.changed
    assert table_dump(a) == before


def test_a_into_b_equals_b_into_a(pair, tmp_path):
    a, b = pair
    a2, b2 = tmp_path / "a2.db", tmp_path / "b2.db"
    shutil.copy(a, a2)
    shutil.copy(b, b2)
    with open_project(a) as p:
        merge(p, b)
    with open_project(b2) as p:
        merge(p, a2)
    assert _judgment_set(a) == _judgment_set(b2)
    assert len(_judgment_set(a)) == 10
    assert _view(a) == _view(b2)


def test_conflicting_settings_are_reported_not_overwritten(pair):
    a, b = pair
    with open_project(a) as p:
        settings.set(p, "overlap", 3)
    with open_project(b) as p:
        settings.set(p, "overlap", 4)
        settings.set(p, "blind", False)
    with open_project(a) as p:
        report = merge(p, b)
        assert settings.get(p, "overlap") == 3
        assert settings.get(p, "blind") is True
    got = {c.key: (c.ours, c.theirs) for c in report.conflicts if c.table == "settings"}
    assert got == {"overlap": (3, 4), "blind": (True, False)}


def test_identity_violation_refuses_the_whole_merge(pair):
    a, b = pair
    with open_project(b) as p:
        judgments.ensure_annotator(p, "mallory")
        alice_like = p.scalar("SELECT uuid FROM judgments WHERE annotator = 'bob' AND kind = 'note'")
        # A raw insert (a tampered or foreign copy): mallory retracts bob's note.
        with p.write() as db:
            db.execute("INSERT INTO judgments(uuid, annotator, feature_id, kind, target_uuid, created_at) "
                       "SELECT 'evil-1', 'mallory', feature_id, 'retract', uuid, 'z' FROM judgments "
                       "WHERE uuid = ?", [alice_like])
    before = table_dump(a)
    with open_project(a) as p, pytest.raises(BadInput, match="mallory.*cannot retract"):
        merge(p, b)
    assert table_dump(a) == before


def test_dry_run_changes_nothing(pair):
    a, b = pair
    before = table_dump(a)
    with open_project(a) as p:
        report = merge(p, b, dry_run=True)
    assert report.added["judgments"] == 5
    assert table_dump(a) == before


def test_refusals(pair, tmp_path):
    a, b = pair
    with open_project(b) as p, p.write() as db:
        db.execute("INSERT INTO _sqlite_migrations(migration_set, name, applied_at) "
                   "VALUES ('saegold', 'm999_future', 'x')")
    with open_project(a) as p:
        with pytest.raises(SchemaTooNew, match="newer saegold"):
            merge(p, b)
        with pytest.raises(StoreError, match="own database"):
            merge(p, a)
        with pytest.raises(StoreError, match="no such project"):
            merge(p, tmp_path / "missing.db")
        junk = tmp_path / "junk.db"
        junk.write_bytes(b"not sqlite at all" * 100)
        with pytest.raises(StoreError, match="not a usable SQLite"):
            merge(p, junk)
        plain = tmp_path / "plain.db"
        sqlite3.connect(plain).execute("CREATE TABLE t(x)").connection.close()
        with pytest.raises(StoreError, match="not a saegold project"):
            merge(p, plain)


def test_cli_merge_reports_and_refuses_with_one_line(pair, cli):
    a, b = pair
    rc, out, err = cli("--db", a, "merge", b)
    assert rc == 0, err
    assert "judgments" in out and "5 new" in out
    assert "conflicts" in out
    rc, out, err = cli("--db", a, "merge", b)
    assert rc == 0 and "nothing new" in out
    with open_project(b) as p, p.write() as db:
        db.execute("INSERT INTO _sqlite_migrations(migration_set, name, applied_at) "
                   "VALUES ('saegold', 'm999_future', 'x')")
    rc, out, err = cli("--db", a, "merge", b)
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and "newer saegold" in err


def test_merge_while_annotators_keep_writing(pair, tmp_path):
    """Writers queue behind the merge's one transaction: nobody errors, nothing is lost."""
    import threading

    from robust_harness import check_nothing_lost, run_writers

    a, b = pair
    result: dict = {}
    writers = threading.Thread(target=lambda: result.update(
        run=run_writers(a, tmp_path / "work", 4, 150, seed=9, fork=True)))
    writers.start()
    merges = 0
    with open_project(a) as p:
        while writers.is_alive() or merges < 2:
            merge(p, b)
            merges += 1
    writers.join()
    run = result["run"]
    check_nothing_lost(a, run, exact=True)
    assert run.errors == 0 and run.retries == 0
    assert _judgment_set(b) <= _judgment_set(a)
    with open_project(a) as p:
        assert p.scalar("SELECT count(*) FROM judgments") == 5 + 5 + 4 * 150


def test_same_uuid_different_content_is_reported_not_overwritten(pair):
    a, b = pair
    with open_project(b) as p, p.write() as db:
        # Another copy that (wrongly) reuses UUIDs: same label UUID, other text; a score that differs.
        uuid = db.execute("SELECT uuid FROM labels ORDER BY id LIMIT 1").fetchone()[0]
        db.execute("UPDATE labels SET text = 'tampered' WHERE uuid = ?", [uuid])
        db.execute("UPDATE taxonomy_scores SET input_score = 0.1, category = 'obscure'")
    with open_project(a) as p:
        before = p.scalar("SELECT text FROM labels WHERE uuid = ?", [uuid])
        report = merge(p, b)
        assert p.scalar("SELECT text FROM labels WHERE uuid = ?", [uuid]) == before
        assert p.scalar("SELECT count(*) FROM labels WHERE uuid = ?", [uuid]) == 1
        tables = [c.table for c in report.conflicts]
        assert "labels" in tables and "taxonomy_scores" in tables
        assert p.scalar("SELECT category FROM taxonomy_scores") != "obscure"


def test_older_schema_other_merges(pair):
    """An OTHER.db from an older saegold (fewer schema steps, fewer tables) still merges."""
    a, b = pair
    with contextlib.closing(sqlite3.connect(b)) as conn, conn:
        later = [r[0] for r in conn.execute("SELECT name FROM _sqlite_migrations ORDER BY rowid")][1:]
        conn.execute("DELETE FROM _sqlite_migrations WHERE name != 'm001_core'")
        for table in [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]:
            if table == "import_log":
                conn.execute("DROP TABLE import_log")
    assert later, "this test needs a schema with more than one step"
    with open_project(a) as p:
        report = merge(p, b)
    assert report.added["judgments"] == 5


def _tamper(path, *sql: str) -> None:
    """Write into OTHER the way a broken tool or a damaged copy might (no FK/CHECK rules)."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA ignore_check_constraints = ON")
        with conn:
            for stmt in sql:
                conn.execute(stmt)
    finally:
        conn.close()


DAMAGE = {
    "dangling judgment": ("INSERT INTO judgments(uuid, annotator, feature_id, kind, value, created_at) "
                          "VALUES ('j-x', 'bob', 99999, 'note', 'hi', 'z')", "names no row"),
    "dangling label": ("INSERT INTO labels(uuid, feature_id, method, text, origin, created_at) "
                       "VALUES ('l-x', 99999, 'm', 't', 'o', 'z')", "names no row"),
    "dangling bench score": ("INSERT INTO bench_scores(label_id, benchmark, control, n, created_at) "
                             "VALUES (99999, 'detection', 'true', 1, 'z')", "names no row"),
    "unknown judgment kind": ("INSERT INTO judgments(uuid, annotator, feature_id, kind, created_at) "
                              "SELECT 'j-y', 'bob', id, 'bogus', 'z' FROM features LIMIT 1", "schema"),
    "negative feature index": ("INSERT INTO features(source_id, idx) SELECT id, -5 FROM sources LIMIT 1",
                               "schema"),
    "settings not JSON": ("INSERT INTO settings(key, value) VALUES ('overlap', '{oops')", "not JSON"),
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_damaged_other_is_one_line_and_changes_nothing(pair, cli, damage):
    a, b = pair
    sql, expect = DAMAGE[damage]
    _tamper(b, sql)
    before = table_dump(a)
    rc, out, err = cli("--db", a, "merge", b)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0] and str(b) in lines[0], err
    assert table_dump(a) == before


def test_corrupt_other_file_is_one_line(pair, cli):
    a, b = pair
    data = bytearray(b.read_bytes())
    page = 4096
    for i in range(2 * page, len(data), page):  # scribble over every page but the first two
        data[i + 100:i + 600] = b"\xde\xad\xbe\xef" * 125
    b.write_bytes(bytes(data))
    before = table_dump(a)
    rc, out, err = cli("--db", a, "merge", b)
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and str(b) in err, err
    assert table_dump(a) == before


def test_odd_file_names(pair, tmp_path, cli):
    """'?', '#' and '%' in file names are not read as URI syntax."""
    a, b = pair
    odd_a, odd_b = tmp_path / "team a #1?.db", tmp_path / "copy 100%#?x=y.db"
    shutil.copy(a, odd_a)
    shutil.copy(b, odd_b)
    rc, out, err = cli("--db", odd_a, "merge", odd_b)
    assert rc == 0, err
    assert "5 new" in out
    rc, out, err = cli("--db", odd_a, "backup", tmp_path / "snap #2?.db")
    assert rc == 0, err
    assert "10 judgment events" in out


def test_superseded_results_come_along_with_our_ids_and_only_once(pair):
    """Results a redo replaced in OTHER (store.superseded) are merged: their feature and label
    refer to our rows, inside the kept row too; merging again adds nothing."""
    import json

    from saegold.store.superseded import supersede_bench, supersede_taxonomy

    a, b = pair
    with open_project(b) as pb, pb.write() as db:
        f7 = _fid(pb, "shared-new/3-res", 7)
        lid = db.execute("SELECT id FROM labels WHERE feature_id = ? AND text = ?", [f7, "bob's label"]).fetchone()[0]
        assert supersede_taxonomy(db, f7) and supersede_bench(db, lid, "detection", "true")
        assert not supersede_bench(db, lid, "fuzzing", "true")          # nothing to supersede
    with open_project(a) as p:
        merge(p, b)
        f7 = _fid(p, "shared-new/3-res", 7)
        ours = p.scalar("SELECT id FROM labels WHERE feature_id = ? AND text = ?", [f7, "bob's label"])
        kept = {r["tbl"]: r for r in p.query("SELECT * FROM superseded_results")}
        assert set(kept) == {"taxonomy_scores", "bench_scores"}
        tax, bench = json.loads(kept["taxonomy_scores"]["row"]), json.loads(kept["bench_scores"]["row"])
        assert kept["taxonomy_scores"]["feature_id"] == tax["feature_id"] == f7 and tax["input_score"] == 0.9
        assert kept["bench_scores"]["label_id"] == bench["label_id"] == ours and bench["value"] == 0.75
        assert kept["bench_scores"]["feature_id"] == f7
        merge(p, b)
        assert p.scalar("SELECT count(*) FROM superseded_results") == 2


def test_active_queue_draws_come_along_with_our_ids_and_only_once(pair):
    """A copy that handed features out by the active queue (issue 16) keeps its draws through a
    merge: the judgments they led to keep the probabilities the estimates reweight by.  The
    feature is ours (matched by source and index, whatever the row ids); merging again adds
    nothing, and our own draws stay."""
    from saegold.store import queue as sq

    a, b = pair
    with open_project(b) as pb:
        settings.set(pb, "queue_order", "active")
        judgments.ensure_annotator(pb, "carol")
        assert sq.assign_more(pb, "carol", n=6) == 6
        theirs = sorted((pb.scalar("SELECT s.name || '/' || f.idx FROM features f JOIN sources s ON s.id = f.source_id "
                             "WHERE f.id = ?", [d["feature_id"]]), d["annotator"], d["probability"], d["assigned"])
                        for d in pb.query("SELECT * FROM active_draws"))
    assert any(d[3] for d in theirs)  # some handed out by a draw (held ones come first, without one)
    with open_project(a) as p:
        settings.set(p, "queue_order", "active")
        judgments.ensure_annotator(p, "dave")
        sq.assign_more(p, "dave", n=2)
        n_ours = p.scalar("SELECT count(*) FROM active_draws")
        report = merge(p, b)
        assert report.added["active_draws"] == len(theirs)
        got = sorted((p.scalar("SELECT s.name || '/' || f.idx FROM features f JOIN sources s ON s.id = f.source_id "
                         "WHERE f.id = ?", [d["feature_id"]]), d["annotator"], d["probability"], d["assigned"])
                     for d in p.query("SELECT * FROM active_draws WHERE annotator = 'carol'"))
        assert got == theirs
        assert p.scalar("SELECT count(*) FROM active_draws WHERE annotator = 'dave'") == n_ours
        merge(p, b)
        assert p.scalar("SELECT count(*) FROM active_draws") == n_ours + len(theirs)
