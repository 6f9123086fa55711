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
