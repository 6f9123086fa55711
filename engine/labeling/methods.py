"""The label methods: how each one turns a feature into chat messages, and its limits.

* ``eleuther_acts_top5``: the 5 top-activating examples in Delphi's default-explainer format.
* ``baez``: NLA explanations of the activation at the max-activating token of the same 5
  examples, each with the score ``min(10, ceil(10 v / max))``; a label of at most 8 words.
* ``baez_last``: as ``baez``, each explanation trimmed to its "Final token" part.
* ``output_logits``: an output-centric label from logit-lens promoted/suppressed tokens,
  the most probable next tokens under amplification and the amplified continuation.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from . import prompts as P
from .format import (activation_score, drop_bos, final_token_part, mark, marked_values, window)

if TYPE_CHECKING:   # (not at run time: `saegold label --help` lists METHOD_NAMES without the store)
    from .inputs import FeatureData

CONTEXT_TOKENS = 64          # tokens of each example shown around its max token
LOGIT_TOKENS_SHOWN = 20
DRY_RUN_NLA_CHARS = 480      # assumed length of an NLA explanation not fetched yet (dry run)


@dataclass(frozen=True)
class BuildOptions:
    """How a method's prompt is built from a feature's data."""

    dry_run: bool = False
    """NLA explanations not fetched yet stand as placeholders (a dry run counts tokens)."""
    neutral_prompt: str | None = None
    """The output-score prompt, shown with the amplified continuation (output_logits)."""
    activations: bool = True
    """eleuther_acts_top5: include the 0-10 ``Activations`` lines."""


@dataclass(frozen=True)
class Method:
    name: str
    needs: str                      # 'examples' | 'nla' | 'logits'
    what: str                       # what the answer is called in the repair message
    max_words: int | None
    build: Callable[[FeatureData, BuildOptions], list[dict]]

    def missing(self, data: FeatureData, *, dry_run: bool = False) -> str | None:
        """Why this method cannot label the feature (None when it can)."""
        if self.needs in ("examples", "nla") and not data.examples:
            return "no activating examples"
        if self.needs == "nla" and not data.nla_complete() and not dry_run:
            got = sum(e.id in data.nla for e in data.examples)
            return f"NLA explanations for {got} of {len(data.examples)} examples"
        if self.needs == "logits" and not (data.promoted or data.amplified_next or data.continuation):
            return "no promoted tokens, amplified tokens or continuation"
        return None


def q(token: str) -> str:
    """A token in double quotes with escapes, so spaces and newlines stay visible."""
    return json.dumps(token, ensure_ascii=False)


# -- eleuther_acts_top5 ------------------------------------------------------------------------
def explainer_examples(data: FeatureData, *, activations: bool = True) -> str:
    lines = []
    scale = data.scale_max
    for i, ex in enumerate(data.examples, 1):
        tokens, acts, max_idx = drop_bos(ex.tokens, ex.acts, ex.max_idx)
        tokens, acts, max_idx = window(tokens, acts, max_idx, CONTEXT_TOKENS)
        lines.append(f"Example {i}: {mark(tokens, acts)}")
        if activations:
            pairs = ", ".join(f"({q(tok)}, {v})" for tok, v in marked_values(tokens, acts, scale))
            lines.append(f"Activations: {pairs}")
    return "\n".join(lines) + "\n"


def build_explainer(data: FeatureData, opts: BuildOptions = BuildOptions()) -> list[dict]:
    activations = opts.activations
    system = P.EXPLAINER_SYSTEM.format(activations=P.EXPLAINER_ACTIVATIONS_NOTE if activations else "")
    messages = [{"role": "system", "content": system}]
    for user, assistant in P.EXPLAINER_SHOTS:
        if not activations:
            user = "\n".join(ln for ln in user.splitlines() if not ln.startswith("Activations:")) + "\n"
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    messages.append({"role": "user", "content": explainer_examples(data, activations=activations)})
    return messages


# -- baez / baez_last --------------------------------------------------------------------------
def baez_descriptions(data: FeatureData, *, last: bool, placeholders_ok: bool = False) -> str:
    blocks = []
    scale = data.scale_max
    for i, ex in enumerate(data.examples, 1):
        text = data.nla.get(ex.id)
        if text is None:
            if not placeholders_ok:
                raise KeyError(f"example {ex.id} has no NLA explanation")
            text = "x" * DRY_RUN_NLA_CHARS  # dry run: the explanation's expected size only
        if last:
            text = final_token_part(text)
        blocks.append(f"Explanation {i} (activation score {activation_score(ex.max_act, scale)}):\n{text.strip()}")
    return "\n\n".join(blocks) + "\n"


def build_baez(data: FeatureData, opts: BuildOptions = BuildOptions(), *, last: bool = False) -> list[dict]:
    system = P.BAEZ_SYSTEM.format(n=len(data.examples), scope=P.BAEZ_SCOPE_LAST if last else "")
    return [{"role": "system", "content": system},
            {"role": "user", "content": baez_descriptions(data, last=last, placeholders_ok=opts.dry_run)}]


# -- output_logits -----------------------------------------------------------------------------
def output_evidence(data: FeatureData, neutral_prompt: str | None = None) -> str:
    parts = []
    if data.promoted:
        parts.append("Promoted tokens (logit lens, strongest first): "
                     + ", ".join(q(t["token"]) for t in data.promoted[:LOGIT_TOKENS_SHOWN]))
    if data.suppressed:
        parts.append("Suppressed tokens (logit lens, strongest first): "
                     + ", ".join(q(t["token"]) for t in data.suppressed[:LOGIT_TOKENS_SHOWN]))
    if data.amplified_next:
        parts.append("Most probable next tokens with the feature amplified: " + ", ".join(
            q(t["token"]) + (f" ({t['value']:.2f})" if t.get("value") is not None else "")
            for t in data.amplified_next[:LOGIT_TOKENS_SHOWN]))
    if data.continuation:
        prompt = f" of {q(neutral_prompt)}" if neutral_prompt else ""
        parts.append(f"Continuation{prompt} with the feature amplified: {q(data.continuation)}")
    return "\n".join(parts) + "\n"


def build_output(data: FeatureData, opts: BuildOptions = BuildOptions()) -> list[dict]:
    extra = []
    if data.suppressed:
        extra.append("the tokens it suppresses")
    if data.amplified_next:
        extra.append("the most probable next tokens when the feature is strongly amplified")
    if data.continuation:
        extra.append("the text the model writes with the feature amplified")
    extra_text = (", " + ", ".join(extra[:-1]) + (" and " if len(extra) > 1 else "") + extra[-1]) if extra else ""
    return [{"role": "system", "content": P.OUTPUT_SYSTEM.format(extra=extra_text)},
            {"role": "user", "content": output_evidence(data, opts.neutral_prompt)}]


METHODS: dict[str, Method] = {
    "eleuther_acts_top5": Method("eleuther_acts_top5", "examples", "explanation", 40, build_explainer),
    "baez": Method("baez", "nla", "label", 8, partial(build_baez, last=False)),
    "baez_last": Method("baez_last", "nla", "label", 8, partial(build_baez, last=True)),
    "output_logits": Method("output_logits", "logits", "label", 12, build_output),
}
METHOD_NAMES = tuple(METHODS)


def get(name: str) -> Method:
    from saegold.store.errors import SaegoldError
    if name not in METHODS:
        raise SaegoldError(f"unknown label method {name!r} (known: {', '.join(METHOD_NAMES)})")
    return METHODS[name]


def repair_message(method: Method, problem: str) -> dict:
    limit = f" (at most {method.max_words} words)" if method.max_words else ""
    return {"role": "user", "content": P.REPAIR.format(problem=problem, what=method.what, limit=limit)}
