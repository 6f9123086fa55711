"""The feature screen: evidence on top, candidate labels and the judgment below, keys in the
footer.  Every judging key writes one event through the session and shows "saved" only after
the write returned."""
from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, cast

from rich.text import Text
from textual import _time, events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.reactive import reactive
from textual.screen import Screen
from textual.timer import Timer

from saegold.store.errors import Locked, SaegoldError

from ..safe import inert_line
from . import theme
from .keybar import KeyBar
from .panes import (CandidatesPane, EvidencePane, ExamplesPane, HeaderPane, JudgmentPane, MachinePane,
                    OthersPane, Pane, QuantilesPane, StatusPane)
from .modals import TextPrompt
from .session import QueueFinished, Saved, Session

if TYPE_CHECKING:
    from .app import AnnotateApp

QUOTES = "'\""   # a LookupError's message comes quoted (KeyError's repr)
# A write that takes longer than this (another process holds the project's write lock) is
# shown as waiting, and keys typed until its outcome is on screen are dropped.  Shorter is
# ordinary typing ahead: nobody sees a screen frozen for a tenth of a second.
GRACE_S = 0.15
# The writer thread's connection waits for a lock in slices this long, so that quitting
# can give up a waiting write (SQLite cannot interrupt a busy wait).
LOCK_SLICE_MS = 250
QUIT_KEYS = ("q", "ctrl+c", "ctrl+q")
WIDE = 100   # from this many columns the examples and the output evidence sit side by side


@dataclass
class Waiting:
    """A write in flight on the writer thread that outlasted ``GRACE_S``."""

    since: float
    future: Future
    timer: Timer | None = None
TIER = Binding.Group("tier", compact=False)
CONF = Binding.Group("confidence", compact=False)
SELECT = Binding.Group("label", compact=False)
VERDICT = Binding.Group("verdict", compact=False)
PREFER = Binding.Group("prefer", compact=False)
MOVE = Binding.Group("feature", compact=False)
SCROLL = Binding.Group("scroll", compact=False)

BINDINGS = [
    Binding("question_mark", "help", "help", key_display="?"),
    Binding("q", "app.quit", "quit"),
    Binding("i", "tier('input')", "input", group=TIER),
    Binding("o", "tier('output')", "output", group=TIER),
    Binding("c", "tier('cross')", "cross", group=TIER),
    Binding("u", "tier('obscure')", "obscure", group=TIER),
    Binding("1", "confidence(1)", "guess", group=CONF),
    Binding("2", "confidence(2)", "fairly sure", group=CONF),
    Binding("3", "confidence(3)", "sure", group=CONF),
    Binding("tab", "select(1)", "next", group=SELECT, key_display="tab"),
    Binding("shift+tab", "select(-1)", "previous", group=SELECT, key_display="⇧tab"),
    Binding("y", "verdict('correct')", "correct", group=VERDICT),
    Binding("p", "verdict('partly')", "partly", group=VERDICT),
    Binding("w", "verdict('wrong')", "wrong", group=VERDICT),
    Binding("v", "prefer", "selected", group=PREFER),
    Binding("0", "prefer_neither", "neither", group=PREFER),
    Binding("n", "next", "next", group=MOVE),
    Binding("b", "previous", "back", group=MOVE),
    Binding("right", "next", "next", group=MOVE, key_display="→"),
    Binding("left", "previous", "back", group=MOVE, key_display="←"),
    Binding("e", "gold_label", "own label"),
    Binding("z", "undo", "undo"),
    Binding("s", "skip", "skip"),
    Binding("f", "flag", "flag"),
    Binding("t", "note", "note"),
    Binding("m", "more", "more"),
    # "more" (m) scrolls: every example with its full context, and the full output evidence.
    Binding("pagedown", "scroll_body(1)", "down", group=SCROLL, key_display="PgDn"),
    Binding("pageup", "scroll_body(-1)", "up", group=SCROLL, key_display="PgUp"),
    Binding("g", "jump", "jump"),
    Binding("a", "agreement", "agreement"),
]


def clock_now() -> str:
    return _dt.datetime.now().strftime("%H:%M:%S")


class FeatureScreen(Screen[None]):
    """The feature screen.  Its panes (:mod:`tui.app.panes`) draw themselves from the
    session: whatever changes the session (a key, a write on the writer thread, a top-up)
    tells the screen, which has every pane bring itself up to date (:meth:`sync`).  Its
    own view state is two reactives: the status line and whether "more" is open."""

    DEFAULT_CSS = """
    FeatureScreen { layout: vertical; }
    #header { height: 1; background: $boost; }
    #body { height: 1fr; padding: 0 1; }
    #sides { height: 1fr; }
    #examples { width: 1fr; height: 1fr; }
    #evidence { width: 42%; height: 1fr; padding-left: 2; }
    #sides.-narrow { layout: vertical; }
    #sides.-narrow #examples { width: 100%; height: 1fr; }
    #sides.-narrow #evidence { width: 100%; height: auto; padding-left: 0; }
    #more { height: 1fr; padding: 0 1; }
    #more > Static { height: auto; }
    #more-examples, #more-quantiles { margin-top: 1; }
    #candidates { height: auto; max-height: 45%; padding: 0 1; border-top: solid $primary; }
    #judgment { height: auto; padding: 0 1; }
    #status { height: auto; max-height: 3; padding: 0 1; background: $boost; }
    .hidden { display: none; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [*BINDINGS]   # Textual's type; the same keys
    AUTO_FOCUS = None

    status: reactive[Text] = reactive(Text, init=False)     # what the last key did
    expanded: reactive[bool] = reactive(False, init=False)  # "more" (m) is open

    def __init__(self, session: Session, *, wallclock: Callable[[], str] = clock_now):
        super().__init__()
        self.session = session
        self.wallclock = wallclock
        self._refilling = False  # a background batch assignment is in flight
        self.set_reactive(FeatureScreen.status, self._arrival_status())
        # Every write runs on one writer thread (its own connection), so that a write that
        # waits for another process's lock never freezes the screen.
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="saegold-writer",
                                         initializer=session.project.set_busy_timeout,
                                         initargs=(LOCK_SLICE_MS,))
        self.waiting: Waiting | None = None
        self.drop_before: float | None = None   # keys typed before this were typed at a waiting screen
        self.dropped = 0                         # keys dropped since the last write began to wait
        self.outcome: Text | None = None         # the waited-for write's outcome line
        self._absorb_later: tuple[int | None] | None = None   # a top-up that came back while a write waited
        self._sync_posted = False                # a sync is queued on the screen
        self._loop_thread: int | None = None     # the thread the screen runs on, once mounted
        session.subscribe(self._session_changed)

    def compose(self) -> ComposeResult:
        s = self.session
        yield HeaderPane(s, id="header")
        # The first screen: both sides of the tier at once, fitted to the terminal (examples
        # cut to one line each, the output evidence compact below them, or beside them from
        # WIDE columns); m (or PgDn) opens "more": everything, scrolled.
        with Vertical(id="body"):
            yield MachinePane(s, id="machine")
            # a lead reviews disagreements: what each annotator said comes first
            yield OthersPane(s, id="others").set_class(not s.lead, "hidden")
            with Horizontal(id="sides"):
                yield ExamplesPane(s, id="examples")
                yield EvidencePane(s, id="evidence", fit_from=WIDE)
        with VerticalScroll(id="more", classes="hidden"):
            yield EvidencePane(s, id="more-evidence", full=True)
            yield ExamplesPane(s, id="more-examples", full=True)
            yield QuantilesPane(s, id="more-quantiles")
        yield CandidatesPane(s, id="candidates")
        yield JudgmentPane(s, id="judgment")
        yield StatusPane(s, self.status, id="status")
        yield KeyBar(BINDINGS)

    def on_mount(self) -> None:
        panes = {p.id: p for p in self.query(Pane)}
        common = [panes[k] for k in ("header", "candidates", "judgment", "status")]
        # the panes each view shows: "more" replaces the body (hidden panes are not drawn)
        self._panes = {False: common + [panes[k] for k in ("machine", "others", "examples", "evidence")],
                       True: common + [panes["more-evidence"], panes["more-examples"], panes["more-quantiles"]]}
        self._loop_thread = threading.get_ident()
        self.sync()

    # -- drawing -----------------------------------------------------------------------
    def _session_changed(self) -> None:
        """The session changed: bring the panes up to date.  On the screen's own thread at
        once (so the change is in the same frame as the key's other effects, not one frame
        later); from another thread (the writer), once, on the screen's message loop."""
        if self._loop_thread is None:
            return                    # not mounted yet: on_mount draws everything
        if threading.get_ident() == self._loop_thread:
            self.sync()
        elif not self._sync_posted:
            self._sync_posted = True
            self.call_later(self.sync)

    def sync(self) -> None:
        """Every shown pane brings itself up to date from the session (those whose content
        did not change do nothing), in one screen update.  Not while a write waits: the
        session is the writer thread's until it ends (:meth:`_waited` syncs then)."""
        self._sync_posted = False
        if self.waiting is not None or not self.is_attached:
            return
        with self.app.batch_update():
            for pane in self._panes[self.expanded]:
                pane.sync()

    def watch_status(self, status: Text) -> None:
        self.query_one("#status", StatusPane).show(status)

    def watch_expanded(self, expanded: bool) -> None:
        more = self.query_one("#more", VerticalScroll)
        with self.app.batch_update():
            self.query_one("#body").set_class(expanded, "hidden")
            more.set_class(not expanded, "hidden")
            self.sync()
            more.scroll_home(animate=False)
        if expanded:
            more.focus()
        else:
            self.set_focus(None)

    def _saved(self, saved: Saved | None, otherwise: str = "") -> None:
        if saved is None:
            self._say(otherwise, error=False)
            return
        t = Text()
        t.append(f"✓ saved #{self.session.saved_count} {self.wallclock()} ", theme.STYLE_SAVED)
        t.append(inert_line(saved.description))
        self.status = t

    def _say(self, message: str, *, error: bool) -> None:
        self.status = Text(inert_line(message), style=theme.STYLE_ERROR if error else theme.STYLE_DIM)

    def _write(self, fn: Callable[[], Saved | None], otherwise: str = "",
               then: Callable[[], None] | None = None) -> None:
        """Run one write on the writer thread; ``then`` runs after it was saved.

        A write that returns within ``GRACE_S`` (every write while no other process holds
        the lock) is shown at once, as if it ran here.  A longer one shows that it waits for
        the project's lock, keeps the screen live, and every key typed before its outcome
        is on screen is dropped (and counted) instead of acting on a screen the annotator
        has not seen.  On failure the status says that NOTHING was saved."""
        if self.app._exit or self.waiting is not None:
            return
        future = self.writer.submit(fn)
        try:
            saved = future.result(timeout=GRACE_S)
        except TimeoutError:
            self._wait_for(future, otherwise, then)
            return
        except (SaegoldError, ValueError) as exc:
            self._say(f"NOT saved: {exc}", error=True)
            return
        self._saved(saved, otherwise)
        if saved is not None and then is not None:
            then()
        self._maybe_refill()

    def _wait_for(self, future: Future, otherwise: str, then: Callable[[], None] | None) -> None:
        loop = asyncio.get_running_loop()
        self.waiting = Waiting(time.monotonic(), future)
        self.dropped = 0
        self._show_waiting()
        self.waiting.timer = self.set_interval(1.0, self._show_waiting)

        def finished(f: Future) -> None:   # on the writer thread
            with contextlib.suppress(RuntimeError):   # the app (and its loop) already ended
                loop.call_soon_threadsafe(self._waited, f, otherwise, then)
        future.add_done_callback(finished)

    def _show_waiting(self) -> None:
        """Only the status line: the session is the writer thread's until the write ends."""
        if self.waiting is None:
            return
        secs = int(time.monotonic() - self.waiting.since)
        t = Text(f"saving… waiting for the project lock (another process is writing; {secs} s). "
                 "Keys typed now are dropped, not saved; q quits", style=theme.STYLE_WAIT)
        if self.dropped:
            t.append(f"  ({self.dropped} dropped)", theme.STYLE_DIM)
        self.status = t

    def _waited(self, future: Future, otherwise: str, then: Callable[[], None] | None) -> None:
        """The write that waited ended: show its outcome; keys typed before now were typed
        at the waiting screen, so they are dropped too (see :meth:`drops`)."""
        if self.waiting is None or not self.is_attached:
            return
        waited = time.monotonic() - self.waiting.since
        if self.waiting.timer is not None:
            self.waiting.timer.stop()
        self.waiting = None
        self.drop_before = _time.get_time()
        try:
            saved = future.result()
        except Locked:
            self._say(f"NOT saved: another process held the project's write lock for {waited:.0f} s "
                      "(press the key again to retry)", error=True)
        except (SaegoldError, ValueError) as exc:
            self._say(f"NOT saved: {exc} (waited {waited:.0f} s)", error=True)
        else:
            self._saved(saved, otherwise)
            if saved is not None and then is not None:
                then()
            self._maybe_refill()
        self.outcome = self.status.copy()
        self._note_dropped()
        if self._absorb_later is not None:
            (n,), self._absorb_later = self._absorb_later, None
            self._absorb(n)
        self.sync()   # what the session became while the write had it

    def _note_dropped(self) -> None:
        if self.dropped and self.outcome is not None:
            status = self.outcome.copy()
            status.append(f"  — {self.dropped} key(s) typed while it waited were dropped: "
                          "nothing of them was written", theme.STYLE_ERROR)
            self.status = status

    def drops(self, event: events.Key) -> bool:
        """Is this key dropped?  While a write waits for the lock, and for keys typed before
        its outcome was shown; quitting is always let through."""
        if self.waiting is None and (self.drop_before is None or event.time >= self.drop_before):
            return False
        if event.key in QUIT_KEYS:
            return False
        self.dropped += 1
        if self.waiting is not None:
            self._show_waiting()
        else:
            self._note_dropped()
        return True

    def settle_for_quit(self) -> str | None:
        """Quitting while a write waits: give it up and say what became of it (the writer
        stops waiting within one slice of its busy timeout)."""
        if self.waiting is None:
            return None
        self.session.abandon.set()
        future = self.waiting.future
        try:
            saved = future.result(timeout=LOCK_SLICE_MS / 1000 * 4 + 5)
        except (SaegoldError, ValueError, TimeoutError) as exc:
            return f"your last key was NOT saved: {exc}"
        return f"your last key was saved after all ({saved.description})" if saved else None

    def _maybe_refill(self) -> None:
        """Assign the next batch in a thread worker (its own connection) before the queue
        runs dry, so no keypress waits for it."""
        if self.session.wants_refill and not self._refilling:
            self._refilling = True
            self.run_worker(self._refill_worker, thread=True, group="refill")

    def _refill_worker(self) -> None:
        try:
            n = self.session.assign_batch()
        except SaegoldError:
            n = None  # the synchronous path at the end of the queue will try again and say why
        finally:
            self.session.project.close_thread()   # each top-up is a new thread: no connection left behind
        self.app.call_from_thread(self._absorb, n)

    def _absorb(self, n: int | None) -> None:
        if self.waiting is not None:     # the writer thread has the session: later
            self._absorb_later = (n,)
            return
        self._refilling = False
        if n is not None:
            self.session.absorb_assignments(n)

    def _arrival_status(self) -> Text:
        j = self.session.judgment
        if j is None:
            return Text("nothing written yet for this feature", style="dim")
        return Text("your earlier judgment of this feature is shown (saved); keys add to it", style="dim")

    def _moved(self) -> None:
        self.status = self._arrival_status()
        if self.expanded:      # "more" opens at its top anyway (watch_expanded)
            self.query_one("#more", VerticalScroll).scroll_home(animate=False)
        self._maybe_refill()

    # -- actions -----------------------------------------------------------------------
    def action_tier(self, tier: str) -> None:
        self._write(lambda: self.session.set_tier(tier))

    def action_confidence(self, confidence: int) -> None:
        self._write(lambda: self.session.set_confidence(confidence),
                    f"confidence {confidence} will be saved with the tier (press i / o / c / u)")

    def action_select(self, step: int) -> None:
        self.session.select(step)

    def action_verdict(self, value: str) -> None:
        self._write(lambda: self.session.verdict(value), "no candidate label to judge here")

    def action_prefer(self) -> None:
        self._write(self.session.prefer, "no candidate label to prefer")

    def action_prefer_neither(self) -> None:
        self._write(self.session.prefer_neither)

    def action_skip(self) -> None:
        """Skip this feature (saved) and go on to the next one still to do."""
        idx = self.session.view.idx if self.session.view is not None else None
        pos = self.session.pos
        # Not saved: stay, the error is shown.  (Not read off the judgment: a feature
        # skipped before is still skipped after a failed write.)
        self._write(self.session.skip, then=lambda: self._after_skip(idx, pos))

    def _after_skip(self, idx: int | None, pos: int | None) -> None:
        saved = self.status
        try:
            self.session.next()
        except (QueueFinished, LookupError) as exc:
            self._say(f"skipped #{idx} (saved); {str(exc).strip(QUOTES)}", error=False)
            return
        except SaegoldError as exc:       # e.g. the project stayed locked while the queue was topped up
            self._say(f"skipped #{idx} (saved); could not open the next feature: {exc}", error=True)
            return
        self._moved()
        # b opens the feature before this one: the skipped one only when nothing (done or
        # skipped before) lay between them; else name the key that does reach it.
        back = "b goes back" if pos is not None and self.session.pos == pos + 1 else f"g {idx} goes back"
        status = saved.copy()
        status.append(f"  (#{idx}; {back} to it, z there undoes)", theme.STYLE_DIM)
        self.status = status

    def action_undo(self) -> None:
        self._write(self.session.undo, "nothing of yours to undo on this feature")

    def _ask(self, title: str, hint: str, then: Callable[[str], Saved | None], *, value: str = "") -> None:
        def done(text: str | None) -> None:
            if text:
                self._write(lambda: then(text))
            else:
                self._say("cancelled: nothing written", error=False)
        self.app.push_screen(TextPrompt(title, hint, value=value), done)

    def action_gold_label(self) -> None:
        j = self.session.judgment
        self._ask("Your own label for this feature", "A short description of what it does.",
                  self.session.gold_label, value=(j.gold_label or "") if j else "")

    def action_flag(self) -> None:
        self._ask("Flag this feature: what is wrong?", "e.g. broken examples, tokenizer junk.",
                  self.session.flag)

    def action_note(self) -> None:
        self._ask("Note", "Anything worth keeping about this feature.", self.session.note)

    def _navigate(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except (QueueFinished, LookupError) as exc:
            self._say(str(exc).strip(QUOTES), error=False)
            return
        except SaegoldError as exc:       # e.g. the project stayed locked while the queue was topped up
            self._say(f"could not open the feature: {exc}", error=True)
            return
        self._moved()

    def action_next(self) -> None:
        self._navigate(self.session.next)

    def action_previous(self) -> None:
        self._navigate(self.session.previous)

    def action_jump(self) -> None:
        def done(text: str | None) -> None:
            if text:
                self._navigate(lambda: self.session.jump(int(text)))
            else:
                self._say("jump cancelled", error=False)
        self.app.push_screen(TextPrompt("Jump to feature index", "The feature's index in its SAE.",
                                        integer=True), done)

    def on_resize(self) -> None:
        self.query_one("#sides").set_class(self.size.width < WIDE, "-narrow")
        self.sync()      # the evidence is fitted beside the examples from WIDE columns

    def action_more(self) -> None:
        self.expanded = not self.expanded

    def action_scroll_body(self, pages: int) -> None:
        if not self.expanded:
            if pages > 0:
                self.action_more()
            return
        more = self.query_one("#more", VerticalScroll)
        if pages > 0:
            more.scroll_page_down(animate=False)
        else:
            more.scroll_page_up(animate=False)

    def action_agreement(self) -> None:
        from .agreement import AgreementScreen
        self.app.push_screen(AgreementScreen(self.session.project))

    def action_help(self) -> None:
        cast("AnnotateApp", self.app).action_show_help()

    def on_unmount(self) -> None:
        """Give up a write still waiting for the lock, let the writer thread finish (it
        stops waiting within one slice of its busy timeout), then close its connection.
        Never leave the writer running: the project is closed after the app ends, and a
        connection closed under a running query crashes the process."""
        if self.waiting is not None:
            self.session.abandon.set()
        self.writer.submit(self.session.project.close_thread)
        self.writer.shutdown(wait=True)
