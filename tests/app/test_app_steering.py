"""Steered continuations on the feature screen: a compact line, every prompt and target on
``m``, clean next to steered with the KL reached, shown in blind mode (evidence, not a score),
stored text inert."""
from __future__ import annotations

from textual.widgets import Static

from apphelp import drive, make_app
from store.features import get_or_create_source
from store.steering import SteeredRow, put_clean, replace_feature

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
    return str(app.screen.query_one("#evidence", Static).content)


def test_compact_line_then_every_prompt_and_target_on_m(filled):
    _steer_all(filled)
    compact = drive(make_app(filled), [], size=(80, 24), after=_evidence)
    lines = [ln for ln in compact.splitlines() if ln.lstrip().startswith("steered")]
    assert len(lines) == 1 and "KL 0.31<0.5" in lines[0] and "castle" in lines[0] and "clean" in lines[0]
    assert len(lines[0]) <= 76                           # one line at 80 columns (body padding, scrollbar)
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
