"""The judgment log's semantics have one owner, store/judgments.py: the kinds it names are
the ones the database accepts, its holder rule is the partial index's, and the folds
(each annotator's view, a lead's screen, every lead's latest decision), the last live event
and the identity rule all come from there."""
from __future__ import annotations

import re
import sqlite3

import pytest

from saegold.store import judgments as sj
from saegold.store import queue as sq
from saegold.store.errors import StoreError
from saegold.tui.commands.imports import JUDGMENTS_HELP


def _feature(project, idx: int = 0) -> int:
    from saegold.store.features import get_or_create_source, upsert_feature
    with project.write() as db:
        sid = get_or_create_source(db, "m", "s")
        return upsert_feature(db, sid, idx)


def _at(n: int) -> str:
    return f"2026-01-01T00:00:{n:02d}.000000Z"


def test_kinds_are_the_ones_the_database_accepts(project):
    fid = _feature(project)
    for n, kind in enumerate(sj.KINDS):
        with project.write() as db:
            db.execute("INSERT INTO judgments(uuid, annotator, feature_id, kind, created_at) "
                       "VALUES (?, 'a', ?, ?, 'z')", [f"u{n}", fid, kind])
    with pytest.raises(sqlite3.IntegrityError), project.write() as db:
        db.execute("INSERT INTO judgments(uuid, annotator, feature_id, kind, created_at) "
                   "VALUES ('x', 'a', ?, 'adj_note', 'z')", [fid])
    assert sj.LEAD_KINDS == tuple("adj_" + k for k in sj.ADJUDICABLE)
    assert [sj.base_kind(k) for k in sj.LEAD_KINDS] == list(sj.ADJUDICABLE)
    assert [sj.as_lead(k) for k in sj.OWN_KINDS] == [
        "adj_tier", "adj_verdict", "preference", "adj_gold_label", "skip", "flag", "note"]


def test_holder_rule_is_the_partial_index_definition(project):
    """The queue's ``kind NOT IN ...`` must be the index's own words, or SQLite cannot use
    judgments_holders (tests/app/test_queue.py checks the plans)."""
    index_sql = project.scalar("SELECT sql FROM sqlite_master WHERE name = 'judgments_holders'")
    assert f"kind NOT IN {sj.NOT_HOLDING_SQL}" in " ".join(index_sql.split())
    assert sq._NOT_HOLDING == sj.NOT_HOLDING_SQL


def test_import_help_lists_every_kind():
    listed = re.search(r"kind is one of (.*?)\. ", " ".join(JUDGMENTS_HELP.split())).group(1)
    assert tuple(listed.split(", ")) == sj.KINDS


def test_keys_are_typed_and_a_lead_is_kept_apart_from_their_adjudication(project):
    fid = _feature(project)
    sj.ensure_annotator(project, "lena", "lead")
    sj.append_many(project, [
        sj.make_event("lena", fid, "tier", value="input", confidence=1, created_at=_at(1)),
        sj.make_event("lena", fid, "adj_tier", value="output", confidence=3, created_at=_at(2)),
        sj.make_event("lena", fid, "note", value="hm", created_at=_at(3), seconds_spent=7.0),
    ])
    view = sj.current(project)
    assert set(view) == {sj.Key(fid, "lena"), sj.Key(fid, "lena", is_adjudication=True)}
    assert view[sj.Key(fid, "lena")].tier == "input"
    assert view[sj.Key(fid, "lena", True)].tier == "output"
    # What a lead works on: the adjudication, with their own note and time; their own
    # (non-adjudicating) tier decides nothing there.
    lead = sj.own_view(sj.events(project), "lena", lead=True)[fid]
    assert (lead.is_adjudication, lead.tier, lead.confidence, lead.notes, lead.seconds_spent) == (
        True, "output", 3, ["hm"], 7.0)
    own = sj.own_view(sj.events(project), "lena")[fid]
    assert (own.is_adjudication, own.tier, own.notes) == (False, "input", ["hm"])


def test_decisions_fold_every_lead_latest_first_and_honour_retractions(project):
    fid = _feature(project)
    for lead in ("amy", "zed"):
        sj.ensure_annotator(project, lead, "lead")
    late = sj.make_event("amy", fid, "adj_tier", value="cross", created_at=_at(3))
    sj.append_many(project, [
        sj.make_event("zed", fid, "adj_tier", value="input", created_at=_at(1)),
        sj.make_event("amy", fid, "adj_tier", value="output", created_at=_at(2)),
        late,
        sj.make_event("zed", fid, "adj_gold_label", value="zed's", created_at=_at(4)),
        sj.make_event("zed", fid, "tier", value="obscure", created_at=_at(5)),  # own: no decision
    ])
    decided = sj.decisions(sj.events(project))[fid]
    assert (decided.annotator, decided.tier, decided.gold_label) == (sj.LEADS, "cross", "zed's")
    sj.append(project, sj.make_event("amy", fid, "retract", target_uuid=late["uuid"], created_at=_at(6)))
    assert sj.decisions(sj.events(project))[fid].tier == "output"


def test_last_live_event_skips_what_was_taken_back(project):
    fid = _feature(project)
    first = sj.make_event("al", fid, "tier", value="input", created_at=_at(1))
    second = sj.make_event("al", fid, "note", value="x", created_at=_at(2))
    sj.append_many(project, [first, second, sj.make_event("bo", fid, "note", value="y", created_at=_at(3))])
    assert sj.last_live(project, fid, "al")["uuid"] == second["uuid"]
    sj.append(project, sj.make_event("al", fid, "retract", target_uuid=second["uuid"], created_at=_at(4)))
    assert sj.last_live(project, fid, "al")["uuid"] == first["uuid"]
    sj.append(project, sj.make_event("al", fid, "retract", target_uuid=first["uuid"], created_at=_at(5)))
    assert sj.last_live(project, fid, "al") is None


def test_identity_rule_names_the_field(project):
    fid = _feature(project)
    ev = sj.make_event("al", fid, "tier", value="input")
    sj.append(project, ev)
    cases = [
        (sj.make_event("bo", fid, "adj_tier", value="input"), "annotator", "not a lead"),
        (sj.make_event("bo", fid, "retract", target_uuid=ev["uuid"]), "annotator", "cannot retract"),
        (sj.make_event("bo", fid, "retract", target_uuid="nope"), "target_uuid", "unknown event"),
    ]
    for event, field, words in cases:
        with pytest.raises(sj.IdentityError, match=words) as err:
            sj.check_identity(project.db, event)
        assert err.value.field == field and isinstance(err.value, StoreError)
    sj.check_identity(project.db, sj.make_event("al", fid, "retract", target_uuid=ev["uuid"]))
