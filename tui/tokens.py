"""How a token looks on screen: the one owner of word-boundary markers (display only).

Tokens are stored exactly as they came (a tokenizer's decode, Neuronpedia's strings); exports
carry them unchanged.  Tokenizers mark a word boundary differently: SentencePiece (Gemma,
Llama 2, Neuronpedia's Gemma tokens) writes ``▁`` for a space, byte-level BPE (GPT-2,
Llama 3, Qwen) writes ``Ġ`` for a space and ``Ċ`` for a newline in its raw vocabulary, and a
decoded token carries plain leading spaces.  On screen all of them look the same:

* in running text (an activating example) a boundary is a space and a newline is ``⏎``;
* in a list of single tokens (logit lens, amplified next tokens) a leading or trailing space
  is ``␣`` (a bare space would be invisible), so `` cat``, ``▁cat`` and ``Ġcat`` all read ``␣cat``.

``Ġ`` and ``Ċ`` are also letters (Maltese), so they are read as markers only in a sequence
that looks like raw byte-level BPE: no token holds a plain space and some token starts with
``Ġ``.  The result is made inert (control characters visible) like every untrusted string.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence

from .safe import inert_line

SPM_SPACE = "\u2581"        # ▁ SentencePiece
BPE_SPACE = "\u0120"        # Ġ byte-level BPE (GPT-2's bytes_to_unicode of 0x20)
BPE_NEWLINE = "\u010a"      # Ċ (0x0a)
BPE_TAB = "\u0109"          # ĉ (0x09)
NEWLINE_MARK = "⏎"
SPACE_MARK = "␣"


def byte_level(tokens: Sequence[str]) -> bool:
    """Do these tokens look like raw byte-level BPE vocabulary entries?"""
    starts = False
    for t in tokens:
        if " " in t or "\n" in t:
            return False
        starts = starts or t.startswith(BPE_SPACE) or t.startswith(BPE_NEWLINE)
    return starts


def as_text(token: str, *, bpe: bool) -> str:
    """The text a token stands for (markers become spaces / newlines); not yet inert."""
    token = token.replace(SPM_SPACE, " ")
    if bpe:
        token = token.replace(BPE_SPACE, " ").replace(BPE_NEWLINE, "\n").replace(BPE_TAB, "\t")
    return token


@functools.lru_cache(maxsize=1 << 16)
def _running_one(token: str, bpe: bool) -> str:
    return inert_line(as_text(token, bpe=bpe).replace("\n", NEWLINE_MARK))


def running(tokens: Sequence[str]) -> list[str]:
    """Tokens of one context, for running text: one display string per position (so the
    positions of activations stay valid).  Each distinct token is made once (a vocabulary
    repeats: the app draws a few thousand tokens per feature from a few hundred strings)."""
    bpe = byte_level(tokens)
    return [_running_one(str(t), bpe) for t in tokens]


def running_window(tokens: Sequence[str], lo: int, hi: int) -> list[str]:
    """``running(tokens)[lo:hi]``, making only those (the markers are read off them all)."""
    bpe = byte_level(tokens)
    return [_running_one(str(t), bpe) for t in tokens[lo:hi]]


def listed(tokens: Sequence[str]) -> list[str]:
    """Single tokens shown side by side: boundary spaces shown as ``␣``."""
    bpe = byte_level(tokens)
    out = []
    for t in tokens:
        s = inert_line(as_text(str(t), bpe=bpe).replace("\n", NEWLINE_MARK))
        body = s.strip(" ")
        if not body:
            out.append(SPACE_MARK * len(s))
            continue
        lead, trail = len(s) - len(s.lstrip(" ")), len(s) - len(s.rstrip(" "))
        out.append(SPACE_MARK * lead + body + SPACE_MARK * trail)
    return out
