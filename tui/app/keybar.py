"""The footer: every binding of the feature screen, wrapped over as many lines as the
terminal width needs (Textual's one-line Footer cuts most of them off at 80 columns)."""
from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.widgets import Static

from . import theme

def key_name(binding: Binding) -> str:
    """How the key bar and the help name a binding's key: its ``key_display`` (the bindings
    say it, tui/app/screen.py), else the key itself."""
    return binding.key_display or binding.key


def keybar_items(bindings: list[Binding]) -> list[tuple[str, str]]:
    """``[("?", "help"), ("i/o/c/u", "tier"), ...]``: one item per action or binding group."""
    items: list[tuple[list[str], str]] = []
    groups: dict[object, int] = {}
    for b in bindings:
        if not b.show:
            continue
        if b.group is not None:
            if b.group in groups:
                items[groups[b.group]][0].append(key_name(b))
                continue
            groups[b.group] = len(items)
            items.append(([key_name(b)], b.group.description))
        else:
            items.append(([key_name(b)], b.description))
    return [("/".join(keys), desc) for keys, desc in items]


def keybar_text(bindings: list[Binding], width: int = 80) -> Text:
    """The items packed greedily into lines of ``width`` cells (never split inside one)."""
    t = Text(no_wrap=True, overflow="ellipsis")
    used = 0
    for keys, desc in keybar_items(bindings):
        size = len(keys) + 1 + len(desc)
        if used and used + 2 + size > width:
            t.append("\n")
            used = 0
        elif used:
            t.append("  ")
            used += 2
        t.append(keys, theme.STYLE_KEY)
        t.append(" " + desc)
        used += size
    return t


class KeyBar(Static):
    DEFAULT_CSS = """
    KeyBar { dock: bottom; height: auto; padding: 0 1; background: $footer-background;
             color: $footer-foreground; }
    """

    def __init__(self, bindings: list[Binding], **kw):
        super().__init__(keybar_text(bindings), **kw)
        self.bindings_list = bindings

    def on_resize(self) -> None:
        self.update(keybar_text(self.bindings_list, max(20, self.content_size.width)))
