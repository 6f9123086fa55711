"""The Textual annotation app."""
from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import os
import signal
import threading
from collections.abc import Callable

from textual import events
from textual.app import App
from textual.binding import Binding

from saegold.store.db import Project
from saegold.store.errors import SaegoldError

from ..safe import inert_line
from . import guidelines
from .screen import BINDINGS, FeatureScreen, clock_now
from .session import QueueFinished, Session


class AnnotateApp(App[None]):
    """``saegold annotate``: one annotator (or a lead reviewing disagreements)."""

    TITLE = "saegold annotate"
    CSS_PATH = "modals.tcss"     # the modal screens' shared frame (shipped as package data)
    ENABLE_COMMAND_PALETTE = False
    # Ctrl+C quits here as it stops every other saegold command (exit status 130): every
    # judgment is saved when its key is pressed, so nothing is lost.  Priority: also from
    # a prompt, whose input would otherwise take it as "copy".
    BINDINGS = [Binding("ctrl+c", "interrupt", show=False, priority=True)]

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
        self.exit_note: str | None = None  # what became of a write given up by quitting
        self.feature_screen: FeatureScreen | None = None
        self.weights_thread: threading.Thread | None = None   # refreshing the active queue's weights
        self.weights_note: str | None = None   # what that refresh said

    def on_mount(self) -> None:
        self.feature_screen = FeatureScreen(self.session, wallclock=self.wallclock)
        self.push_screen(self.feature_screen)
        if self.intro:
            from .help import HelpScreen   # its Markdown widget is a tenth of a second of imports: when shown
            self.push_screen(HelpScreen(BINDINGS, self.guidelines, intro=True,
                                        warning=self.guidelines_warning, notice=self.notice))
        # A dropped SSH connection (SIGHUP) or a kill (SIGTERM) releases the annotator's
        # leases before the process ends of that signal, as it did before (store.queue).
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGHUP, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._ended_by, sig)
        self._refresh_active_weights()
        # Everything built so far (modules, widgets, styles) lives as long as the app: move it
        # out of the collector's view, so its full collections, which otherwise land on a
        # keypress every 30-odd presses at 35-40 ms, only walk what the session creates.
        gc.freeze()

    # -- input after quitting, or while a write waits ------------------------------------
    async def on_event(self, event: events.Event) -> None:
        # Keys typed after quitting (the app takes a moment to shut down) are dropped: they
        # would otherwise act, and write judgments, on a screen that is going away.
        if self._exit and isinstance(event, (events.InputEvent, events.Paste)):
            return
        await super().on_event(event)

    def on_key(self, event: events.Key) -> None:
        """Every key reaches here before its binding runs (bindings are the app's to run):
        drop it when quitting has begun, or when the feature screen says it was typed at a
        screen that was waiting for a write (see :meth:`FeatureScreen.drops`)."""
        screen = self.feature_screen
        if self._exit or (screen is not None and screen.is_attached and screen.drops(event)):
            event.prevent_default()
            event.stop()

    async def action_quit(self, return_code: int = 0) -> None:
        if self.feature_screen is not None:
            self.exit_note = self.feature_screen.settle_for_quit()
        self.exit(return_code=return_code)

    async def action_interrupt(self) -> None:
        await self.action_quit(130)

    def farewell(self, command: str) -> str:
        """The line the command prints once the app has closed."""
        s = self.session
        line = (f"saegold {command}: {inert_line(s.annotator)}: {s.done_count}/{s.assigned_count} "
                "features done; every saved judgment is in the project")
        if self.return_code == 130:
            line += " (stopped with Ctrl+C)"
        if self.exit_note:
            line += f"; {inert_line(self.exit_note)}"
        return line

    def on_unmount(self) -> None:
        """However the app ends (quit, an error), release the annotator's leases
        (store.queue) before the terminal is restored; what they judged stays theirs."""
        with contextlib.suppress(SaegoldError):  # expiry releases them if this cannot
            self.session.close()

    def _ended_by(self, sig: signal.Signals) -> None:
        with contextlib.suppress(Exception):  # expiry releases them if this cannot
            self.session.close()
        # End of the signal as before: a hang-up is no clean exit (the terminal is gone).
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)

    # -- the active queue's sampling weights -------------------------------------------------
    def _refresh_active_weights(self) -> None:
        """In ``queue_order = active``, recompute the sampling weights when they are missing or
        stale (store.queue.active_weights_state), in the background: a thread checks (a few
        counts) and runs ``saegold queue --refresh-active --if-stale`` as a separate process (the
        statistics' imports and computation stay out of this process, so keys keep their pace),
        then says so in a notification.  The draws made meanwhile use the weights there were
        (each records its probability, so the estimates stay right); later top-ups use the new
        ones.  Daemon thread and own session: quitting neither waits for it nor stops it."""
        from saegold.store import settings

        if self.session.lead or settings.load(self.project).queue_order != "active":
            return
        self.weights_thread = threading.Thread(target=self._weights_worker, args=(asyncio.get_running_loop(),),
                                               name="saegold-active-weights", daemon=True)
        self.weights_thread.start()

    def _weights_worker(self, loop: asyncio.AbstractEventLoop) -> None:
        import json
        import subprocess
        import sys

        from saegold.store import queue as sq

        try:
            state = sq.active_weights_state(self.project).state
        except SaegoldError:
            return
        finally:
            self.project.close_thread()
        if state == "fresh":
            return
        cmd = [sys.executable, "-m", "saegold.tui.cli", "--db", str(self.project.path), "queue", "--refresh-active",
               "--if-stale", "--json"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, start_new_session=True, check=False)
            if done.returncode == 0:
                note = json.loads(done.stdout)["released"]["active_weights_refresh"]["line"]
            else:
                why = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
                note = f"active queue: sampling weights not refreshed ({why})"
        except (OSError, ValueError, KeyError) as exc:
            note = f"active queue: sampling weights not refreshed ({exc})"
        self.weights_note = note
        # Not call_from_thread: that waits for the app's loop, which may be ending (or waiting).
        with contextlib.suppress(RuntimeError):   # the loop closed: the app has ended meanwhile
            loop.call_soon_threadsafe(functools.partial(self.notify, inert_line(note), title="saegold",
                                                        markup=False, timeout=8))

    def action_show_help(self) -> None:
        from .help import HelpScreen
        self.push_screen(HelpScreen(BINDINGS, self.guidelines, warning=self.guidelines_warning))


__all__ = ["AnnotateApp", "QueueFinished", "Session"]
