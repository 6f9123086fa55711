"""Pilot tests: every binding of the feature screen, checked against the events in the DB."""
from __future__ import annotations

import pytest
from apphelp import drive, make_app, my_events, screen_text

from saegold.store import judgments as sj
from saegold.store.errors import StoreError
from saegold.tui.app.help import HelpScreen
from saegold.tui.app.screen import BINDINGS


def only(events, kind):
    return [e for e in events if e["kind"] == kind]


@pytest.mark.parametrize("key,tier", [("i", "input"), ("o", "output"), ("c", "cross"), ("u", "obscure")])
def test_tier_keys(filled, key, tier):
    app = make_app(filled)
    drive(app, [key])
    (ev,) = my_events(filled)
    assert (ev["kind"], ev["value"], ev["feature_id"]) == ("tier", tier, app.session.view.feature_id)
    assert ev["login"] == "tester" and ev["annotator"] == "alice" and ev["seconds_spent"] is not None


@pytest.mark.parametrize("conf", [1, 2, 3])
def test_confidence_after_and_before_tier(filled, conf):
    drive(make_app(filled), ["i", str(conf)])
    evs = only(my_events(filled), "tier")
    assert [(e["value"], e["confidence"]) for e in evs] == [("input", None), ("input", conf)]
    drive(make_app(filled, "bob"), [str(conf), "o"])  # pending confidence goes with the tier
    assert [(e["value"], e["confidence"]) for e in my_events(filled, "bob")] == [("output", conf)]


@pytest.mark.parametrize("key,verdict", [("y", "correct"), ("p", "partly"), ("w", "wrong")])
def test_verdict_keys_judge_the_selected_candidate(filled, key, verdict):
    app = make_app(filled)
    drive(app, [key, key])
    cands = app.session.view.candidate_uuids
    evs = only(my_events(filled), "verdict")
    # The selection moves on after each verdict: A, then B.
    assert [(e["label_uuid"], e["value"]) for e in evs] == [(cands[0], verdict), (cands[1], verdict)]


def test_tab_and_shift_tab_select_candidates(filled):
    app = make_app(filled)
    drive(app, ["tab", "y", "shift+tab", "shift+tab", "w"])
    cands = app.session.view.candidate_uuids
    evs = only(my_events(filled), "verdict")
    # tab: B; y judges B and moves to the next unjudged (A); shift+tab twice: back to A.
    assert evs[0]["label_uuid"] == cands[1] and evs[0]["value"] == "correct"
    n = len(cands)
    assert evs[1]["label_uuid"] == cands[(0 - 2) % n] and evs[1]["value"] == "wrong"


def test_prefer_selected_and_neither(filled):
    app = make_app(filled)
    drive(app, ["tab", "v", "0"])
    evs = only(my_events(filled), "preference")
    assert evs[0]["label_uuid"] == app.session.view.candidate_uuids[1]
    assert evs[1]["value"] == "neither" and evs[1]["label_uuid"] is None
    assert app.session.judgment.preference == "neither"


def test_gold_label_modal(filled):
    app = make_app(filled)
    drive(app, ["e", "type:cats on mats", "enter"])
    (ev,) = my_events(filled)
    assert (ev["kind"], ev["value"]) == ("gold_label", "cats on mats")


def test_modal_escape_writes_nothing(filled):
    app = make_app(filled)
    seen = drive(app, ["e", "type:half", "escape"], after=lambda a: type(a.screen).__name__)
    assert my_events(filled) == [] and seen == "FeatureScreen"


def test_skip_flag_note(filled):
    app = make_app(filled)
    fid = app.session.view.feature_id
    drive(app, ["f", "type:broken examples", "enter", "t", "type:looks like French", "enter", "s"])
    evs = my_events(filled)
    assert [(e["kind"], e["value"]) for e in evs] == [
        ("flag", "broken examples"), ("note", "looks like French"), ("skip", None)]
    assert all(e["feature_id"] == fid for e in evs)


def test_undo_appends_a_retraction_of_the_last_live_event(filled):
    app = make_app(filled)
    status = drive(app, ["i", "y", "z", "z", "z"], after=lambda a: str(a.screen.status))
    evs = my_events(filled)
    tier, verdict = evs[0], evs[1]
    retracts = only(evs, "retract")
    assert [r["target_uuid"] for r in retracts] == [verdict["uuid"], tier["uuid"]]  # third z: nothing left
    assert app.session.judgment is None or app.session.judgment.tier is None
    assert "nothing of yours to undo" in status


def test_next_back_and_arrows(filled):
    order = make_app(filled).session.order
    seen = []
    for keys in ([], ["n"], ["n", "right"], ["n", "right", "b"], ["n", "right", "b", "left"]):
        seen.append(drive(make_app(filled), keys, after=lambda a: a.session.view.feature_id))
    assert seen == [order[0], order[1], order[2], order[1], order[0]]
    assert "first feature" in drive(make_app(filled), ["b"], after=lambda a: str(a.screen.status))


def test_next_skips_done_and_skipped_features(filled):
    app = make_app(filled)
    first, second, third = app.session.order[:3]
    # skip the second (on to the third), back to the second, the first, and on again
    got = drive(app, ["n", "s", "b", "b", "n"], after=lambda a: a.session.view.feature_id)
    assert got == third  # the skipped one is passed over
    assert first != second


def test_jump_to_feature_index(filled):
    app = make_app(filled)
    got = drive(app, ["g", "type:7", "enter"], after=lambda a: a.session.view.idx)
    assert got == 7
    got = drive(make_app(filled), ["g", "type:999", "enter"], after=lambda a: str(a.screen.status))
    assert "no feature with index 999" in got


def test_more_examples_toggle(filled):
    app = make_app(filled)
    before = drive(app, [], after=screen_text, size=(80, 24))
    after = drive(make_app(filled), ["m"], after=screen_text, size=(80, 24))
    # the first screen fits: compact output evidence, no suppressed tokens; m shows it all
    assert "of 7)" in before and "suppresses" not in before
    assert "(7 of 7)" in after and "suppresses" in after
    tall = drive(make_app(filled), [], after=screen_text, size=(120, 36))
    assert "(7 of 7)" in tall  # a taller terminal shows more examples without a key


def test_help_screen_lists_every_binding_and_guidelines(filled):
    app = make_app(filled)

    def check(a):
        assert isinstance(a.screen, HelpScreen)
        return screen_text(a)
    text = drive(app, ["question_mark"], after=check, size=(120, 80))
    for b in BINDINGS:
        assert b.description in text
    assert "Annotator guidelines" in text
    closed = drive(make_app(filled), ["question_mark", "escape"], after=lambda a: type(a.screen).__name__)
    assert closed == "FeatureScreen"


def test_intro_before_first_feature(filled):
    app = make_app(filled, intro=True)
    text = drive(app, [], after=screen_text, size=(120, 60))
    assert "Welcome to saegold" in text and "Press enter to start" in text
    assert drive(make_app(filled, intro=True), ["enter"], after=lambda a: type(a.screen).__name__) == "FeatureScreen"


def test_quit(filled):
    app = make_app(filled)
    drive(app, ["i", "q"])
    assert app.return_code == 0 and not app.is_running
    assert len(my_events(filled)) == 1


def test_footer_shows_every_binding_at_80_columns(filled):
    from saegold.tui.app.keybar import KeyBar, key_name
    shown = drive(make_app(filled), [], size=(80, 24),
                  after=lambda a: (str(a.screen.query_one(KeyBar).render()), screen_text(a)))
    bar, screen = shown
    flat = " ".join(screen.split())
    for b in BINDINGS:
        desc = b.group.description if b.group else b.description
        assert key_name(b) in bar and desc in flat.replace("\u00a0", " "), b


def test_blind_until_done_then_revealed(filled):
    app = make_app(filled)
    method_names = ("eleuther_acts_top5", "baez", "output_logits")

    def text(a):
        return screen_text(a)
    before = drive(app, [], after=text)
    assert "hidden until" in before and not any(m in before for m in method_names)
    assert "det " not in before and "shuffled" not in before
    n = len(app.session.view.candidates)
    after = drive(make_app(filled), ["i"] + ["y"] * n, after=text)
    assert "Predicted" in after and "det 0." in after and "(shuffled 0.5" in after
    assert "baez" in after and "DONE" in after


def test_blind_setting_off_shows_everything(filled):
    from saegold.store import settings
    settings.set(filled, "blind", False)
    text = drive(make_app(filled), [], after=screen_text)
    assert "Predicted" in text and "baez" in text


def test_saved_shown_only_after_the_write(filled, monkeypatch):
    app = make_app(filled)

    def fail(project, event):
        raise StoreError("the database is locked by another process (timed out)")
    monkeypatch.setattr(sj, "append", fail)
    status = drive(app, ["i"], after=lambda a: str(a.screen.status))
    assert status.startswith("NOT saved") and my_events(filled) == []
    monkeypatch.undo()
    status = drive(make_app(filled), ["i"], after=lambda a: str(a.screen.status))
    assert status.startswith("✓ saved #1") and len(my_events(filled)) == 1


def test_seconds_spent_accumulates_with_idle_cap(filled):
    t = [0.0]
    app = make_app(filled, clock=lambda: t[0])
    s = app.session
    t[0] = 12.5
    s.set_tier("input")
    t[0] = 12.5 + 600  # a lunch break counts as the cap
    s.set_tier("output")
    a, b = only(my_events(filled), "tier")
    assert a["seconds_spent"] == 12.5 and b["seconds_spent"] == 12.5 + 120


def test_feature_without_labels_or_scores_degrades(project):
    from appdata import fill
    fill(project, 4)
    project.db.execute("DELETE FROM bench_scores")
    project.db.execute("DELETE FROM labels")
    project.db.execute("DELETE FROM logit_tokens")
    project.db.execute("DELETE FROM taxonomy_scores")
    project.db.conn.commit()
    app = make_app(project)
    text = drive(app, ["i", "y"], after=screen_text)
    assert "none for this feature" in text and "no model has been run on this feature" in text
    assert "DONE" in text  # no candidates: the tier alone finishes it
    assert [e["kind"] for e in my_events(project)] == ["tier"]


def test_agreement_screen(filled):
    import asyncio
    import time as _time
    ids = sorted(r["id"] for r in filled.query("SELECT id FROM features"))
    for who, tier in (("a", "input"), ("b", "input"), ("c", "output")):
        sj.ensure_annotator(filled, who)
        for fid in ids[:6]:
            sj.append(filled, sj.make_event(who, fid, "tier", value=tier if fid % 2 else "cross"))
    app = make_app(filled)

    async def go():
        async with app.run_test(size=(120, 50)) as pilot:
            await pilot.press("a")
            end = _time.monotonic() + 60
            while _time.monotonic() < end:
                await pilot.pause(0.2)
                text = screen_text(app)
                if "computing" not in text:
                    break
            await pilot.press("escape")
            await pilot.pause()
            return text, type(app.screen).__name__
    text, after = asyncio.run(go())
    assert "Agreement between annotators" in text and "computing" not in text
    assert "could not be computed" not in text and "tier" in text
    assert after == "FeatureScreen"


def test_header_counts_done_and_skipped(filled):
    app = make_app(filled)
    n = len(app.session.view.candidates)
    head = drive(app, ["i"] + ["y"] * n + ["n", "s"], after=lambda a: screen_text(a).splitlines()[0])
    assert f"done 1/{app.session.assigned_count} (1 skipped)" in head and "#" in head and "density" in head


def test_page_keys_open_and_scroll_more(filled):
    """The first screen fits the terminal; PgDn opens "more" (every example in full, the
    full output evidence) and pages through it; PgUp pages back."""
    from textual.containers import VerticalScroll

    def state(a):
        more = a.screen.query_one("#more", VerticalScroll)
        return a.screen.expanded, more.scroll_y

    assert drive(make_app(filled), [], size=(80, 24), after=state) == (False, 0)
    assert drive(make_app(filled), ["pagedown"], size=(80, 24), after=state) == (True, 0)
    expanded, down = drive(make_app(filled), ["pagedown", "pagedown"], size=(80, 24), after=state)
    assert expanded and down > 0
    assert drive(make_app(filled), ["pagedown", "pagedown", "pageup"], size=(80, 24), after=state) == (True, 0)
    assert my_events(filled) == []  # scrolling writes nothing


def test_jump_with_no_number_says_so(filled):
    """Letters cannot be typed in the jump box; enter on it empty keeps it open; escape
    closes it visibly."""
    app = make_app(filled)
    first = app.session.view.feature_id
    assert drive(app, ["g", "type:abc", "enter"], after=lambda a: type(a.screen).__name__) == "TextPrompt"
    got = drive(make_app(filled), ["g", "type:abc", "enter", "escape"],
                after=lambda a: (a.session.view.feature_id, str(a.screen.status)))
    assert got == (first, "jump cancelled")
    hint = drive(make_app(filled), ["g"], after=lambda a: screen_text(a))
    assert "enter: go" in hint and "enter: save" not in hint


def test_header_keeps_progress_and_name_at_80_columns_with_a_long_source(filled):
    """A real source name (30+ characters) is what the 80-column header cuts, not the
    done counter, the position or the annotator's name."""
    with filled.write() as db:
        db.execute("UPDATE sources SET name = 'gemma-2-2b/20-gemmascope-res-16k-canonical-long'")
    head = drive(make_app(filled), [], size=(80, 24), after=lambda a: screen_text(a).splitlines()[0])
    assert "done 0/" in head and "queue position 1" in head and "alice" in head, head


def test_skip_saves_and_moves_on(filled):
    """s writes a skip for this feature and opens the next one still to do; b goes back to
    the skipped one and z there takes the skip back."""
    app = make_app(filled)
    first, second = app.session.order[:2]
    got = drive(app, ["s"], after=lambda a: (a.session.view.feature_id, str(a.screen.status)))
    assert got[0] == second and "saved" in got[1] and "b goes back" in got[1]
    assert [(e["feature_id"], e["kind"]) for e in my_events(filled)] == [(first, "skip")]
    # A new session (the first one's unjudged leases went back to the pool when it ended)
    # passes the skipped one over; back to it, z takes the skip back.
    app = make_app(filled)
    assert app.session.order[0] == first and app.session.view.feature_id == app.session.order[1]
    drive(app, ["b", "z"])
    assert app.session.view.feature_id == first
    assert app.session.judgment is None or not app.session.judgment.skipped


def test_skip_on_the_last_feature_to_do_stays_and_says_so(filled):
    app = make_app(filled)
    # The queue is topped up a few features ahead as the annotator works: skip every feature.
    n = filled.scalar("SELECT COUNT(DISTINCT feature_id) FROM examples WHERE kind = 'top'")
    last, status = drive(app, ["s"] * n, after=lambda a: (a.session.view.feature_id, str(a.screen.status)))
    assert last == app.session.order[-1]
    assert "skipped" in status and "saved" in status and "end of your queue" in status
    assert sum(e["kind"] == "skip" for e in my_events(filled)) == n


def test_a_skip_that_is_not_saved_stays_on_the_feature(filled, monkeypatch):
    """A failed write of s stays put and says NOT saved, also on a feature skipped before
    (its earlier skip must not pass for this one)."""
    first = make_app(filled).session.order[0]
    sj.append(filled, sj.make_event("alice", first, "skip"))       # skipped in an earlier session
    app = make_app(filled)
    assert app.session.view.feature_id != first

    def fail(project, event):
        raise StoreError("the database is locked by another process (timed out)")
    monkeypatch.setattr(sj, "append", fail)
    got = drive(app, ["b", "s"], after=lambda a: (a.session.view.feature_id, str(a.screen.status)))
    assert got[0] == first and got[1].startswith("NOT saved") and "b goes back" not in got[1]
    assert [e["kind"] for e in my_events(filled)] == ["skip"]


def test_after_a_skip_the_status_names_the_key_that_reaches_the_skipped_feature(filled):
    """b opens the feature before the one s moved on to; when a feature skipped before lies
    between, that is not the one just skipped, so the status names g with its index."""
    app = make_app(filled)
    first, second = app.session.order[:2]
    idx = app.session.view.idx
    status = drive(app, ["n", "s", "b", "b", "s"], after=lambda a: str(a.screen.status))
    assert f"(#{idx}; g {idx} goes back to it" in status and "b goes back" not in status
    app = make_app(filled, "bob")
    status = drive(app, ["s"], after=lambda a: str(a.screen.status))
    assert "b goes back to it" in status
    got = drive(make_app(filled, "bob"), ["b"], after=lambda a: a.session.view.feature_id)
    assert got == app.session.order[0]


@pytest.mark.parametrize("key", ["n", "s"])
def test_a_store_error_while_moving_on_is_shown_not_a_crash(filled, monkeypatch, key):
    """The next feature cannot be opened (the project stayed locked while the queue was
    topped up, say): the app says so and stays up on the same feature."""
    app = make_app(filled)
    here = app.session.view.feature_id

    def locked():
        raise StoreError("the project is busy (database is locked)")

    monkeypatch.setattr(app.session, "next", locked)
    fid, status = drive(app, [key], after=lambda a: (a.session.view.feature_id, str(a.screen.status)))
    assert fid == here and "could not open" in status and "database is locked" in status


def test_header_says_position_and_pace_in_words(filled):
    """Issue 13: no bare "(at 43)" or "—/h": the position and, after a minute, the pace in words."""
    ticks = iter(range(0, 10_000, 50))
    app = make_app(filled, clock=lambda: float(next(ticks)))
    head = drive(app, ["i", "n"], size=(120, 40), after=lambda a: screen_text(a).splitlines()[0])
    assert "queue position 2" in head and "(at" not in head and "/h" not in head
    assert "done per hour" in head
