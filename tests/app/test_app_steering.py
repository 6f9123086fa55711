"""Steered continuations on the feature screen: a compact line, every prompt and target on
``m``, clean next to steered with the KL reached, shown in blind mode (evidence, not a score),
stored text inert."""
from __future__ import annotations

import io

from rich.cells import cell_len
from rich.console import Console
from textual.widgets import Static

from apphelp import drive, make_app, screen_text
from saegold.store.features import get_or_create_source
from saegold.store.steering import SteeredRow, put_clean, replace_feature

PROMPTS = ("I think", "We")


def _steer_all(project, text: str = "castle castle castle") -> None:
    with project.write() as db:
        for sid, in db.execute("SELECT id FROM sources").fetchall():
            for p in PROMPTS:
                put_clean(db, sid, p, " the plain old words", [1], {"settings": {}})
        for fid, in db.execute("SELECT id FROM features").fetchall():
            replace_feature(db, fid, [
                SteeredRow(fid, 0.25, 3.0, 0.24, True,
                           [{"prompt": p, "text": f" {text} at {p}", "token_ids": [1]} for p in PROMPTS], {}),
                SteeredRow(fid, 0.5, 9.0, 0.31, False,
                           [{"prompt": p, "text": f" {text} strong {p}", "token_ids": [1]} for p in PROMPTS], {})])


def _evidence(app) -> str:
    """The output evidence as the screen lays it out: fitted to its widget's room on the
    first screen, in full (every line, however long the scroll) under "more"."""
    expanded = app.screen.expanded
    widget = app.screen.query_one("#more-evidence" if expanded else "#evidence", Static)
    region = widget.content_region
    console = Console(width=region.width, file=io.StringIO(), color_system=None)
    options = console.options.update(height=None if expanded else region.height)
    lines = console.render_lines(widget.content, options, pad=False)
    return "\n".join("".join(seg.text for seg in line).rstrip() for line in lines)


def test_compact_line_then_every_prompt_and_target_on_m(filled):
    _steer_all(filled)
    compact = drive(make_app(filled), [], size=(80, 24), after=screen_text).split("Candidate labels")[0]
    lines = [ln for ln in compact.splitlines() if ln.lstrip().startswith("steered")]
    assert len(lines) == 1 and "KL 0.31<0.5" in lines[0] and "castle" in lines[0] and "clean the" in lines[0]
    assert cell_len(lines[0].rstrip()) <= 79             # one line at 80 columns (body padding)
    # on the first screen beside the examples too, from 100 columns
    wide = drive(make_app(filled), [], size=(120, 40), after=screen_text)
    assert "castle castle" in wide.split("Candidate labels")[0], wide
    full = drive(make_app(filled), ["m"], size=(120, 40), after=_evidence)
    for p in PROMPTS:
        assert f"▸ {p}" in full and f"castle castle castle at {p}" in full and f"strong {p}" in full
    assert full.count("clean       ") == 2 and "KL 0.24" in full and "KL 0.31<0.5" in full
    assert "out of reach" in full
    back = drive(make_app(filled), ["m", "m"], size=(120, 40), after=_evidence)
    assert back == drive(make_app(filled), [], size=(120, 40), after=_evidence)


def test_steered_continuations_show_in_blind_mode_and_stay_inert(filled):
    _steer_all(filled, text="[bold]x[/bold] \x1b[31mred")
    app = make_app(filled)
    assert app.session.blind
    text = drive(app, ["m"], size=(120, 40), after=_evidence)
    assert "[bold]x[/bold]" in text and "\x1b" not in text


def test_no_steering_no_line(filled):
    text = drive(make_app(filled), [], size=(120, 40), after=_evidence)
    assert "steered" not in text

