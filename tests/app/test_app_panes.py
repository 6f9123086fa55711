"""The feature screen's panes draw themselves from the session: a change made to the session
by anything (not a key of the screen) is on screen without the screen being asked to redraw,
and a pane whose content did not change is not redrawn."""
from __future__ import annotations

import asyncio
import subprocess
import sys

from apphelp import drive, make_app, screen_text

from saegold.tui.app.panes import Pane


def run(app, step, size=(120, 40)):
    """Run the app headless: ``step(app)`` once it is drawn, then what the screen shows."""
    async def go():
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            got = step(app)
            await pilot.pause()
            await pilot.pause()
            return got, screen_text(app)
    return asyncio.run(go())


def test_a_change_to_the_session_shows_without_a_redraw_call(filled):
    app = make_app(filled)

    def step(a):
        before = screen_text(a)
        a.session.select(1)                    # not a key: nobody tells the screen
        return before, a.session.selected_candidate().letter

    (before, letter), now = run(app, step)
    assert f"▸  {letter} " not in before and f"▸  {letter} " in now


def test_a_write_on_the_writer_thread_redraws_the_judgment(filled):
    # the tier is written on the screen's writer thread; the judgment pane shows it
    text = drive(make_app(filled), ["o"], after=screen_text)
    assert "Tier output" in text


def test_unchanged_panes_are_not_redrawn(filled, monkeypatch):
    redrawn: list[str] = []
    real = Pane.update

    def update(self, content="", *, layout=True):
        redrawn.append(self.id)
        real(self, content, layout=layout)

    monkeypatch.setattr(Pane, "update", update)

    def step(a):
        redrawn.clear()
        a.session.select(1)
    run(make_app(filled), step)
    # the selection moved: the candidates redraw; the header, examples and evidence do not
    assert redrawn == ["candidates"]


def test_the_session_needs_no_textual():
    code = "import sys, saegold.tui.app.session, saegold.tui.app.model; print('textual' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_next_feature_repaints_without_a_layout(filled, monkeypatch):
    """A pane whose height the stylesheet sets, or whose height did not change, is repainted
    in place: Textual then skips laying out the whole screen (most of a keypress's cost)."""
    updates: list[tuple[str, bool]] = []
    real = Pane.update

    def update(self, content="", *, layout=True):
        updates.append((self.id, layout))
        real(self, content, layout=layout)

    monkeypatch.setattr(Pane, "update", update)

    def step(a):
        updates.clear()
        a.session.next()
    run(make_app(filled), step)
    layout = dict(updates)
    assert {"header", "examples", "evidence"} <= set(layout)      # the new feature is drawn
    assert not any(lay for pane, lay in updates if pane in ("header", "examples", "evidence", "machine", "judgment")), updates
