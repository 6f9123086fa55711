"""Issue 15 in the app: the reveal shows each benchmark score with its stored 95% interval
(and the feature's intruder score), never before the annotator has judged (blind mode); "more"
shows the examples across the activation range bin by bin, with each bin's interval."""
from __future__ import annotations

import io
import json

from apphelp import drive, make_app, screen_text
from rich.console import Console
from textual.widgets import Static

from saegold.store import examples as se
from saegold.store.db import now


def _with_intervals(project) -> None:
    """Every stored score of the fixture gets an interval around it; every feature an intruder result."""
    with project.write() as db:
        for sid, value in db.execute("SELECT id, value FROM bench_scores").fetchall():
            db.execute("UPDATE bench_scores SET details = ? WHERE id = ?",
                       [json.dumps({"ci": [round(value - 0.21, 2), round(value + 0.17, 2)]}), sid])
        for (fid,) in db.execute("SELECT id FROM features").fetchall():
            db.execute("INSERT INTO intruder_scores(feature_id, value, n, details, created_at) VALUES (?, ?, ?, ?, ?)",
                       [fid, 0.65, 20, json.dumps({"ci": [0.43, 0.82], "chance": 0.2}), now()])


def test_reveal_shows_each_score_with_its_interval_only_after_judging(filled):
    _with_intervals(filled)
    app = make_app(filled)
    blind = drive(app, [], after=screen_text)
    assert "(0.29–0.67)" not in blind and "intruder" not in blind and "det " not in blind
    n = len(app.session.view.candidates)
    for size in ((120, 40), (80, 24)):
        app = make_app(filled)
        shown = drive(app, ["i"] + ["y"] * n, size=size, after=screen_text)
        # detection of the first label scored 0.5: its interval 0.29-0.67 is on screen
        assert "det 0.5 (0.29–0.67)" in shown, shown
        if size[0] >= 120:      # (at 80 columns the predicted-category line wraps)
            assert "intruder 0.65 (0.43–0.82), chance 0.2" in shown
        assert all(len(line) <= size[0] for line in shown.splitlines())


def _quantiles(app) -> str:
    """The "more" view's activation-range pane as laid out (every line, however long the scroll)."""
    widget = app.screen.query_one("#more-quantiles", Static)
    console = Console(width=widget.content_region.width, file=io.StringIO(), color_system=None)
    lines = console.render_lines(widget.content, console.options.update(height=None), pad=False)
    return "\n".join("".join(seg.text for seg in line).rstrip() for line in lines)


def test_more_shows_the_activation_bins(filled):
    tokens = [" weak", " middling", " strong"]
    exs, bins = [], []
    for b in range(9, -1, -1):                 # strongest bin first, as score stores them
        for r in range(2):
            act = 0.5 + b + 0.1 * r
            exs.append({"tokens": ["<bos>", tokens[min(2, b // 4)], f" b{b}r{r}"], "acts": [0.0, act, 0.0]})
            bins.append(b)
    with filled.write() as db:
        for (fid,) in db.execute("SELECT id FROM features").fetchall():
            se.put_examples(db, fid, "quantile", exs, origin="scored", bins=bins)
    first = drive(make_app(filled), [], after=screen_text)
    assert "examples across the activation range" in first      # the m line says it is there
    got = drive(make_app(filled), ["m"], after=_quantiles)
    assert "Examples across the activation range" in got
    assert "bin 10/10  9.5–9.6" in got and "bin 1/10  0.5–0.6" in got
    assert got.index("bin 10/10") < got.index("bin 1/10")
    assert "b0r1" in got and "weak" in got


def test_no_bins_stored_says_so(filled):
    got = drive(make_app(filled), ["m"], after=_quantiles)
    assert "Examples across the activation range" in got and "none stored for this feature" in got
