"""The header keeps the source and the annotator's name on screen, shortened in the middle,
at any terminal width, and never runs past it."""
from __future__ import annotations

import pytest
from rich.cells import cell_len
from rich.console import Console
from rich.text import Text

from saegold.tui.app.render import Header, shorten_middle

SOURCE = "gemma-2-2b/gemma-scope-2b-pt-res-canonical/layer_12/width_16k/canonical"
FIXED = Text("saegold #1234  density 0.157%  done 3/100  (at 4)  12/h  ")


def line(header: Header, width: int) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(header)
    out = console.export_text().splitlines()
    assert len(out) == 1, out
    return out[0]


@pytest.mark.parametrize("width", [80, 100, 200])
def test_source_is_shortened_not_dropped(width):
    got = line(Header(FIXED, "alice", SOURCE), width)
    assert cell_len(got) <= width and got.startswith(FIXED.plain + "alice  ")
    src = got[len(FIXED.plain + "alice  "):]
    if width >= 200:
        assert src == SOURCE
    else:
        assert "…" in src and SOURCE.startswith(src.split("…")[0]) and SOURCE.endswith(src.split("…")[1])
        assert cell_len(src) == width - cell_len(FIXED.plain + "alice  ")   # it takes the room there is


def test_a_long_name_gives_way_to_the_source():
    name = "annotator_with_a_very_long_name_indeed"
    got = line(Header(FIXED, name, SOURCE), 80)
    assert cell_len(got) <= 80
    shown_name, shown_src = got[len(FIXED.plain):].split("  ")
    assert "…" in shown_name and "…" in shown_src and cell_len(shown_src) >= Header.MIN_SOURCE


def test_too_narrow_for_the_source_keeps_the_line_whole():
    got = line(Header(FIXED, "alice", SOURCE), cell_len(FIXED.plain) + 6)
    assert "gemma" not in got and cell_len(got) <= cell_len(FIXED.plain) + 6


@pytest.mark.parametrize("text,cells", [("planted-model/planted-sae", 12), ("日本語のモデル名です", 9),
                                        ("日本語のモデル名です", 8), ("abc", 2), ("abc", 1), ("abc", 0)])
def test_shorten_middle_fits_wide_characters(text, cells):
    got = shorten_middle(text, cells)
    assert cell_len(got) <= cells
    if cells >= 2:
        assert got[0] == text[0] and "…" in got
