"""The feature screen: evidence on top, candidate labels and the judgment below, keys in the
footer.  Every judging key writes one event through the session and shows "saved" only after
the write returned."""
from __future__ import annotations

import datetime as _dt
from collections.abc import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from store.errors import SaegoldError

from ..safe import inert_line
from . import render, theme
from .keybar import KeyBar
from .modals import TextPrompt
from .session import QueueFinished, Saved, Session

QUOTES = "'\""   # a LookupError's message comes quoted (KeyError's repr)
TIER = Binding.Group("tier", compact=False)
CONF = Binding.Group("confidence", compact=False)
SELECT = Binding.Group("label", compact=False)
VERDICT = Binding.Group("verdict", compact=False)
PREFER = Binding.Group("prefer", compact=False)
MOVE = Binding.Group("feature", compact=False)
SCROLL = Binding.Group("scroll", compact=False)

BINDINGS = [
    Binding("question_mark", "help", "help", key_display="?"),
    Binding("q", "quit", "quit"),
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
    Binding("right", "next", "next", group=MOVE),
    Binding("left", "previous", "back", group=MOVE),
    Binding("e", "gold_label", "own label"),
    Binding("z", "undo", "undo"),
    Binding("s", "skip", "skip"),
    Binding("f", "flag", "flag"),
    Binding("t", "note", "note"),
    Binding("m", "more", "more"),
    # On a small terminal the output evidence lies below the examples: page to it.
    Binding("pagedown", "scroll_body(1)", "down", group=SCROLL, key_display="PgDn"),
    Binding("pageup", "scroll_body(-1)", "up", group=SCROLL, key_display="PgUp"),
    Binding("g", "jump", "jump"),
    Binding("a", "agreement", "agreement"),
]


def clock_now() -> str:
    return _dt.datetime.now().strftime("%H:%M:%S")


class FeatureScreen(Screen[None]):
    DEFAULT_CSS = """
    FeatureScreen { layout: vertical; }
    #header { height: 1; background: $boost; }
    #body { height: 1fr; padding: 0 1; }
    #candidates { height: auto; max-height: 45%; padding: 0 1; border-top: solid $primary; }
    #judgment { height: auto; padding: 0 1; }
    #status { height: 1; padding: 0 1; background: $boost; }
    .hidden { display: none; }
    """
    BINDINGS = BINDINGS
    AUTO_FOCUS = "#body"

    def __init__(self, session: Session, *, wallclock: Callable[[], str] = clock_now):
        super().__init__()
        self.session = session
        self.wallclock = wallclock
        self.expanded = False
        self._refilling = False  # a background batch assignment is in flight
        self.status: Text = self._arrival_status()

    def compose(self) -> ComposeResult:
        yield Static(id="header")
        with VerticalScroll(id="body"):
            yield Static(id="machine")
            # a lead reviews disagreements: what each annotator said comes first
            yield Static(id="others").set_class(not self.session.lead, "hidden")
            yield Static(id="examples")
            yield Static(id="evidence")
        yield Static(id="candidates")
        yield Static(id="judgment")
        yield Static(id="status")
        yield KeyBar(self.BINDINGS)

    def on_mount(self) -> None:
        self.refresh_all()

    # -- drawing -----------------------------------------------------------------------
    def refresh_all(self) -> None:
        """Redraw everything (a new feature), in one screen update."""
        s = self.session
        with self.app.batch_update():
            if s.view is not None:
                self._draw_examples()
                self.query_one("#evidence", Static).update(render.evidence(s.view))
            self.query_one("#others", Static).update(render.others(s))
            self.refresh_judgment()

    def refresh_judgment(self) -> None:
        """Redraw what a judgment changes: header, machine view, candidates, status."""
        s = self.session
        with self.app.batch_update():
            self.query_one("#header", Static).update(render.header(s))
            self.query_one("#machine", Static).update(render.machine(s))
            self.query_one("#candidates", Static).update(render.candidates(s))
            self.query_one("#judgment", Static).update(render.judgment(s))
            self.query_one("#status", Static).update(self.status)

    def _saved(self, saved: Saved | None, otherwise: str = "") -> None:
        if saved is None:
            self._say(otherwise, error=False)
            return
        t = Text()
        t.append(f"✓ saved #{self.session.saved_count} {self.wallclock()} ", theme.STYLE_SAVED)
        t.append(inert_line(saved.description))
        self.status = t
        self.refresh_judgment()

    def _say(self, message: str, *, error: bool) -> None:
        self.status = Text(inert_line(message), style=theme.STYLE_ERROR if error else theme.STYLE_DIM)
        self.refresh_judgment()

    def _write(self, fn: Callable[[], Saved | None], otherwise: str = "") -> None:
        """Run one write; on failure say that NOTHING was saved."""
        try:
            saved = fn()
        except (SaegoldError, ValueError) as exc:
            self._say(f"NOT saved: {exc}", error=True)
            return
        self._saved(saved, otherwise)
        self._maybe_refill()

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
        self._refilling = False
        if n is not None:
            self.session.absorb_assignments(n)
        self.query_one("#header", Static).update(render.header(self.session))

    def _arrival_status(self) -> Text:
        j = self.session.judgment
        if j is None:
            return Text("nothing written yet for this feature", style="dim")
        return Text("your earlier judgment of this feature is shown (saved); keys add to it", style="dim")

    def _moved(self) -> None:
        self.status = self._arrival_status()
        with self.app.batch_update():
            self.query_one("#body", VerticalScroll).scroll_home(animate=False)
            self.refresh_all()
        self._maybe_refill()

    # -- actions -----------------------------------------------------------------------
    def action_tier(self, tier: str) -> None:
        self._write(lambda: self.session.set_tier(tier))

    def action_confidence(self, confidence: int) -> None:
        self._write(lambda: self.session.set_confidence(confidence),
                    f"confidence {confidence} will be saved with the tier (press i / o / c / u)")

    def action_select(self, step: int) -> None:
        self.session.select(step)
        self.refresh_judgment()

    def action_verdict(self, value: str) -> None:
        self._write(lambda: self.session.verdict(value), "no candidate label to judge here")

    def action_prefer(self) -> None:
        self._write(self.session.prefer, "no candidate label to prefer")

    def action_prefer_neither(self) -> None:
        self._write(self.session.prefer_neither)

    def action_skip(self) -> None:
        """Skip this feature (saved) and go on to the next one still to do."""
        idx = self.session.view.idx if self.session.view is not None else None
        written = self.session.saved_count
        self._write(self.session.skip)
        if self.session.saved_count == written:
            # Not saved: stay, the error is shown.  (Not read off the judgment: a feature
            # skipped before is still skipped after a failed write.)
            return
        saved, pos = self.status, self.session.pos
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
        self.status = saved.copy()
        self.status.append(f"  (#{idx}; {back} to it, z there undoes)", theme.STYLE_DIM)
        self.refresh_judgment()

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

    def _draw_examples(self) -> None:
        """Top examples: 5 on a small terminal, more when there are rows to spare."""
        if self.session.view is not None:
            rows = self.size.height or 24
            n = 5 if rows < 30 else min(15, 5 + (rows - 30) // 2)
            self.query_one("#examples", Static).update(
                render.examples(self.session.view, expanded=self.expanded, n_default=n))

    def on_resize(self) -> None:
        self._draw_examples()

    def action_more(self) -> None:
        self.expanded = not self.expanded
        self._draw_examples()

    def action_scroll_body(self, pages: int) -> None:
        body = self.query_one("#body", VerticalScroll)
        if pages > 0:
            body.scroll_page_down(animate=False)
        else:
            body.scroll_page_up(animate=False)

    def action_agreement(self) -> None:
        from .agreement import AgreementScreen
        self.app.push_screen(AgreementScreen(self.session.project))

    def action_help(self) -> None:
        self.app.action_show_help()

    async def action_quit(self) -> None:
        self.app.exit()
