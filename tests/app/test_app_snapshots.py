"""Snapshots of the feature screen at 80x24 and 120x40 (deterministic data, seeds and clocks).

Update after an intended change with ``pytest tests/app/test_app_snapshots.py --snapshot-update``
and look at the SVGs in ``__snapshots__`` before committing them.
"""
from __future__ import annotations

import pytest
from apphelp import make_app, settle


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_fresh_feature_blind(filled, snap_compare, size):
    assert snap_compare(make_app(filled), terminal_size=size)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_done_feature_revealed(filled, snap_compare, size):
    app = make_app(filled)
    keys = ["i", "3"] + ["y"] * len(app.session.view.candidates) + ["v"]

    async def press_each(pilot):   # each key's write shown before the next key, as a person types
        for key in keys:
            await pilot.press(key)
            await settle(pilot.app, pilot)

    assert snap_compare(app, terminal_size=size, run_before=press_each)


def test_help_screen_80x24(filled, snap_compare):
    assert snap_compare(make_app(filled, intro=True), terminal_size=(80, 24))
