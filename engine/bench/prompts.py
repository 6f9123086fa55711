"""Judge prompts for detection and fuzzing, and the strict parser of the judge's answers.

The judge sees a label and a numbered batch of examples and must answer with one JSON list of
1s and 0s, one per example, in order (e.g. ``[1, 0, 0, 1, 0]``).  The parser accepts exactly
that: the whole answer, or the answer inside one Markdown code fence, or (for judges that
think aloud first) the answer's last non-empty line, must be a JSON list of the right length
whose items are the integers 0 or 1.  Anything else is a parse failure: stored, counted and
reported, never scored as wrong.
"""
from __future__ import annotations

import json
import re
from collections.abc import Sequence

from .examples import BenchExample

BATCH_SIZE = 5

_ANSWER_RULE = (
    "Reply with a JSON list of 1s and 0s, one per example, in the order given, and nothing else. "
    "For five examples a reply looks like: [1, 0, 0, 1, 0]"
)

DETECTION_SYSTEM = (
    "You are a saegold benchmark judge (detection). A feature of a language model is active on "
    "some texts and silent on others. You are given a description of the feature and a numbered "
    "list of text examples. For each example, answer 1 if the feature described would be active "
    "somewhere in that text, or 0 if it would not. Any number of the examples, including none or "
    "all, may be ones the feature is active on. " + _ANSWER_RULE
)

FUZZING_SYSTEM = (
    "You are a saegold benchmark judge (fuzzing). A feature of a language model is active on "
    "particular tokens of a text. You are given a description of the feature and a numbered list "
    "of text examples in which some tokens are marked <<like this>>. For each example, answer 1 if "
    "the marked tokens are ones the feature described would be active on, or 0 if the marking does "
    "not fit the description. Any number of the examples, including none or all, may be correctly "
    "marked. " + _ANSWER_RULE
)

SYSTEM = {"detection": DETECTION_SYSTEM, "fuzzing": FUZZING_SYSTEM}
LABEL_PREFIX = "Feature description: "
EXAMPLE_PREFIX = "Example "


def flat(text: str) -> str:
    """One line: newlines inside a label or an example are shown as the two characters ``\\n``."""
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")


def judge_messages(benchmark: str, label: str, batch: Sequence[BenchExample]) -> list[dict]:
    """The chat messages asking the judge about one batch."""
    lines = [LABEL_PREFIX + flat(label.strip()), ""]
    for i, ex in enumerate(batch, start=1):
        body = ex.highlighted_text() if benchmark == "fuzzing" else ex.text()
        lines.append(f"{EXAMPLE_PREFIX}{i}: {flat(body)}")
    lines += ["", f"Answer with a JSON list of exactly {len(batch)} numbers, each 1 or 0."]
    return [{"role": "system", "content": SYSTEM[benchmark]}, {"role": "user", "content": "\n".join(lines)}]


_FENCE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n?(.*?)\n?```$", re.DOTALL)


def _as_answer(text: str, n: int) -> list[int] | None:
    text = text.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, list) or len(value) != n:
        return None
    if not all(type(v) is int and v in (0, 1) for v in value):
        return None
    return value


def parse_answer(text: str | None, n: int) -> list[int] | None:
    """The judge's ``n`` answers, or None when the reply is not a well-formed answer."""
    if not text:
        return None
    whole = _as_answer(text, n)
    if whole is not None:
        return whole
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    if len(lines) > 1:
        return _as_answer(lines[-1], n)
    return None


def batches(items: Sequence[BenchExample], size: int = BATCH_SIZE) -> list[list[BenchExample]]:
    """Consecutive batches of ``size`` (the examples are already in a seeded order)."""
    return [list(items[i:i + size]) for i in range(0, len(items), size)]
