"""Assignments: overlap, stratified order, lazy batches, concurrency; the lead's review queue."""
from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

from appdata import fill

from store import judgments as sj
from store import queue as sq
from store import settings
from store.db import open_project


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
from store import judgments as sj, queue as sq
from store.db import open_project
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


def test_lead_adjudicates_with_separate_event_kinds(project):
    from apphelp import drive, make_app
    ids = fill(project, 8)
    fid = ids[1]
    labels = [r["uuid"] for r in project.query("SELECT uuid FROM labels WHERE feature_id = ?", [fid])]
    for who in ("a", "b"):
        sj.ensure_annotator(project, who)
    _judge(project, "a", fid, "input", {labels[0]: "correct"})
    _judge(project, "b", fid, "output", {labels[0]: "wrong"})
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

    from store.errors import StoreError
    with pytest.raises(StoreError):
        sj.append(project, sj.make_event("a", fid, "adj_tier", value="input"))


def test_app_assigns_the_next_batch_in_the_background(project, monkeypatch):
    from apphelp import drive, make_app
    fill(project, 12)
    monkeypatch.setattr(sq, "BATCH", 4)  # small batches for the test
    app = make_app(project, "alice")
    assert app.session.assigned_count == 4
    # Two skips leave fewer than REFILL_AHEAD to do: a thread worker tops the queue up.
    got = drive(app, ["s", "n", "s"], after=lambda a: a.session.assigned_count)
    assert got > 4
    assert project.scalar("SELECT COUNT(*) FROM assignments WHERE annotator = 'alice'") == got


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
    ids = fill(project, 8)
    fid = ids[1]
    labels = [r["uuid"] for r in project.query("SELECT uuid FROM labels WHERE feature_id = ?", [fid])]
    for who in ("a", "b"):
        sj.ensure_annotator(project, who)
    _judge(project, "a", fid, "input", {labels[0]: "correct"})
    _judge(project, "b", fid, "output", {labels[0]: "wrong"})
    sj.append(project, sj.make_event("a", fid, "flag", value="tokenizer junk"))
    sj.append(project, sj.make_event("b", fid, "note", value="looks French"))
    text = drive(make_app(project, "boss", lead=True), [], after=screen_text, size=(120, 40))
    assert "flag: tokenizer junk" in text and "note: looks French" in text
