"""Untrusted text made inert for the terminal.

Corpus text, labels and LLM output may hold escape sequences, control characters or Rich
markup.  Everything shown to a user passes through here: control characters become
visible escapes (``\\x1b``), and text is wrapped in :class:`rich.text.Text`, which never
parses markup.
"""
from __future__ import annotations

import contextlib
import sys
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


def inert_lines(text: str) -> str:
    """Like :func:`inert_line` but keeps newlines (and tabs) as they are: for data streams."""
    return "\n".join("\t".join(inert_line(cell) for cell in line.split("\t"))
                     for line in text.split("\n"))


class _TerminalGuard:
    """A text stream wrapper that makes control characters visible before they reach a tty."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(inert_lines(text))
        return len(text)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


@contextlib.contextmanager
def guarded_stdout():
    """While active, data written to ``sys.stdout`` is made inert if stdout is a terminal.

    Pipes and files get the exact bytes (exports are data); a terminal never receives raw
    escape sequences from stored text.
    """
    if not sys.stdout.isatty():
        yield
        return
    original = sys.stdout
    sys.stdout = _TerminalGuard(original)
    try:
        yield
    finally:
        sys.stdout = original


def print_json(data: object) -> None:
    """Print ``data`` as indented JSON (UTF-8 kept); inert when stdout is a terminal."""
    import json

    with guarded_stdout():
        print(json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False))
