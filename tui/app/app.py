"""The Textual annotation app."""
from __future__ import annotations

import gc
from collections.abc import Callable

from textual.app import App

from store.db import Project

from . import guidelines
from .help import HelpScreen
from .screen import BINDINGS, FeatureScreen, clock_now
from .session import QueueFinished, Session


class AnnotateApp(App[None]):
    """``saegold annotate``: one annotator (or a lead reviewing disagreements)."""

    TITLE = "saegold annotate"
    ENABLE_COMMAND_PALETTE = False

    def __init__(self, project: Project, annotator: str, *, lead: bool = False,
                 intro: bool | None = None, login: str | None = None,
                 wallclock: Callable[[], str] = clock_now, session: Session | None = None,
                 notice: str | None = None):
        super().__init__()
        self.project = project
        self.session = session or Session(project, annotator, lead=lead, login=login)
        self.session.start()  # raises QueueFinished when there is nothing to judge
        self.guidelines, self.guidelines_warning = guidelines.load(project)
        self.intro = (self.session.done_count == 0 and self.session.judgment is None) if intro is None else intro
        self.wallclock = wallclock
        self.notice = notice  # shown at the top of the intro (the demo says what it is)

    def on_mount(self) -> None:
        self.push_screen(FeatureScreen(self.session, wallclock=self.wallclock))
        if self.intro:
            self.push_screen(HelpScreen(BINDINGS, self.guidelines, intro=True,
                                        warning=self.guidelines_warning, notice=self.notice))
        # Everything built so far (modules, widgets, styles) lives as long as the app: move it
        # out of the collector's view, so its full collections, which otherwise land on a
        # keypress every 30-odd presses at 35-40 ms, only walk what the session creates.
        gc.freeze()

    def action_show_help(self) -> None:
        self.push_screen(HelpScreen(BINDINGS, self.guidelines, warning=self.guidelines_warning))


__all__ = ["AnnotateApp", "QueueFinished", "Session"]
