"""Helpers for driving the app headless in tests."""
from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Iterable

from rich.console import Console

from store.judgments import events
from tui.app.app import AnnotateApp
from tui.app.session import Session


def fixed_clock() -> float:
    return 1000.0


def make_app(project, annotator: str = "alice", *, lead: bool = False, intro: bool = False,
             clock: Callable[[], float] = fixed_clock) -> AnnotateApp:
    session = Session(project, annotator, lead=lead, login="tester", clock=clock)
    return AnnotateApp(project, annotator, lead=lead, intro=intro, session=session,
                       wallclock=lambda: "12:00:00")


def screen_text(app: AnnotateApp) -> str:
    """What the terminal shows right now, as plain text."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True,
                      color_system="truecolor", record=True, legacy_windows=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()


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
                await pilot.pause()
            await app.workers.wait_for_complete()  # background queue top-ups, then their repaint
            await pilot.pause()
            return after(app) if after else None
    return asyncio.run(go())


def my_events(project, annotator: str = "alice") -> list[dict]:
    return events(project, annotator=annotator)
