"""The modal prompt for one line of text (gold label, note, flag) or a feature index."""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.validation import Integer
from textual.widgets import Input, Static


class TextPrompt(ModalScreen[str | None]):
    """Ask for one line of text; Enter returns it, Escape returns None."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]
    AUTO_FOCUS = "#prompt-input"   # focused once composed (never queried before it exists)

    def __init__(self, title: str, hint: str = "", *, value: str = "", integer: bool = False):
        super().__init__()
        self.title_text, self.hint, self.value, self.integer = title, hint, value, integer

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal-frame"):   # styled in modals.tcss
            yield Static(Text(self.title_text, style="bold"))
            yield Input(value=self.value, id="prompt-input",
                        validators=[Integer(minimum=0)] if self.integer else [],
                        type="integer" if self.integer else "text")
            enter = "go" if self.integer else "save"
            yield Static(Text(f"{self.hint}  enter: {enter} · escape: cancel", style="dim"))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if self.integer and not text.isdigit():
            event.input.add_class("-invalid")
            return
        self.dismiss(text or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
