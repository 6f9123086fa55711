"""The in-app agreement screen: the STATS engine's figures, computed in a thread worker
(its own database connection) so the app stays responsive."""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from saegold.store.db import Project

from ..safe import inert_line

N_BOOT = 200  # fewer resamples than `saegold agreement`: a quick look, not the report


class AgreementScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,a,q,enter", "close", "close", show=False),
                Binding("up", "scroll(-1)", show=False), Binding("down", "scroll(1)", show=False),
                Binding("pageup", "scroll(-10)", show=False), Binding("pagedown,space", "scroll(10)", show=False)]

    def __init__(self, project: Project):
        super().__init__()
        self.project = project

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="modal-frame"):   # styled in modals.tcss
            yield Static(Text(f"Agreement between annotators ({N_BOOT} bootstrap resamples; "
                              "`saegold agreement` gives the full report). escape closes.", style="bold"))
            yield Static(Text("computing…", style="dim"), id="agreement-body")

    def on_mount(self) -> None:
        self.run_worker(self._compute, thread=True, exclusive=True)

    def _compute(self) -> None:
        try:
            from saegold.engine.stats.agreement import compute
            from saegold.tui.reports import agreement_renderable

            report = compute(self.project, n_boot=N_BOOT)  # project.db: this worker thread's connection
            # 80 columns: a 16-cell chart leaves the other columns room; wide: the full 30
            body = agreement_renderable(report, bar=30 if self.app.size.width >= 110 else 16)
        except Exception as exc:  # shown, never fatal to the annotation session
            body = Text(f"agreement could not be computed: {inert_line(exc)}", style="bold red")
        self.app.call_from_thread(self._show, body)

    def _show(self, body) -> None:
        if self.is_attached:
            self.query_one("#agreement-body", Static).update(body)

    def action_scroll(self, lines: int) -> None:
        self.query_one(VerticalScroll).scroll_relative(y=lines, animate=False)

    def action_close(self) -> None:
        self.dismiss(None)
