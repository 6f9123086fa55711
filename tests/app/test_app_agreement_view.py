"""The agreement view (issue 13): at 80 columns each chart keeps its whole bar on its
measure's line; at 120 columns it is opaque and full-size, nothing of the screen behind shows."""
from __future__ import annotations

import asyncio

from apphelp import make_app, screen_text


def _agreement_text(filled, size):
    from saegold.store import judgments as sj
    app = make_app(filled)   # before the others take every feature (overlap)
    fids = [r["id"] for r in filled.query("SELECT id FROM features ORDER BY id")]
    evs = []
    for k, who in enumerate(("ann1", "ann2", "ann3")):
        sj.ensure_annotator(filled, who)
        for i, f in enumerate(fids):
            evs.append(sj.make_event(who, f, "tier", value=("input", "output", "cross")[(i + k * (i % 2)) % 3],
                                     confidence=2, login="t", seconds_spent=1.0))
    sj.append_many(filled, evs)

    async def go():
        async with app.run_test(size=size) as pilot:
            await pilot.press("a")
            for _ in range(600):
                await pilot.pause(0.05)
                if "Krippendorff" in screen_text(app):
                    break
            await pilot.pause(0.2)
            return screen_text(app)
    return asyncio.run(go())


def test_agreement_view_at_80_columns_keeps_its_charts_whole(filled):
    text = _agreement_text(filled, (80, 24))
    lines = text.splitlines()
    rows = [i for i, ln in enumerate(lines) if ln.startswith("│ │ tier ")]
    assert len(rows) == 3, text
    for i in rows:   # the chart cell holds its whole bar: nothing of it wraps to the next line
        assert "●" in lines[i].split("│")[6], lines[i]
        assert lines[i + 1].split("│")[6].strip() == "" or lines[i + 1].startswith("│ │ tier "), text
    assert "…" not in text


def test_agreement_view_at_120_columns_covers_the_screen_behind(filled):
    text = _agreement_text(filled, (120, 40))
    for ln in text.splitlines():
        assert ln[-1] in "╮│╯▁▂▃▄▅▆▇█", repr(ln)        # its own border (or scrollbar), nothing behind
