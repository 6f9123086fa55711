"""Escape sequences, control characters and Rich markup in every text field are shown
literally and never interpreted."""
from __future__ import annotations

from apphelp import drive, make_app, screen_text
from appdata import fill

from saegold.store import judgments as sj
from saegold.store import settings

# One marker per field, each carrying markup, a CSI sequence, an OSC title change and BEL.
NASTY = {
    "token": " T[b]tok[/b]\x1b[1m",
    "label": "L[bold red]lab[/] \x1b[2J\x07",
    "continuation": "C[i]cont[/i] \x1b]0;pwned\x07",
    "logit": " G[u]lg[/u]\x1b[5m",
}
GOLD = "E[b]gold[/b]\x1b[31m\u202e"
NOTE = "N[link=http://evil]note[/link]\x1b[?1049l"
FLAG = "F[reverse]flag[/reverse]\r\x1bc"


def visible(s: str) -> str:
    from saegold.tui.safe import inert_line
    return inert_line(s)


def test_every_field_is_literal_for_an_annotator(project):
    fill(project, 4, texts=NASTY)
    app = make_app(project)
    app.session.gold_label(GOLD)
    settings.set(project, "blind", False)
    text = drive(app, ["m"], after=screen_text, size=(200, 60))
    for field, raw in NASTY.items():
        shown = visible(raw).strip()
        assert shown in text, f"{field}: {shown!r} not shown literally"
        assert "\x1b" not in text and "\x07" not in text
    assert visible(GOLD) in text
    assert "[bold red]lab[/]" in text and "[b]tok[/b]" in text


def test_notes_flags_gold_labels_are_literal_for_the_lead(project):
    ids = fill(project, 4, texts=NASTY)
    fid = ids[0]
    for who, tier in (("a", "input"), ("b", "output")):
        sj.ensure_annotator(project, who)
        sj.append(project, sj.make_event(who, fid, "tier", value=tier))
    sj.append_many(project, [sj.make_event("a", fid, "note", value=NOTE),
                             sj.make_event("a", fid, "flag", value=FLAG),
                             sj.make_event("b", fid, "gold_label", value=GOLD)])
    text = drive(make_app(project, "boss", lead=True), [], after=screen_text, size=(200, 60))
    for raw in (NOTE, FLAG, GOLD):
        assert visible(raw) in text
    assert "\x1b" not in text and "\r" not in text


def test_guidelines_file_cannot_drive_the_terminal(project, tmp_path):
    fill(project, 4)
    (tmp_path / "rules.md").write_text("# Our rules\n\nJudge \x1b[2Jcarefully [b]now[/b].\n")
    settings.set(project, "guidelines_path", "rules.md")  # relative to the project file
    text = drive(make_app(project, intro=True), [], after=screen_text, size=(120, 80))
    assert "Our rules" in text and "\\x1b[2Jcarefully" in text and "\x1b" not in text
    assert "[b]now[/b]" in text
