"""Assignments: overlap, stratified order, lazy batches, concurrency; the lead's review queue.
Leases (the app's few features ahead, release, expiry) are in test_leases.py."""
from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from appdata import NOT_HOLDING, fill

from saegold.store import judgments as sj
from saegold.store import queue as sq
from saegold.store import settings
from saegold.store.db import open_project
from saegold.store.examples import put_examples


def test_each_feature_goes_to_overlap_annotators(project):
    fill(project, 12)
    for who in ("a", "b", "c", "d"):
        sj.ensure_annotator(project, who)
        sq.assign_more(project, who, n=100)
    counts = Counter(r["feature_id"] for r in project.query("SELECT feature_id FROM assignments"))
    assert set(counts.values()) == {2} and len(counts) == 12
    settings.set(project, "overlap", 3)
    sj.ensure_annotator(project, "e")
    assert sq.assign_more(project, "e") == 12  # every feature now has room for a third person


def test_order_is_stratified_round_robin_and_seeded_per_annotator(project):
    fill(project, 12)
    for who in ("alice", "bob"):
        sj.ensure_annotator(project, who)
    sq.assign_more(project, "alice", n=8)
    cats = {r["feature_id"]: r["category"] for r in project.query("SELECT feature_id, category FROM taxonomy_scores")}
    order = sq.queue(project, "alice")
    assert [cats[f] for f in order[:4]] == ["input", "output", "cross", "obscure"]
    assert [cats[f] for f in order[4:8]] == ["input", "output", "cross", "obscure"]
    # bob first gets the features alice already has (so pairs complete), in his own order
    sq.assign_more(project, "bob", n=8)
    bob = sq.queue(project, "bob")
    assert set(bob) == set(order)
    assert [cats[f] for f in bob[:4]] == ["input", "output", "cross", "obscure"]
    # The order is a function of the annotator name only.
    other = open_project(project.path.parent / "other.db", create=True)
    fill(other, 12)
    sj.ensure_annotator(other, "alice")
    sq.assign_more(other, "alice", n=8)
    assert sq.queue(other, "alice") == order
    other.close()


def test_unscored_features_get_their_own_stratum(project):
    fill(project, 8)
    project.db.execute("DELETE FROM taxonomy_scores WHERE feature_id IN (SELECT id FROM features WHERE idx IN (0, 1))")
    project.db.conn.commit()
    sj.ensure_annotator(project, "a")
    sq.assign_more(project, "a", n=5)
    order = sq.queue(project, "a")
    unscored = {r["id"] for r in project.query("SELECT id FROM features WHERE idx IN (0, 1)")}
    assert len(unscored & set(order[:5])) == 1  # one per round, fifth in the round


ASSIGN = """
import sys
from saegold.store import judgments as sj, queue as sq
from saegold.store.db import open_project
p = open_project(sys.argv[1])
sj.ensure_annotator(p, sys.argv[2])
print(sq.assign_more(p, sys.argv[2], n=50))
"""


def test_concurrent_processes_never_over_assign(project):
    fill(project, 30)
    path = str(project.path)
    project.close()
    procs = [subprocess.Popen([sys.executable, "-c", ASSIGN, path, f"ann{i}"], stdout=subprocess.PIPE,
                              text=True, cwd=Path(__file__).parents[2]) for i in range(6)]
    got = [int(p.communicate(timeout=120)[0]) for p in procs]
    p = open_project(path)
    counts = Counter(r["feature_id"] for r in p.query("SELECT feature_id FROM assignments"))
    assert max(counts.values()) <= 2 and sum(got) == 60 and len(counts) == 30
    positions = p.query("SELECT annotator, COUNT(DISTINCT position) n, COUNT(*) m FROM assignments GROUP BY annotator")
    assert all(r["n"] == r["m"] for r in positions)
    p.close()


def _judge(project, who, fid, tier, verdicts):
    evs = [sj.make_event(who, fid, "tier", value=tier, confidence=2)]
    evs += [sj.make_event(who, fid, "verdict", value=v, label_uuid=u) for u, v in verdicts.items()]
    sj.append_many(project, evs)
    return evs


def test_disagreements_and_states(project):
    ids = fill(project, 8)
    labels = {f: [r["uuid"] for r in project.query("SELECT uuid FROM labels WHERE feature_id = ?", [f])] for f in ids}
    agree, tier_diff, verdict_diff, retracted = ids[0], ids[1], ids[2], ids[5]
    for who in ("a", "b"):
        sj.ensure_annotator(project, who)
    _judge(project, "a", agree, "input", {u: "correct" for u in labels[agree]})
    _judge(project, "b", agree, "input", {u: "correct" for u in labels[agree]})
    _judge(project, "a", tier_diff, "input", {})
    _judge(project, "b", tier_diff, "output", {})
    _judge(project, "a", verdict_diff, "cross", {labels[verdict_diff][0]: "correct"})
    _judge(project, "b", verdict_diff, "cross", {labels[verdict_diff][0]: "wrong"})
    _judge(project, "a", retracted, "input", {})
    ev = _judge(project, "b", retracted, "output", {})[0]
    sj.append(project, sj.make_event("b", retracted, "retract", target_uuid=ev["uuid"]))
    assert sq.disagreements(project) == [tier_diff, verdict_diff]
    st = sq.states(project, "a", [agree, tier_diff])
    assert st[agree].done and not st[tier_diff].done  # tier_diff has unjudged candidates


def _disputed(project) -> tuple[int, list[str]]:
    """Eight features; a and b disagree on the second one's tier and its first label."""
    ids = fill(project, 8)
    fid = ids[1]
    labels = [r["uuid"] for r in project.query("SELECT uuid FROM labels WHERE feature_id = ?", [fid])]
    for who in ("a", "b"):
        sj.ensure_annotator(project, who)
    _judge(project, "a", fid, "input", {labels[0]: "correct"})
    _judge(project, "b", fid, "output", {labels[0]: "wrong"})
    return fid, labels


def test_lead_adjudicates_with_separate_event_kinds(project):
    from apphelp import drive, make_app
    fid, labels = _disputed(project)
    app = make_app(project, "boss", lead=True)
    assert app.session.order == [fid] and not app.session.blind
    from apphelp import screen_text
    text = drive(app, ["o", "3"] + ["y"] * len(labels) + ["e", "type:nouns", "enter", "t", "type:settled", "enter"],
                 after=screen_text)
    kinds = [e["kind"] for e in sj.events(project, annotator="boss")]
    assert kinds == ["adj_tier", "adj_tier"] + ["adj_verdict"] * len(labels) + ["adj_gold_label", "note"]
    assert sj.role_of(project, "boss") == "lead"
    assert "[review]" in text and "Annotators' judgments" in text and "DONE" in text
    # a non-lead cannot write adjudications
    import pytest

    from saegold.store.errors import StoreError
    with pytest.raises(StoreError):
        sj.append(project, sj.make_event("a", fid, "adj_tier", value="input"))


def test_lead_review_queue_takes_in_new_disagreements(project):
    from apphelp import make_app
    ids = fill(project, 8)
    for who in ("a", "b"):
        sj.ensure_annotator(project, who)
    _judge(project, "a", ids[0], "input", {})
    _judge(project, "b", ids[0], "output", {})
    app = make_app(project, "boss", lead=True)
    assert app.session.order == [ids[0]]
    _judge(project, "a", ids[4], "input", {})
    _judge(project, "b", ids[4], "cross", {})
    app.session.next()  # at the end of the review queue: look again
    assert app.session.order == [ids[0], ids[4]] and app.session.view.feature_id == ids[4]


def test_judgments_made_without_an_assignment_count_towards_overlap(project):
    """Judgments imported (``saegold import judgments``) or merged arrive without assignments:
    the queue still counts their authors, so a feature already judged by ``overlap`` people
    goes to nobody else, and one judged once comes first to complete the pair."""
    fill(project, 12)
    fids = [r["id"] for r in project.query("SELECT id FROM features ORDER BY id")]
    full, half = fids[:3], fids[3:6]
    for who, feats in (("x", full + half), ("y", full)):
        for fid in feats:
            sj.append(project, sj.make_event(who, fid, "tier", value="input", confidence=2))
    sj.append(project, sj.make_event("y", half[0], "note", value="a note is no judgment of tier, but y saw it"))
    sj.ensure_annotator(project, "z")
    sq.assign_more(project, "z", n=100)
    z = sq.queue(project, "z")
    assert not set(full) & set(z) and half[0] not in z
    assert set(z) == set(fids) - set(full) - {half[0]}
    cats = {r["feature_id"]: r["category"] for r in project.query("SELECT feature_id, category FROM taxonomy_scores")}
    for c in set(cats.values()):
        started = [f in half for f in z if cats[f] == c]
        assert started == sorted(started, reverse=True)
    # x gets the features x judged (shown as done in the app), y's full ones included
    sq.assign_more(project, "x", n=100)
    assert set(full + half) <= set(sq.queue(project, "x"))


def test_lead_review_tells_a_flag_from_a_note(project):
    """In the review, an annotator's flag (the feature is broken) is labelled a flag."""
    from apphelp import drive, make_app, screen_text
    fid, _ = _disputed(project)
    sj.append(project, sj.make_event("a", fid, "flag", value="tokenizer junk"))
    sj.append(project, sj.make_event("b", fid, "note", value="looks French"))
    text = drive(make_app(project, "boss", lead=True), [], after=screen_text, size=(120, 40))
    assert "flag: tokenizer junk" in text and "note: looks French" in text


# The rule as one SQL statement: what assign_more chose, inside its write transaction, before
# choosing moved to indexed steps outside it.  Every batch must still be exactly this.
_REFERENCE = f"""
WITH cand AS (
    SELECT f.id AS fid, COALESCE(t.category, 'unscored') AS cat,
           (SELECT COUNT(*) FROM (
                SELECT a.annotator FROM assignments a WHERE a.feature_id = f.id
                UNION
                SELECT j.annotator FROM judgments j
                WHERE j.feature_id = f.id AND j.annotator != :who AND j.kind NOT IN {NOT_HOLDING}
           )) AS taken,
           ((((f.id * 2654435761) % 4294967296) | :seed) - (((f.id * 2654435761) % 4294967296) & :seed))
             * 2246822519 % 4294967296 AS k
    FROM features f LEFT JOIN taxonomy_scores t ON t.feature_id = f.id
    WHERE NOT EXISTS (SELECT 1 FROM assignments a WHERE a.feature_id = f.id AND a.annotator = :who)
      AND EXISTS (SELECT 1 FROM examples e WHERE e.feature_id = f.id AND e.kind = 'top')
), ranked AS (
    SELECT fid, cat, ROW_NUMBER() OVER (PARTITION BY cat ORDER BY (taken > 0) DESC, k, fid) AS rn
    FROM cand WHERE taken < :overlap
)
SELECT fid FROM ranked ORDER BY rn,
    CASE cat WHEN 'input' THEN 0 WHEN 'output' THEN 1 WHEN 'cross' THEN 2 WHEN 'obscure' THEN 3
    ELSE 4 END
LIMIT :n
"""


def _reference_batch(project, who: str, n: int) -> list[int]:
    params = {"seed": sq.annotator_seed(who), "who": who, "n": n,
              "overlap": int(settings.get(project, "overlap"))}
    return [r[0] for r in project.db.execute(_REFERENCE, params).fetchall()]


def _assign_checked(project, who: str, n: int) -> None:
    """assign_more appends exactly the reference batch to ``who``'s queue."""
    before = sq.queue(project, who)
    expected = _reference_batch(project, who, n)
    assert sq.assign_more(project, who, n=n) == len(expected)
    assert sq.queue(project, who) == before + expected


KINDS = ("tier", "verdict", "preference", "gold_label", "skip", "flag", "note",
         "retract", "adj_tier", "adj_verdict", "adj_gold_label")


def _random_project(project, rng, n_features: int,
                    cats=("input", "output", "cross", "obscure", "input", "output", None, "none")) -> None:
    """Features in every category, unscored ones (no score, or a score without a category),
    features without top examples, assignments by others and judgments without assignments
    (imported or merged) of every kind."""
    stamp = "2026-01-01T00:00:00Z"
    people = [f"p{i}" for i in range(6)]
    with project.write() as db:
        c = db.conn
        c.execute("INSERT INTO sources(id, name, model_id, sae_id, created_at) VALUES (1, 'm/s', 'm', 's', ?)", [stamp])
        for i in range(n_features):
            fid = i + 1
            c.execute("INSERT INTO features(id, source_id, idx) VALUES (?, 1, ?)", [fid, i])
            kinds = rng.choices([("top",), ("negative",), (), ("top", "negative")], weights=[8, 1, 1, 2])[0]
            for kind in kinds:
                put_examples(c, fid, kind, [{"tokens": ["a"], "acts": [1.0]}], "test")
            cat = rng.choice(cats)
            if cat != "none":  # "none": no taxonomy row at all
                c.execute("INSERT INTO taxonomy_scores(feature_id, category, input_threshold, output_threshold, "
                          "scorer_version, created_at) VALUES (?, ?, 0.5, 0.01, 't', ?)", [fid, cat, stamp])
        for who in people:
            c.execute("INSERT INTO annotators(name, created_at) VALUES (?, ?)", [who, stamp])
            held = rng.sample(range(1, n_features + 1), rng.randrange(n_features // 3))
            for pos, fid in enumerate(held):
                c.execute("INSERT INTO assignments(feature_id, annotator, position, created_at) VALUES (?, ?, ?, ?)",
                          [fid, who, pos, stamp])
        for k in range(n_features):
            who = rng.choice(people + ["imported1", "imported2", "newcomer"])
            c.execute("INSERT INTO judgments(uuid, annotator, feature_id, kind, value, created_at) "
                      "VALUES (?, ?, ?, ?, 'x', ?)", [f"r{k}", who, rng.randrange(1, n_features + 1),
                                                      rng.choice(KINDS), stamp])


def test_batches_follow_the_rule_exactly(tmp_path):
    """Overlap (assignments, and judgments without one), features others hold first, the
    seeded stratified order, top examples only: on random projects every batch equals the
    single-statement rule, for batch sizes and overlaps of every kind, until none is left."""
    for seed in range(5):
        rng = random.Random(seed)
        project = open_project(tmp_path / f"r{seed}.db", create=True)
        _random_project(project, rng, n_features=rng.choice([40, 90, 160]))
        for cat in sq.QUEUE_CATEGORIES:  # how far a category's order can be looked through
            assert sq._category_size(project.db.conn, cat) == project.scalar(
                "SELECT COUNT(*) FROM features f LEFT JOIN taxonomy_scores t ON t.feature_id = f.id "
                "WHERE COALESCE(t.category, 'unscored') = ?", [cat])
        names = ["p0", "p3", "imported1", "newcomer", "fresh"]
        for round_ in range(14):
            if round_ % 5 == 4:
                settings.set(project, "overlap", rng.choice([1, 2, 3]))
            _assign_checked(project, rng.choice(names), rng.choice([1, 3, 7, 25, 100]))
        for who in names:  # run every queue dry
            while True:
                had = len(sq.queue(project, who))
                _assign_checked(project, who, 30)
                if len(sq.queue(project, who)) == had:
                    break
        project.close()


def test_a_batch_looks_past_the_features_others_hold(tmp_path):
    """With most features held, the free ones lie far down an annotator's order (scored or
    unscored: without a score, or with a score but no category)."""
    for seed, cats in ((7, None), (8, (None, "none", None, "obscure"))):
        project = open_project(tmp_path / f"p{seed}.db", create=True)
        _random_project(project, random.Random(seed), 400, *([cats] if cats else []))
        settings.set(project, "overlap", 1)
        _assign_checked(project, "fresh", 40)
        for who, n in (("newcomer", 1), ("newcomer", 3), ("solo", 2), ("solo", 20)):
            _assign_checked(project, who, n)
        assert len(sq.queue(project, "solo")) == 22
        project.close()


@pytest.mark.parametrize("every_try", [False, True])
def test_features_handed_out_while_a_batch_is_chosen_are_respected(project, monkeypatch, every_try):
    """A batch is chosen on a snapshot, outside the write lock.  When another annotator is
    handed features before it is written, it is chosen again (after the last try, under the
    lock): no feature goes to more than ``overlap`` annotators, and the batch is what the
    rule gives at the moment it is written."""
    fill(project, 12)
    sj.ensure_annotator(project, "carol")
    sq.assign_more(project, "carol", n=12)  # every feature has one annotator of two
    real = sq._pick_snapshot
    expected: list[list[int]] = []

    def meanwhile(p, who, n):
        got = real(p, who, n)
        if who == "alice" and (every_try or not expected):
            other = open_project(project.path)  # another process
            sj.ensure_annotator(other, "bob")
            sq.assign_more(other, "bob", n=5)   # five more features are now full
            expected.append(_reference_batch(other, "alice", 100))
            other.close()
        return got

    monkeypatch.setattr(sq, "_pick_snapshot", meanwhile)
    sj.ensure_annotator(project, "alice")
    got = sq.assign_more(project, "alice")
    assert sq.queue(project, "alice") == expected[-1]
    assert got == (12 - 5 * sq._TRIES if every_try else 7)
    counts = Counter(r["feature_id"] for r in project.query("SELECT feature_id FROM assignments"))
    assert max(counts.values()) == 2 and len(counts) == 12


def _count_picks(monkeypatch, after_first=None):
    """Count batch choices; run ``after_first(chosen)`` once, after the first choice (as if
    another process committed while the batch was being chosen)."""
    real, picks = sq._pick, []

    def counted(p, who, n):
        got = real(p, who, n)
        picks.append(got)
        if after_first and len(picks) == 1:
            after_first(got)
        return got

    monkeypatch.setattr(sq, "_pick", counted)
    return picks


def test_a_full_batch_still_free_is_kept_when_others_wrote_meanwhile(project, monkeypatch):
    """A commit that leaves every chosen feature free for the annotator (their own judgment,
    another annotator's elsewhere) does not make the batch be chosen again."""
    fill(project, 12)
    sj.ensure_annotator(project, "alice")

    def others_write(chosen):
        other = open_project(project.path)
        sj.append(other, sj.make_event("alice", chosen[0], "note", value="mine: holds no one up"))
        other.close()

    picks = _count_picks(monkeypatch, others_write)
    assert sq.assign_more(project, "alice", n=6) == 6
    assert len(picks) == 1 and sq.queue(project, "alice") == picks[0]


def test_a_chosen_feature_taken_meanwhile_makes_the_batch_be_chosen_again(project, monkeypatch):
    """Another annotator handed some of the chosen features while the batch was being chosen
    fills them up: the batch is chosen again, and none of them goes to a third annotator."""
    fill(project, 12)
    for who in ("carol", "bob", "alice"):
        sj.ensure_annotator(project, who)
    sq.assign_more(project, "carol", n=12)  # every feature has one annotator of two
    expected = []

    def bob_takes_three(chosen):
        other = open_project(project.path)
        with other.write() as db:
            db.conn.executemany("INSERT INTO assignments(feature_id, annotator, position, created_at) "
                                "VALUES (?, 'bob', ?, 'now')", [(f, i) for i, f in enumerate(chosen[:3])])
        expected.append(_reference_batch(other, "alice", 6))
        other.close()

    picks = _count_picks(monkeypatch, bob_takes_three)
    assert sq.assign_more(project, "alice", n=6) == 6
    assert len(picks) == 2 and sq.queue(project, "alice") == expected[0]
    assert not set(picks[0][:3]) & set(sq.queue(project, "alice"))
    counts = Counter(r["feature_id"] for r in project.query("SELECT feature_id FROM assignments"))
    assert max(counts.values()) == 2


def test_choosing_a_batch_holds_up_no_writer(project, monkeypatch):
    """While a batch is being chosen, another connection (the annotator's own keypress in the
    app, another annotator) writes at once: choosing takes no write lock."""
    fill(project, 12)
    real = sq._pick
    expected: list[list[int]] = []

    def pick_while_another_writes(p, who, n):
        got = real(p, who, n)
        if not expected:
            conn = sqlite3.connect(project.path, timeout=0)  # fails at once if the lock is held
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO judgments(uuid, annotator, feature_id, kind, value, created_at) "
                         "VALUES ('meanwhile', 'carol', ?, 'note', 'x', '2026-01-01T00:00:00Z')", [got[0]])
            conn.commit()
            conn.close()
            other = open_project(project.path)
            expected.append(_reference_batch(other, who, n))
            other.close()
        return got

    monkeypatch.setattr(sq, "_pick", pick_while_another_writes)
    sj.ensure_annotator(project, "alice")
    assert sq.assign_more(project, "alice", n=6) == 6
    assert project.scalar("SELECT COUNT(*) FROM judgments WHERE uuid = 'meanwhile'") == 1
    # carol's note made her one of that feature's annotators; the batch is still the rule's
    assert sq.queue(project, "alice") == expected[0]


def test_avoided_features_are_passed_over_as_if_full(tmp_path):
    """assign_more(avoid=...) (features the app has behind the annotator) hands out what the
    rule gives when those features are full: the same batch as on a copy of the project where
    others hold them."""
    for seed in range(3):
        rng = random.Random(seed)
        a = open_project(tmp_path / f"a{seed}.db", create=True)
        b = open_project(tmp_path / f"b{seed}.db", create=True)
        for p in (a, b):
            _random_project(p, random.Random(seed), 90)
        avoid = set(_reference_batch(a, "fresh", 12)[rng.randrange(3)::2])
        with b.write() as db:   # on b, overlap-many others hold the avoided features
            for k in range(int(settings.get(b, "overlap"))):
                db.execute("INSERT OR IGNORE INTO annotators(name, created_at) VALUES (?, 'now')", [f"full{k}"])
                db.conn.executemany("INSERT OR IGNORE INTO assignments(feature_id, annotator, position, created_at) "
                                    "VALUES (?, ?, ?, 'now')", [(f, f"full{k}", i) for i, f in enumerate(avoid)])
        n = rng.choice([3, 7, 20])
        got = sq.assign_more(a, "fresh", n=n, avoid=avoid)
        assert got == sq.assign_more(b, "fresh", n=n) and sq.queue(a, "fresh") == sq.queue(b, "fresh")
        assert not avoid & set(sq.queue(a, "fresh"))
        a.close()
        b.close()


def test_choosing_a_batch_uses_the_queue_indexes(project):
    """Each category's features come in the annotator's order from the index on the category,
    and who holds a feature through a judgment from the narrow judgments_holders (schema
    m003), not from scans of every feature and every event."""
    params = {"seed": 1, "who": "a", "cat": "input", "m": 10, "need": 5, "overlap": 2, "n": 5}

    def plan(sql):
        return " ".join(r["detail"] for r in project.query("EXPLAIN QUERY PLAN " + sql, params))

    assert "USING COVERING INDEX taxonomy_category" in plan(sq._FRESH_SCORED)
    assert "USING COVERING INDEX judgments_holders" in plan(sq._FRESH_SCORED)
    assert "SCAN judgments USING COVERING INDEX judgments_holders" in plan(sq._STARTED)
