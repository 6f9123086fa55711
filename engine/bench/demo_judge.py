"""DEMO STAND-IN judge and embedder for ``saegold demo`` -- not a benchmark judge.

``saegold demo`` runs the real bench pipeline offline, against the local stand-in
OpenAI-compatible server.  This module answers that server's judge requests with a plain,
deterministic lexical heuristic, so the demo shows real rows, real parsing and a real report
without any LLM:

- :func:`demo_judge_answer` recognises the saegold judge prompts (and returns None for any
  other request, so it can be composed with other demo responders).  Detection: an example
  gets 1 when it shares a content word with the label (its quoted terms, when it quotes
  any).  Fuzzing: 1 when a *marked* span shares such a word with the label.
- :func:`demo_embed`: hashed bag-of-words vectors (256 dimensions, L2-normalised).

Its figures say nothing about any label's quality; the demo report should be read as a
walk-through of the mechanics only.
"""
from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import numpy as np

from .prompts import EXAMPLE_PREFIX, LABEL_PREFIX, SYSTEM
from .intruder import INTRUDER_SYSTEM
from .steering import SET_PREFIX, STEERING_SYSTEM

DIM = 256
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_MARK = re.compile(r"<<(.*?)>>", re.DOTALL)
_STOP = frozenset(
    "a an and are as at be by for from has have in is it its of on or that the this to was were with "
    "word words token tokens text texts feature features about after before into like mention mentions "
    "phrase phrases related relating often near concept makes make model say says unclear pattern "
    "marked effect next demo stand".split()
)
_QUOTED = re.compile(r'"([^"]+)"|\'([^\']+)\'')


def words(text: str) -> set[str]:
    """Lower-cased content words (letters/digits), stop words dropped, simple plural folded."""
    out = set()
    for w in _WORD.findall(text.lower()):
        if w in _STOP or (len(w) < 3 and not w.isdigit()):
            continue
        out.add(w[:-1] if len(w) > 3 and w.endswith("s") else w)
    return out


def label_words(label: str) -> set[str]:
    """The words a label is about: its quoted terms when it quotes any, else its content words."""
    quoted = [a or b for a, b in _QUOTED.findall(label)]
    return words(" ".join(quoted)) if quoted and words(" ".join(quoted)) else words(label)


def _request(request_json: Any) -> dict | None:
    if isinstance(request_json, (str, bytes)):
        try:
            request_json = json.loads(request_json)
        except ValueError:
            return None
    return request_json if isinstance(request_json, dict) else None


def demo_judge_answer(request_json: Any) -> str | None:
    """The demo stand-in's answer to a saegold judge request, or None for any other request."""
    request = _request(request_json)
    messages = (request or {}).get("messages") or []
    if len(messages) < 2 or not isinstance(messages[0], dict):
        return None
    system = messages[0].get("content")
    benchmark = next((b for b, text in SYSTEM.items() if text == system), None)
    user = messages[-1].get("content") if isinstance(messages[-1], dict) else None
    if system == STEERING_SYSTEM and isinstance(user, str):
        return _steering_answer(user)
    if system == INTRUDER_SYSTEM and isinstance(user, str):
        return _intruder_answer(user)
    if benchmark is None or not isinstance(user, str):
        return None
    label: set[str] = set()
    answers: list[int] = []
    for line in user.splitlines():
        if line.startswith(LABEL_PREFIX):
            label = label_words(line[len(LABEL_PREFIX):])
        elif line.startswith(EXAMPLE_PREFIX) and ": " in line:
            body = line.split(": ", 1)[1]
            if benchmark == "fuzzing":
                body = " ".join(_MARK.findall(body))
            answers.append(1 if label & words(body) else 0)
    return json.dumps(answers)


def _steering_answer(user: str) -> str:
    label: set[str] = set()
    hits: list[int] = []
    for line in user.splitlines():
        if line.startswith(LABEL_PREFIX):
            label = label_words(line[len(LABEL_PREFIX):])
        elif line.startswith(SET_PREFIX):
            hits.append(0)
        elif line.startswith("- ") and hits:
            hits[-1] += sum(1 for w in _WORD.findall(line.lower()) if (w[:-1] if len(w) > 3 and w.endswith("s")
                                                                         else w) in label)
    return str(1 + max(range(len(hits)), key=lambda i: (hits[i], -i))) if hits else "1"


def _intruder_answer(user: str) -> str:
    """The example whose marked words the others share least (ties: the first)."""
    marked = [words(" ".join(_MARK.findall(line.split(": ", 1)[1])))
              for line in user.splitlines() if line.startswith(EXAMPLE_PREFIX) and ": " in line]
    if not marked:
        return "1"
    shared = [sum(len(m & o) for j, o in enumerate(marked) if j != i) for i, m in enumerate(marked)]
    return str(1 + min(range(len(marked)), key=lambda i: (shared[i], i)))


def _bucket(word: str) -> tuple[int, float]:
    h = hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(h[:4], "little") % DIM, (1.0 if h[4] & 1 else -1.0)


def demo_embed(texts: list[str]) -> list[list[float]]:
    """Hashed bag-of-words vectors of the texts' content words (the demo stand-in embedder)."""
    out = []
    for text in texts:
        v = np.zeros(DIM)
        for w in words(text):
            i, sign = _bucket(w)
            v[i] += sign
        norm = np.linalg.norm(v)
        out.append((v / norm if norm > 0 else v).tolist())
    return out
