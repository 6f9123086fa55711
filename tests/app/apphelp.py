"""Helpers for driving the app headless in tests."""
from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Callable, Iterable

from rich.cells import cell_len

from saegold.store.judgments import events
from saegold.tui.app.app import AnnotateApp
from saegold.tui.app.session import Session


def fixed_clock() -> float:
    return 1000.0


def make_app(project, annotator: str = "alice", *, lead: bool = False, intro: bool = False,
             clock: Callable[[], float] = fixed_clock) -> AnnotateApp:
    session = Session(project, annotator, lead=lead, login="tester", clock=clock)
    return AnnotateApp(project, annotator, lead=lead, intro=intro, session=session,
                       wallclock=lambda: "12:00:00")


# A text cell of the SVG screenshot (Rich's Console.export_svg): its x (column x the cell width)
# and the clip path of its line (row y).
_TEXT = re.compile(r'<text [^>]*?x="([^"]+)"[^>]*?clip-path="url\(#[^")]*-line-(\d+)\)"[^>]*>(.*?)</text>', re.S)
_CELL_WIDTH = 20 * 0.61          # Rich's export_svg: char_height 20, font_aspect_ratio 0.61


def screen_text(app: AnnotateApp) -> str:
    """What the terminal shows right now, as plain text: read from Textual's public SVG
    screenshot (``App.export_screenshot``), each text run placed at its column on its line."""
    width, height = app.size
    rows: list[list[tuple[int, str]]] = [[] for _ in range(height)]
    for x, line, text in _TEXT.findall(app.export_screenshot()):
        if int(line) < height:
            text = html.unescape(text).replace("\xa0", " ").replace("\n", "")
            rows[int(line)].append((round(float(x) / _CELL_WIDTH), text))
    out = []
    for runs in rows:
        line, used = "", 0
        for col, text in sorted(runs):
            if col > used:
                line += " " * (col - used)
                used = col
            line += text
            used += cell_len(text)
        out.append(line + " " * max(0, width - used))
    return "\n".join(out) + "\n"


def drive(app: AnnotateApp, keys: Iterable[str] = (), *, size=(120, 40),
          after: Callable[[AnnotateApp], object] | None = None):
    """Run the app headless, press ``keys`` (a string item longer than one char that is
    not a key name is typed character by character), return ``after(app)``."""
    async def go():
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            for k in keys:
                if k.startswith("type:"):
                    await pilot.press(*list(k[5:]))
                else:
                    await pilot.press(k)
                await settle(app, pilot)
            await app.workers.wait_for_complete()  # background queue top-ups, then their repaint
            await pilot.pause()
            return after(app) if after else None
    return asyncio.run(go())


async def settle(app: AnnotateApp, pilot, limit_s: float = 60.0) -> None:
    """Wait until the screen shows the outcome of the last key's write, as an annotator
    would before the next key: on a loaded machine a write can outlast the app's grace
    time, and keys typed at a 'saving… waiting' screen are dropped by design."""
    await pilot.pause()
    waited = 0.0
    while any(getattr(s, "waiting", None) is not None for s in app.screen_stack) and waited < limit_s:
        await pilot.pause(0.05)
        waited += 0.05
    await pilot.pause()


def my_events(project, annotator: str = "alice") -> list[dict]:
    return events(project, annotator=annotator)
