"""Demo stand-ins for ``saegold demo``: deterministic rule-based answers, NOT models.

They let the offline demo run the real label pipeline (real HTTP, real openai SDK, real
cache) through :class:`engine.llm.standin_server.StandinServer` without any LLM:

* :func:`demo_label_answer` answers the LABEL prompts of :mod:`engine.labeling.methods`
  by reading the evidence in the prompt: the most frequent ``<<marked>>`` tokens
  (eleuther_acts_top5), the words that recur across the NLA explanations weighted by their
  activation scores (baez, baez_last), or the promoted tokens (output_logits).
* :func:`demo_nla_explanation` writes an explanation-shaped text for the activation at the
  last token of a text, with a "Final token" section, from the text alone.

Every answer says it comes from a demo stand-in.  Nothing here measures anything.
"""
from __future__ import annotations

import json
import re
from collections import Counter

DEMO_NOTICE = "Demo stand-in answer (rule-based, not a model)."
NLA_NOTICE = "Demo stand-in NLA explanation (rule-based, not a model)."

_STOP = frozenset("""a an the of to in on at for and or but is are was were be been being it its this that
these those with as by from into about than then there their they them he she his her we our you your
i me my not no so if when while which who whom what where how also just very more most such can could
would should will may might do does did done has have had having token tokens text model word words
final explanation activation score context passage reads continuation expects related phrase ending
tracking demo stand-in rule-based example activations running subject keeping track represents expects
sentence continue position here about ends nla""".split())


def _words(text: str) -> list[str]:
    return [w for w in re.findall(r"[A-Za-z][A-Za-z'\-]+", text.lower()) if w not in _STOP and len(w) > 2]


def _last_user(request: dict) -> str:
    for m in reversed(request.get("messages") or []):
        if m.get("role") == "user":
            return str(m.get("content") or "")
    return ""


def _original_user(request: dict) -> str:
    """The evidence message: the last user turn before any repair turn."""
    users = [str(m.get("content") or "") for m in request.get("messages") or [] if m.get("role") == "user"]
    evidence = [u for u in users if not u.startswith("Your answer could not be used")]
    return evidence[-1] if evidence else ""


def _answer(label: str) -> str:
    return f"{DEMO_NOTICE}\n[EXPLANATION]: {label}"


def demo_label_answer(request: dict) -> str:
    """A plausible label for a label-method prompt, derived from the prompt's evidence."""
    system = str((request.get("messages") or [{}])[0].get("content") or "")
    user = _original_user(request)
    if "natural-language autoencoder" in system:
        return _answer(_baez_label(user))
    if "effect on the model's output" in system:
        return _answer(_output_label(user))
    if "<<" in system:
        return _answer(_explainer_label(user))
    return _answer("No recognizable label prompt")


def _explainer_label(user: str) -> str:
    spans = Counter(s.strip() for s in re.findall(r"<<(.*?)>>", user, re.DOTALL) if s.strip())
    if not spans:
        return "Unclear pattern without marked tokens"
    top = [s for s, _ in spans.most_common(2)]
    context = Counter(_words(re.sub(r"<<.*?>>|Activations:.*", " ", user)))
    near = next((w for w, _ in context.most_common(5) if w not in {t.lower() for t in top}), None)
    label = f'The token "{top[0]}"' + (f' and "{top[1]}"' if len(top) > 1 else "")
    return label + (f", often near words like {near}" if near else "")


def _baez_label(user: str) -> str:
    weights: Counter = Counter()
    for block in re.split(r"\n\s*\n", user):
        m = re.match(r"Explanation \d+ \(activation score (\d+)\):\n(.*)", block.strip(), re.DOTALL)
        if m:
            for w in _words(m.group(2)):
                weights[w] += int(m.group(1))
    words = [w for w, _ in weights.most_common(3)]
    if not words:
        return "Unclear concept"
    return " ".join(["Concept of"] + [", ".join(words[:-1]) + " and " + words[-1] if len(words) > 1 else words[0]])


def _output_label(user: str) -> str:
    line = next((ln for ln in user.splitlines() if ln.startswith("Promoted tokens")), "")
    if not line:
        line = next((ln for ln in user.splitlines() if ln.startswith("Most probable next tokens")), "")
    tokens = re.findall(r'"((?:[^"\\]|\\.)*)"', line.split(":", 1)[-1])
    shown = [json.loads(f'"{t}"').strip() for t in tokens if json.loads(f'"{t}"').strip()][:3]
    if not shown:
        return "Unclear effect on the next token"
    return "Makes the model say " + ", ".join(f'"{t}"' for t in shown)


def demo_nla_explanation(text: str, position: int, request: dict | None = None) -> str:
    """An explanation-shaped description of the activation at the end of ``text``."""
    words = re.findall(r"\S+", text)
    last = words[-1] if words else ""
    recent = " ".join(words[-6:])
    topics = [w for w, _ in Counter(_words(text)).most_common(2)]
    topic = " and ".join(topics) if topics else "general prose"
    return (
        f"{NLA_NOTICE}\n"
        f"Context: the passage is about {topic}; it ends with \"{recent}\".\n"
        f"The model is keeping track of {topic} as the running subject.\n"
        f"Final token: \"{last}\" (position {position}); the model represents {last.strip('.,;:!?').lower() or 'it'} "
        f"here and expects the sentence about {topics[0] if topics else 'it'} to continue."
    )
