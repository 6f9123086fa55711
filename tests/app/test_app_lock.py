"""Nothing is recorded that the annotator did not see (issue 12.6): keys typed after quitting,
and keys typed while a write waits for another process's lock, are dropped; a prompt opened
as the app quits does not crash it; a "NOT saved" line stays until the next key.  Real SQLite:
the lock is held by another connection with BEGIN IMMEDIATE."""
from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest
from apphelp import make_app, my_events, screen_text
from textual import events

CHARS = {"enter": "\r", "space": " "}


def typed(app, keys) -> None:
    """Keys as a terminal delivers them: all queued at once, none waiting for the previous
    one to be handled (a fast typist, or keys typed while the app is busy)."""
    for k in keys:
        app.post_message(events.Key(k, CHARS.get(k, k if len(k) == 1 else None)))


def run(app, script, size=(100, 30)):
    async def go():
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            return await script(app, pilot)
    return asyncio.run(go())


async def until(pilot, cond, timeout=10.0):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("condition not reached")
        await pilot.pause(0.02)


@pytest.fixture
def locker(filled):
    """Another connection to the project that can hold its write lock."""
    conn = sqlite3.connect(filled.path, isolation_level=None, timeout=0)
    yield conn
    if conn.in_transaction:
        conn.rollback()
    conn.close()


@pytest.mark.parametrize("keys", [["q", "i", "o"], ["q", "l", "s", "enter"], ["q", "y", "w", "z"]])
def test_keys_after_quit_are_dropped(filled, keys):
    app = make_app(filled)

    async def script(app, pilot):
        typed(app, keys)
        await pilot.pause(0.3)
    run(app, script)
    assert my_events(filled) == []
    assert app.return_code == 0


@pytest.mark.parametrize("key", ["e", "t", "f", "g"])
def test_a_prompt_key_after_quit_neither_crashes_nor_opens(filled, key):
    app = make_app(filled)

    async def script(app, pilot):
        typed(app, ["q", key, "x", "enter"])
        await pilot.pause(0.3)
    run(app, script)           # a crash inside the app re-raises here
    assert app.return_code == 0 and my_events(filled) == []


def test_ctrl_c_quits_and_keeps_what_was_saved(filled):
    app = make_app(filled)

    async def script(app, pilot):
        await pilot.press("i")
        await pilot.press("ctrl+c")
        await pilot.pause()
    run(app, script)
    assert app.return_code == 130
    assert [e["kind"] for e in my_events(filled)] == ["tier"]
    assert "stopped with Ctrl+C" in app.farewell("annotate")


def test_ctrl_c_quits_from_a_prompt_too(filled):
    app = make_app(filled)

    async def script(app, pilot):
        await pilot.press("e", "a", "b")
        await pilot.press("ctrl+c")
        await pilot.pause()
    run(app, script)
    assert app.return_code == 130 and my_events(filled) == []


def test_a_write_waiting_for_the_lock_says_so_and_drops_keys_typed_meanwhile(filled, locker):
    app = make_app(filled)

    async def script(app, pilot):
        locker.execute("BEGIN IMMEDIATE")
        await pilot.press("i")
        screen = app.feature_screen
        await until(pilot, lambda: screen.waiting is not None)
        shown = screen_text(app)
        typed(app, ["y", "w", "o", "s"])   # typed at the waiting screen
        await pilot.pause(0.3)
        written_while_waiting = my_events(filled)
        locker.execute("COMMIT")
        await until(pilot, lambda: screen.waiting is None)
        await pilot.pause(0.3)
        return shown, written_while_waiting, screen_text(app)
    shown, meanwhile, after = run(app, script)
    assert "waiting for the project lock" in shown
    assert "saved" not in shown.replace("not saved", "")        # the old "saved" line is gone
    assert meanwhile == []
    evs = my_events(filled)
    assert [(e["kind"], e["value"]) for e in evs] == [("tier", "input")]   # y w o s: none written
    assert "✓ saved" in after and "4 key(s) typed while it waited were dropped" in after
    assert app.session.view is not None and not app.session.state.skipped


def test_keys_after_the_outcome_are_taken(filled, locker):
    app = make_app(filled)

    async def script(app, pilot):
        locker.execute("BEGIN IMMEDIATE")
        await pilot.press("i")
        await until(pilot, lambda: app.feature_screen.waiting is not None)
        locker.execute("COMMIT")
        await until(pilot, lambda: app.feature_screen.waiting is None)
        await pilot.press("2")
        await pilot.pause()
    run(app, script)
    assert [(e["value"], e["confidence"]) for e in my_events(filled)] == [("input", None), ("input", 2)]


def test_not_saved_after_the_lock_wait_stays_until_the_next_key(filled, locker):
    app = make_app(filled)
    app.session.lock_wait_s = 0.6

    async def script(app, pilot):
        locker.execute("BEGIN IMMEDIATE")
        await pilot.press("o")
        screen = app.feature_screen
        await until(pilot, lambda: screen.waiting is None and "NOT saved" in screen_text(app))
        await pilot.pause(1.5)             # time passes, a background repaint or two
        still = screen_text(app)
        locker.execute("COMMIT")
        await pilot.press("c")
        await until(pilot, lambda: screen.waiting is None)   # on a loaded machine even a free
        await pilot.pause()                                 # write can outlast the grace time
        return still, screen_text(app)
    still, after = run(app, script)
    assert "NOT saved" in still and "another process held the project's write lock" in still
    assert "NOT saved" not in after and "✓ saved" in after
    assert [e["value"] for e in my_events(filled)] == ["cross"]


def test_skip_waiting_for_the_lock_moves_on_only_once_saved(filled, locker):
    app = make_app(filled)
    first = app.session.view.feature_id

    async def script(app, pilot):
        locker.execute("BEGIN IMMEDIATE")
        await pilot.press("s")
        await until(pilot, lambda: app.feature_screen.waiting is not None)
        still_here = app.session.view.feature_id
        locker.execute("COMMIT")
        await until(pilot, lambda: app.feature_screen.waiting is None)
        await pilot.pause()
        return still_here
    assert run(app, script) == first
    assert app.session.view.feature_id != first
    assert [(e["kind"], e["feature_id"]) for e in my_events(filled)] == [("skip", first)]


def test_quitting_while_a_write_waits_gives_it_up_and_says_so(filled, locker):
    app = make_app(filled)

    async def script(app, pilot):
        locker.execute("BEGIN IMMEDIATE")
        await pilot.press("u")
        await until(pilot, lambda: app.feature_screen.waiting is not None)
        t = time.monotonic()
        await pilot.press("q")
        await pilot.pause()
        return time.monotonic() - t
    took = run(app, script)
    locker.execute("COMMIT")
    time.sleep(0.6)                        # the writer thread would have committed by now
    assert my_events(filled) == []
    assert took < 5                        # within a few lock slices, not the 30 s busy timeout
    assert "NOT saved" in app.exit_note and "NOT saved" in app.farewell("annotate")
