"""The ``?`` help screen and the intro shown before the first feature: every key, then the
annotator guidelines."""
from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown, Static

from .keybar import key_name

INTRO = (
    "Welcome to saegold. Each screen shows one SAE feature: where it fires (top examples, the "
    "strongest token marked ▶) and what it makes the model say (output evidence). You give it a "
    "tier (i input · o output · c cross · u obscure, confidence 1-3) and judge each candidate "
    "label (tab selects; y correct · p partly · w wrong judge the selected label, then select the "
    "next unjudged one). Everything is saved as you press it; "
    "the machine's own answer is revealed when you finish a feature. n: next, ?: help, q (or Ctrl+C): quit."
)


def keys_table(bindings: list[Binding]) -> Table:
    table = Table(show_header=True, header_style="bold", box=None, padding=(0, 2, 0, 0))
    table.add_column("key")
    table.add_column("action")
    seen: dict[str, list[str]] = {}
    order: list[str] = []
    for b in bindings:
        if not b.description:
            continue
        label = b.description if b.group is None else f"{b.group.description}: {b.description}"
        if label not in seen:
            seen[label] = []
            order.append(label)
        seen[label].append(key_name(b))
    for label in order:
        table.add_row(Text(" / ".join(seen[label]), style="bold"), Text(label))
    return table


class HelpScreen(ModalScreen[None]):
    """Keys and guidelines; ``?``, escape, enter or q close it."""

    BINDINGS = [Binding("escape,question_mark,enter,q", "close", "close", show=False),
                Binding("up", "scroll(-1)", show=False), Binding("down", "scroll(1)", show=False),
                Binding("pageup", "scroll(-10)", show=False), Binding("pagedown,space", "scroll(10)", show=False)]

    def __init__(self, bindings: list[Binding], guidelines: str, *, intro: bool = False,
                 warning: str | None = None, notice: str | None = None):
        super().__init__()
        self.notice = notice
        self.bindings_list, self.guidelines, self.intro, self.warning = bindings, guidelines, intro, warning

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="modal-frame"):   # styled in modals.tcss
            if self.intro:
                if self.notice:
                    yield Static(Text(self.notice, style="bold"), classes="intro")
                yield Static(Text(INTRO), classes="intro")
                yield Static(Text("Press enter to start (? shows this again).", style="bold"))
            else:
                yield Static(Text("Keys (escape closes)", style="bold"))
            if self.warning:
                yield Static(Text(self.warning, style="bold red"))
            yield Static(keys_table(self.bindings_list))
            yield Markdown(self.guidelines)

    def action_scroll(self, lines: int) -> None:
        self.query_one(VerticalScroll).scroll_relative(y=lines, animate=False)

    def action_close(self) -> None:
        self.dismiss(None)
