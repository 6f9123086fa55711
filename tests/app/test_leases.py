"""Assignments are leases, not hoards: the app holds a few features ahead of the annotator,
renews them while they work, releases them on quit and when idle; what an annotator judged
stays theirs; overlap still holds (store.queue, tui.app.session, `saegold queue`)."""
from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter

import pytest

from appdata import HOLDERS, fill

from saegold.store import judgments as sj
from saegold.store import queue as sq
from saegold.store import settings
from saegold.store.errors import StoreError
from saegold.tui.app.session import QueueFinished, Session
from saegold.tui.cli import main



def _clock() -> float:
    return 1000.0


def _session(project, who: str) -> Session:
    s = Session(project, who, login="tester", clock=_clock)
    s.start()
    return s


def _judge_and_move(s: Session) -> int:
    """A tier and a verdict on every candidate, then on to the next feature."""
    fid = s.view.feature_id
    s.set_tier("input")
    for _ in s.view.candidates:
        s.verdict("correct")
    assert s.state.done
    s.next()
    return fid


def _utc_in(minutes: float) -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=minutes)


def _max_holders(project) -> int:
    return max(r["n"] for r in project.query(HOLDERS))


def test_a_third_annotator_gets_work_while_two_others_are_mid_session(project):
    """The 48-feature demo, overlap 2: alice and bob judge five features each and keep their
    sessions open; erin still gets work (batches of 100 used to lock her out)."""
    fill(project, 48)
    alice, bob = _session(project, "alice"), _session(project, "bob")
    judged = {"alice": [], "bob": []}
    for _ in range(5):
        for s in (alice, bob):
            judged[s.annotator].append(_judge_and_move(s))
    for s in (alice, bob):   # five judged, and only a few ahead: the one on screen and the next
        assert set(judged[s.annotator]) <= set(sq.queue(project, s.annotator))
        assert len(sq.leases(project, s.annotator)) <= sq.LOOKAHEAD
    erin = _session(project, "erin")
    assert erin.view is not None and erin.view.feature_id in sq.queue(project, "erin")
    for _ in range(5):
        _judge_and_move(erin)
    assert _max_holders(project) <= 2


def test_the_app_keeps_only_a_few_features_ahead(project):
    """At the start, and once only REFILL_AT are left as features are judged, the app's
    background top-up holds LOOKAHEAD features not judged yet, no more; the worker's
    connection is closed."""
    from apphelp import drive, make_app

    from saegold.tui.app.session import REFILL_AT
    fill(project, 12)
    app = make_app(project, "alice")
    assert app.session.assigned_count == sq.LOOKAHEAD == len(sq.leases(project, "alice"))
    before = len(project._all)
    skips = sq.LOOKAHEAD - REFILL_AT
    got = drive(app, ["s"] * skips, after=lambda a: (a.session.assigned_count, len(sq.leases(project, "alice")),
                                                     len(project._all)))
    assert got[:2] == (skips + sq.LOOKAHEAD, sq.LOOKAHEAD)
    assert got[2] <= before + 1   # top-up workers closed theirs (the app's writer thread holds one)


def test_quitting_the_app_releases_the_features_not_judged(project):
    from apphelp import drive, make_app
    fill(project, 12)
    app = make_app(project, "alice")
    first = app.session.view.feature_id
    drive(app, ["i", "n", "q"])   # a tier on the first feature, on to the second, quit
    assert sq.queue(project, "alice") == [first]   # the judged one stays hers
    assert sq.leases(project) == []


def test_session_close_releases_and_a_new_session_takes_up_again(project):
    fill(project, 12)
    s = _session(project, "alice")
    held = [lease.feature_id for lease in sq.leases(project, "alice")]
    assert len(held) == sq.LOOKAHEAD and s.view.feature_id == held[0]
    s.close()
    assert sq.leases(project) == [] and sq.queue(project, "alice") == []
    again = _session(project, "alice")   # the same annotator's order picks them up again
    assert [lease.feature_id for lease in sq.leases(project, "alice")] == held
    assert again.view.feature_id == held[0]


def test_an_idle_lease_expires_and_returns_to_the_pool(project):
    """Overlap 1: alice holds LOOKAHEAD features, bob the last one, carol gets nothing; half
    an hour later (the default idle limit) the leases are released and carol gets work.
    A lease renewed meanwhile stays."""
    fill(project, sq.LOOKAHEAD + 1)
    settings.set(project, "overlap", 1)
    alice, bob = _session(project, "alice"), _session(project, "bob")
    assert len(sq.leases(project, "alice")) == sq.LOOKAHEAD and len(sq.leases(project, "bob")) == 1
    with pytest.raises(QueueFinished, match="held by 1 annotator"):
        _session(project, "carol")
    assert sq.release_expired(project, at=_utc_in(29)) == 0
    assert not any(lease.expired for lease in sq.leases(project, at=_utc_in(29)))
    # bob works (his app renews his lease at 20 minutes); alice went for lunch
    sq.top_up(project, "bob", keep=[bob.view.feature_id], at=_utc_in(20))
    assert {lease.annotator for lease in sq.leases(project, at=_utc_in(31)) if lease.expired} == {"alice"}
    assert sq.release_expired(project, at=_utc_in(31)) == sq.LOOKAHEAD
    assert sq.leases(project, "alice") == [] and len(sq.leases(project, "bob")) == 1
    carol = _session(project, "carol")
    assert carol.view.feature_id in {alice.view.feature_id, *alice.order}
    assert _max_holders(project) == 1


def test_a_tiny_idle_limit_expires_leases_at_the_next_top_up(project):
    """The setting drives expiry end to end: another annotator's session start (its top-up)
    releases leases idle past ``lease_idle_minutes``."""
    fill(project, 3)
    settings.set(project, "overlap", 1)
    settings.set(project, "lease_idle_minutes", 0.002)   # 0.12 s
    alice = _session(project, "alice")
    assert len(sq.leases(project, "alice")) == 3
    time.sleep(0.3)
    carol = _session(project, "carol")
    assert sq.leases(project, "alice") == [] and len(sq.leases(project, "carol")) == 3
    assert carol.view.feature_id == alice.view.feature_id   # the same seeded order
    # alice comes back and judges the feature she still sees: carol holds it, overlap 1
    with pytest.raises(sq.LeaseLost, match="went to other annotators"):
        alice.set_tier("input")
    assert sj.events(project, annotator="alice") == []
    assert _max_holders(project) == 1


def test_a_released_feature_still_free_is_taken_again_on_judging(project):
    fill(project, 6)
    s = _session(project, "alice")
    fid = s.view.feature_id
    assert sq.release(project, "alice") == sq.LOOKAHEAD
    s.set_tier("output")   # nobody took it meanwhile: hers again, by the judgment
    assert fid in sq.queue(project, "alice") and fid not in [x.feature_id for x in sq.leases(project)]
    assert [e["kind"] for e in sj.events(project, annotator="alice")] == ["tier"]


def test_what_an_annotator_judged_is_never_released(project):
    """Any event but a retraction or an adjudication holds a feature (as for overlap): a
    tier, a skip, a note, a tier taken back; also one imported while the lease ran."""
    ids = fill(project, 12)
    sq.assign_more(project, "alice", n=8)
    mine = sq.queue(project, "alice")
    tier, skip, note, undone, imported = mine[:5]
    for fid, kind, value in ((tier, "tier", "input"), (skip, "skip", None), (note, "note", "odd")):
        sj.append(project, sj.make_event("alice", fid, kind, value=value))
    ev = sj.make_event("alice", undone, "tier", value="cross")
    sj.append(project, ev)
    sj.append(project, sj.make_event("alice", undone, "retract", target_uuid=ev["uuid"]))
    sj.append(project, sj.make_event("alice", imported, "verdict", value="wrong",
                                     label_uuid=project.scalar("SELECT uuid FROM labels LIMIT 1")))
    judged = [tier, skip, note, undone, imported]
    assert {lease.feature_id for lease in sq.leases(project, "alice")} == set(mine) - set(judged)
    assert sq.release_expired(project, at=_utc_in(10_000)) == 3
    sq.assign_more(project, "alice", n=2)
    assert sq.release(project, "alice") == 2
    assert sq.top_up(project, "alice", keep=[], ahead=0, at=_utc_in(20_000)) == 0
    assert sq.queue(project, "alice") == judged
    assert project.scalar("SELECT COUNT(*) FROM assignments WHERE renewed_at IS NOT NULL") == 0
    assert len(ids) == 12


def test_passing_a_feature_over_releases_it_back_takes_it_again(project):
    """`n` on a feature not judged leaves it behind: the next top-up releases it (only a few
    ahead are held); `b` back to it and judging it takes it again."""
    fill(project, 12)
    s = _session(project, "alice")
    first = s.view.feature_id
    s.next()
    s.absorb_assignments(s.assign_batch())   # what the app's background worker does
    held = [lease.feature_id for lease in sq.leases(project, "alice")]
    assert first not in held and s.view.feature_id == held[0] and len(held) == sq.LOOKAHEAD
    s.previous()
    assert s.view.feature_id == first
    s.set_tier("cross")
    assert first in sq.queue(project, "alice")


def test_leases_are_renewed_while_the_annotator_works(project):
    """The session asks for a top-up (which renews its leases) once the renewal interval has
    passed, even with enough features ahead; without activity nothing renews them."""
    fill(project, 12)
    now = [1000.0]
    s = Session(project, "alice", login="tester", clock=lambda: now[0])
    s.start()
    assert not s.wants_refill
    now[0] += 61
    assert s.wants_refill
    old = {lease.feature_id: lease.renewed_at for lease in sq.leases(project, "alice")}
    time.sleep(0.01)
    s.absorb_assignments(s.assign_batch())
    new = {lease.feature_id: lease.renewed_at for lease in sq.leases(project, "alice")}
    assert new.keys() == old.keys() and all(new[f] > old[f] for f in old)
    assert not s.wants_refill


def test_queue_command_lists_and_releases(project, capsys):
    fill(project, 12)
    _session(project, "alice")
    _session(project, "bob")
    db = str(project.path)
    assert main(["--db", db, "queue"]) == 0
    out = capsys.readouterr().out
    assert "alice" in out and "bob" in out and "tiny-model/layer1-res #" in out and "expire" in out
    assert main(["--db", db, "queue", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["idle_minutes"] == 30 and Counter(x["annotator"] for x in data["leases"]) == {
        "alice": sq.LOOKAHEAD, "bob": sq.LOOKAHEAD}
    assert not any(x["expired"] for x in data["leases"])
    assert main(["--db", db, "queue", "--release", "alice"]) == 0
    assert f"released {sq.LOOKAHEAD} lease(s) of alice" in capsys.readouterr().out
    assert sq.leases(project, "alice") == [] and len(sq.leases(project, "bob")) == sq.LOOKAHEAD
    settings.set(project, "lease_idle_minutes", 0.001)
    time.sleep(0.2)
    assert main(["--db", db, "queue", "--release-expired", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["released"] == {"expired": sq.LOOKAHEAD} and data["leases"] == []
    assert main(["--db", db, "queue", "--release", "nobody"]) == 2
    err = capsys.readouterr().err
    assert "nobody" in err and "no annotator" in err and err.count("\n") == 1


def test_status_has_a_line_on_leases(project, capsys):
    fill(project, 12)
    _session(project, "alice")
    assert main(["--db", str(project.path), "status"]) == 0
    out = capsys.readouterr().out
    assert f"Leases: {sq.LOOKAHEAD} feature(s) held but not judged yet (alice {sq.LOOKAHEAD})" in out
    assert main(["--db", str(project.path), "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["leases"]["annotators"] == {"alice": sq.LOOKAHEAD}


def test_a_bad_idle_setting_is_one_clear_error(project):
    for bad in (0, -5, "soon"):
        with pytest.raises(StoreError, match="lease_idle_minutes"):
            settings.set(project, "lease_idle_minutes", bad)
    assert settings.get(project, "lease_idle_minutes") == 30


def test_a_hoard_handed_out_before_leases_becomes_leases_that_expire(tmp_path):
    """A project whose annotator was handed a batch before leases existed (schema before
    m006_leases): after the upgrade, what they judged stays theirs, the rest are leases from
    when they were assigned, and an idle one returns to the pool for a third annotator."""
    import sqlite3

    from saegold.store.db import open_project

    path = tmp_path / "old.db"
    with open_project(path, create=True) as p:
        fids = fill(p, 6)
        for who in ("alice", "bob", "erin"):
            sj.ensure_annotator(p, who)
        settings.set(p, "overlap", 2)
        with p.write() as db:
            for i, fid in enumerate(fids):       # the old batch: every feature to alice and to bob
                for who in ("alice", "bob"):
                    db.execute("INSERT INTO assignments(feature_id, annotator, position, created_at) "
                               "VALUES (?, ?, ?, '2026-01-01T00:00:00Z')", [fid, who, i])
        sj.append(p, sj.make_event("alice", fids[0], "tier", value="input", confidence=2))
    conn = sqlite3.connect(path)                 # as the project was before m006_leases
    conn.execute("DROP INDEX assignments_leases")
    conn.execute("ALTER TABLE assignments DROP COLUMN renewed_at")
    conn.execute("DELETE FROM _sqlite_migrations WHERE name = 'm006_leases'")
    conn.commit()
    conn.close()
    with open_project(path) as p:
        rows = {(r["annotator"], r["feature_id"]): r["renewed_at"]
                for r in p.query("SELECT annotator, feature_id, renewed_at FROM assignments")}
        assert rows[("alice", fids[0])] is None                         # judged: held, not a lease
        assert all(v == "2026-01-01T00:00:00Z" for k, v in rows.items() if k != ("alice", fids[0]))
        assert sq.release_expired(p) == 11                               # idle since January
        assert {(r["annotator"], r["feature_id"]) for r in p.query("SELECT * FROM assignments")} == \
            {("alice", fids[0])}
        erin = _session(p, "erin")                                       # the pool is open again
        assert erin.view is not None and erin.view.feature_id in fids
