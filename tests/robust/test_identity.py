"""An annotator's events can be retracted only by their author or by a lead; only a lead
adjudicates.  Enforced on the app's write path, on import and on merge."""
from __future__ import annotations

import json

import pytest
from robust_harness import table_dump

from saegold.store import judgments
from saegold.store.db import open_project
from saegold.store.errors import BadInput, StoreError
from saegold.store.importers.judgments import import_judgments


@pytest.fixture
def team(seeded):
    with open_project(seeded) as p:
        judgments.ensure_annotator(p, "alice")
        judgments.ensure_annotator(p, "bob")
        judgments.ensure_annotator(p, "lena", "lead")
        fid = p.scalar("SELECT id FROM features ORDER BY id LIMIT 1")
        ev = judgments.make_event("alice", fid, "tier", value="input", confidence=3)
        judgments.append(p, ev)
    return seeded, fid, ev["uuid"]


def test_write_path_enforces_authorship(team):
    db, fid, alice_ev = team
    with open_project(db) as p:
        with pytest.raises(StoreError, match="'bob' cannot retract an event of 'alice'"):
            judgments.append(p, judgments.make_event("bob", fid, "retract", target_uuid=alice_ev))
        with pytest.raises(StoreError, match="not a lead"):
            judgments.append(p, judgments.make_event("bob", fid, "adj_tier", value="output"))
        with pytest.raises(StoreError, match="unknown event"):
            judgments.append(p, judgments.make_event("bob", fid, "retract", target_uuid="no-such"))
        # A lead adjudicates, and a lead's adjudication cannot be retracted by an annotator.
        adj = judgments.make_event("lena", fid, "adj_tier", value="output")
        assert judgments.append(p, adj)
        with pytest.raises(StoreError, match="cannot retract"):
            judgments.append(p, judgments.make_event("alice", fid, "retract", target_uuid=adj["uuid"]))
        # The author may retract; so may a lead.
        assert judgments.append(p, judgments.make_event("alice", fid, "retract", target_uuid=alice_ev))
        ev2 = judgments.make_event("bob", fid, "tier", value="cross", confidence=1)
        judgments.append(p, ev2)
        assert judgments.append(p, judgments.make_event("lena", fid, "retract", target_uuid=ev2["uuid"]))
        view = judgments.current(p)
        assert judgments.Key(fid, "alice") not in view  # every event of theirs retracted
        assert judgments.Key(fid, "bob") not in view
        assert view[judgments.Key(fid, "lena", is_adjudication=True)].tier == "output"
        assert p.scalar("SELECT count(*) FROM judgments") == 5


def _line(**kw) -> str:
    base = {"source": "tiny-model/0-res", "feature": 0, "created_at": "2026-11-02T00:00:00Z"}
    return json.dumps({**base, **kw})


def test_import_enforces_authorship(team, tmp_path):
    db, fid, alice_ev = team
    before = table_dump(db)
    bad = tmp_path / "bob-retracts-alice.jsonl"
    bad.write_text(_line(annotator="bob", kind="note", value="fine") + "\n"
                   + _line(annotator="bob", kind="retract", target_uuid=alice_ev) + "\n")
    with open_project(db) as p, pytest.raises(BadInput) as err:
        import_judgments(p, [bad])
    msg = str(err.value)
    assert "record line 2" in msg and "'bob' cannot retract an event of 'alice'" in msg and "\n" not in msg
    assert table_dump(db) == before  # the good first line did not land either
    adj = tmp_path / "adj.jsonl"
    adj.write_text(_line(annotator="bob", kind="adj_tier", value="input") + "\n")
    with open_project(db) as p, pytest.raises(BadInput, match="not a lead"):
        import_judgments(p, [adj])
    assert table_dump(db) == before
    ok = tmp_path / "lead.jsonl"
    ok.write_text(_line(annotator="lena", kind="retract", target_uuid=alice_ev) + "\n"
                  + _line(annotator="lena", kind="adj_tier", value="cross") + "\n")
    with open_project(db) as p:
        report = import_judgments(p, [ok])
        assert report.new == 2
        assert p.scalar("SELECT role FROM annotators WHERE name = 'lena'") == "lead"


def test_import_cannot_promote_anyone(team, tmp_path):
    """An imported file names annotators; it never makes one a lead."""
    db, fid, alice_ev = team
    f = tmp_path / "new.jsonl"
    f.write_text(_line(annotator="newcomer", kind="note", value="hi") + "\n")
    with open_project(db) as p:
        import_judgments(p, [f])
        assert p.scalar("SELECT role FROM annotators WHERE name = 'newcomer'") == "annotator"
