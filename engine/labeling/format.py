"""Text helpers shared by the label methods: marking activating tokens, 0-10 activation
scores, cutting an example at its max-activating token, trimming an NLA explanation to its
"Final token" part, and parsing the ``[EXPLANATION]:`` answer."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

MARK_THRESHOLD = 0.6          # tokens at >= 0.6 x the example's max activation are marked
MAX_MARKED_VALUES = 10        # at most this many (token, value) pairs listed per example
BOS_TOKENS = frozenset({"<bos>", "<s>", "<|endoftext|>", "<|begin_of_text|>", "<|startoftext|>"})
EXPLANATION_TAG = "[EXPLANATION]:"


def window(tokens: list[str], acts: list[float], max_idx: int,
           max_tokens: int | None) -> tuple[list[str], list[float], int]:
    """At most ``max_tokens`` tokens around the max-activating one (3/4 before it, 1/4 after),
    so that very long contexts do not flood the prompt.  Returns the new max index too."""
    if max_tokens is None or len(tokens) <= max_tokens:
        return tokens, acts, max_idx
    before = max(0, max_idx - (3 * max_tokens) // 4)
    start = min(before, len(tokens) - max_tokens)
    return tokens[start:start + max_tokens], acts[start:start + max_tokens], max_idx - start


def drop_bos(tokens: list[str], acts: list[float], max_idx: int) -> tuple[list[str], list[float], int]:
    """Drop a leading beginning-of-sequence token (it is not text the labeler should see)."""
    if tokens and tokens[0] in BOS_TOKENS and max_idx > 0:
        return tokens[1:], acts[1:], max_idx - 1
    return tokens, acts, max_idx


def mark(tokens: list[str], acts: list[float], threshold: float = MARK_THRESHOLD) -> str:
    """The example text with each run of tokens at >= ``threshold`` x max wrapped in
    ``<<`` ``>>`` (Delphi's default-explainer format)."""
    top = max(acts, default=0.0)
    if top <= 0:
        return "".join(tokens)
    hot = [a >= threshold * top for a in acts]
    out: list[str] = []
    for i, tok in enumerate(tokens):
        if hot[i] and (i == 0 or not hot[i - 1]):
            out.append("<<")
        out.append(tok)
        if hot[i] and (i == len(tokens) - 1 or not hot[i + 1]):
            out.append(">>")
    return "".join(out)


def marked_values(tokens: list[str], acts: list[float], scale_max: float,
                  threshold: float = MARK_THRESHOLD, limit: int = MAX_MARKED_VALUES) -> list[tuple[str, int]]:
    """``(token, value)`` for the marked tokens, value = floor(10 x act / scale_max) in 0-10."""
    top = max(acts, default=0.0)
    if top <= 0 or scale_max <= 0:
        return []
    out = [(tok, min(10, max(0, int(10 * a / scale_max))))
           for tok, a in zip(tokens, acts) if a >= threshold * top]
    return out[:limit]


def activation_score(value: float, max_value: float) -> int:
    """The baez activation score ``min(10, ceil(10 * v / max))`` (0 when max is not positive)."""
    if max_value <= 0:
        return 0
    return min(10, max(0, math.ceil(10 * value / max_value - 1e-9)))


def cut_after(tokens: list[str], max_idx: int) -> str:
    """The example's text up to and including its max-activating token."""
    return "".join(tokens[:max_idx + 1])


_FINAL_LINE = re.compile(r"^[\s>*#_\-]*final token", re.IGNORECASE)


def final_token_part(explanation: str) -> str:
    """From the first line that starts with "Final token" on (markdown decoration allowed);
    the whole text when there is no such line."""
    lines = explanation.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if _FINAL_LINE.match(line):
            return "".join(lines[i:]).strip()
    return explanation.strip()


@dataclass
class Parsed:
    label: str | None
    error: str | None


def parse_explanation(text: str | None, *, max_words: int | None, max_chars: int = 300) -> Parsed:
    """The label after the last ``[EXPLANATION]:`` (its first non-empty line), or why not."""
    if text is None or not text.strip():
        return Parsed(None, "empty answer")
    pos = text.rfind(EXPLANATION_TAG)
    if pos < 0:
        # Be lenient about case and spacing, never about the tag's presence.
        m = list(re.finditer(r"\[\s*explanation\s*\]\s*:", text, re.IGNORECASE))
        if not m:
            return Parsed(None, f"no {EXPLANATION_TAG} in the answer")
        rest = text[m[-1].end():]
    else:
        rest = text[pos + len(EXPLANATION_TAG):]
    line = next((ln.strip() for ln in rest.splitlines() if ln.strip()), "")
    label = line.strip().strip("*_`").strip()
    if len(label) >= 2 and (label[0], label[-1]) in (('"', '"'), ("'", "'"), ("“", "”")):
        label = label[1:-1].strip()
    if not label:
        return Parsed(None, f"nothing after {EXPLANATION_TAG}")
    words = len(label.split())
    if max_words is not None and words > max_words:
        return Parsed(None, f"label has {words} words, the limit is {max_words}")
    if len(label) > max_chars:
        return Parsed(None, f"label has {len(label)} characters, the limit is {max_chars}")
    return Parsed(label, None)
