"""Colours that survive SSH: the xterm 256-colour palette and standard attributes only."""
from __future__ import annotations

import math

from rich.style import Style

# Activation highlight: light yellow -> deep orange, xterm-256 indices (no truecolor needed).
RAMP = (230, 229, 222, 221, 215, 209)
MAX_MARK = "▶"

STYLE_MAX = Style(color="color(16)", bgcolor="color(202)", bold=True, underline=True)
STYLE_DIM = Style(dim=True)
STYLE_HEAD = Style(bold=True)
STYLE_KEY = Style(bold=True, color="color(39)")
STYLE_SAVED = Style(bold=True, color="color(34)")
STYLE_ERROR = Style(bold=True, color="color(196)")
STYLE_WAIT = Style(bold=True, color="color(16)", bgcolor="color(214)")
STYLE_SELECTED = Style(reverse=True, bold=True)
STYLE_TOKEN = Style(bgcolor="color(236)", color="color(255)")
VERDICT_STYLE = {
    "correct": Style(bold=True, color="color(34)"),
    "partly": Style(bold=True, color="color(178)"),
    "wrong": Style(bold=True, color="color(160)"),
}
CATEGORY_STYLE = {
    "input": Style(bold=True, color="color(33)"),
    "output": Style(bold=True, color="color(170)"),
    "cross": Style(bold=True, color="color(37)"),
    "obscure": Style(bold=True, color="color(244)"),
}


def act_style(act: float, scale: float) -> Style | None:
    """Background for one token's activation (None when it does not fire)."""
    if not act > 0 or not scale > 0 or not math.isfinite(act):
        return None
    level = min(len(RAMP) - 1, int(min(act / scale, 1.0) * len(RAMP) - 1e-9))
    return Style(color="color(16)", bgcolor=f"color({RAMP[max(level, 0)]})")
