"""Untrusted text made inert for the terminal.

Corpus text, labels and LLM output may hold escape sequences, control characters or Rich
markup.  Everything shown to a user passes through here: control characters become
visible escapes (``\\x1b``), and text is wrapped in :class:`rich.text.Text`, which never
parses markup.
"""
from __future__ import annotations

import unicodedata

from rich.text import Text

_VISIBLE = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escape_char(ch: str) -> str:
    if ch in _VISIBLE:
        return _VISIBLE[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def inert_line(text: object) -> str:
    """One line of plain text with every control or format character made visible.

    Covers C0/C1 controls (ESC, CSI, BEL...), DEL, and Unicode format characters such as
    bidi overrides, which can reorder what a terminal shows.
    """
    s = str(text)
    if s.isprintable():
        return s
    return "".join(
        ch if ch == " " or unicodedata.category(ch)[0] not in "CZ" or unicodedata.category(ch) == "Zs"
        else _escape_char(ch)
        for ch in s
    )


def inert(text: object, style: str = "") -> Text:
    """A Rich ``Text`` showing ``text`` literally (markup is not parsed)."""
    return Text(inert_line(text), style=style)


def token_text(token: str) -> str:
    """A token string made visible: leading/trailing spaces kept, newlines shown as ``⏎``."""
    return inert_line(token.replace("\n", "⏎"))
