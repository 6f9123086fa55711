"""The steering benchmark: does the label predict what the feature makes the model say?

After Gur-Arieh et al. 2025 (output-based evaluation).  For each target KL a feature has
steered continuations at (``saegold score``, :mod:`engine.scoring.steering`), the judge sees the
label and three numbered sets of continuations made at that same target KL: the feature's own
and those of two other features of the same source, in a seeded random order.  It answers
with the number of the set the described feature produced.

* **Distractors** are drawn per (feature, target) from a seeded permutation of the other
  features with results at that target (:func:`engine.bench.rng.rng_for` keyed by the run
  seed, the feature's name and the target): the first two that are neither the feature nor
  the shuffled control label's feature.  So a label and its control see the same triple, in
  the same order, and every label of one feature sees the same triples (unless a control's
  feature is one of the first draws, when the next one is taken).
* **Score** of a label: correct picks / answered targets (chance 1/3).  An answer that does
  not parse is a parse failure: stored, counted apart, never scored as wrong.
* **Shuffled control**: another feature's label (same method, as for the other benchmarks) on
  the same triples; correct still means picking the label's own feature's set, which the
  control label does not describe, so its expected score is 1/3.
* Targets a feature did not reach (``reached`` false: its KL saturated below) are judged all
  the same and flagged in ``details``: the set is what steering that feature does.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from saegold.store.db import Project, loads

from .prompts import LABEL_PREFIX, flat
from .rng import rng_for
from .scorers import JUDGE_PARAMS, Score

SETS = 3
CHANCE = 1 / SETS
SET_PREFIX = "Set "

STEERING_SYSTEM = (
    "You are a saegold benchmark judge (steering). A feature of a language model was amplified while "
    "the model continued a few short prompts, which pushes the model to write what the feature "
    "promotes. You are given a description of one feature and three numbered sets of such "
    "continuations: exactly one set was produced by amplifying the feature described, the other two "
    "by amplifying other features, all by the same amount. Answer with the number of the set "
    "produced by the feature described: 1, 2 or 3, and nothing else."
)


@dataclass(frozen=True)
class SteeredSet:
    feature_id: int
    texts: tuple[str, ...]        # prompt + continuation, one per prompt
    kl: float
    reached: bool


@dataclass(frozen=True)
class Triple:
    target_kl: float
    order: tuple[int, ...]        # feature ids, in the order shown
    sets: tuple[SteeredSet, ...]
    truth: int                    # 1-based position of the feature's own set


class SteeringSets:
    """Every stored steering result of the project, grouped by (source, target)."""

    def __init__(self, project: Project, seed: int):
        self.seed = seed
        self.by_feature: dict[int, dict[float, SteeredSet]] = {}
        self.pools: dict[tuple[int, float], list[int]] = {}
        self.names: dict[int, str] = {}
        for r in project.query(
                "SELECT st.feature_id, st.target_kl, st.kl, st.reached, st.continuations, f.source_id, "
                "s.name || '#' || f.idx AS feature FROM steering st JOIN features f ON f.id = st.feature_id "
                "JOIN sources s ON s.id = f.source_id ORDER BY s.name, f.idx, st.target_kl"):
            texts = tuple(c["prompt"] + c["text"] for c in loads(r["continuations"]))
            t = float(r["target_kl"])
            self.by_feature.setdefault(r["feature_id"], {})[t] = SteeredSet(
                r["feature_id"], texts, float(r["kl"]), bool(r["reached"]))
            self.pools.setdefault((r["source_id"], t), []).append(r["feature_id"])
            self.names[r["feature_id"]] = r["feature"]
        self.source_of = {fid: src for (src, _), fids in self.pools.items() for fid in fids}

    @property
    def settings(self) -> dict[str, Any]:
        return {"seed": self.seed, "sets": SETS, "distractors": "seeded, same source and target"}

    def triples(self, feature_id: int, avoid: int | None = None) -> list[Triple]:
        """The feature's triples, one per target it has results at with two distractors
        available (``avoid``: the control label's feature, never a distractor)."""
        out = []
        name = self.names.get(feature_id)
        for t in sorted(self.by_feature.get(feature_id, {})):
            pool = self.pools[(self.source_of[feature_id], t)]
            rng = rng_for(self.seed, "steering", name, repr(t))
            picks = []
            for i in rng.permutation(len(pool)).tolist():
                if pool[i] != feature_id and pool[i] != avoid:
                    picks.append(pool[i])
                    if len(picks) == SETS - 1:
                        break
            if len(picks) < SETS - 1:
                continue
            order = [feature_id, *picks]
            perm = rng_for(self.seed, "steering-order", name, repr(t)).permutation(SETS).tolist()
            shown = tuple(order[p] for p in perm)
            out.append(Triple(t, shown, tuple(self.by_feature[f][t] for f in shown), shown.index(feature_id) + 1))
        return out


def messages(label: str, triple: Triple) -> list[dict]:
    lines = [LABEL_PREFIX + flat(label.strip()), ""]
    for i, s in enumerate(triple.sets, start=1):
        lines.append(f"{SET_PREFIX}{i}:")
        lines += [f"- {flat(text)}" for text in s.texts]
        lines.append("")
    lines.append("Which set was produced by the feature described? Answer 1, 2 or 3.")
    return [{"role": "system", "content": STEERING_SYSTEM}, {"role": "user", "content": "\n".join(lines)}]


_ANSWER = re.compile(r"^\s*(?:```[A-Za-z]*\s*)?\[?\s*(?:set\s*)?([1-3])\s*\]?\s*\.?\s*(?:```)?\s*$", re.IGNORECASE)


def parse_choice(text: str | None) -> int | None:
    """1, 2 or 3 from the judge's answer: the whole answer, or its last non-empty line, must be
    just the number (``2``, ``[2]``, ``Set 2``, ``2.``, optionally in a code fence)."""
    if not text:
        return None
    m = _ANSWER.match(text.strip())
    if m is None:
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        m = _ANSWER.match(lines[-1]) if len(lines) > 1 else None
    return int(m.group(1)) if m else None


async def judge(client: Any, label_text: str, triples: list[Triple], sets: SteeringSets,
                params: dict | None = None) -> Score:
    """Ask the judge about each triple; score the fraction of correct picks."""
    import asyncio

    replies = await asyncio.gather(*(
        client.chat(messages(label_text, tr), tag="bench/steering", est_completion_tokens=2,
                    **(JUDGE_PARAMS if params is None else params))
        for tr in triples))
    rows, correct, answered, failures = [], 0, 0, 0
    for tr, reply in zip(triples, replies):
        pick = parse_choice(reply.text)
        status = "ok" if pick is not None else ("no_answer" if not reply.text else "unparseable")
        rows.append({"target_kl": tr.target_kl, "feature_ids": list(tr.order), "truth": tr.truth,
                     "prediction": pick, "status": status, "kl": [s.kl for s in tr.sets],
                     "reached": [s.reached for s in tr.sets], "raw": reply.text,
                     "request_key": reply.request_key, "cached": reply.cached})
        if pick is None:
            failures += 1
        else:
            answered += 1
            correct += pick == tr.truth
    value = correct / answered if answered else None
    from .metrics import wilson_ci

    details = {"benchmark": "steering", "label_text": label_text, "selection": sets.settings, "examples": rows,
               "ci": list(wilson_ci(correct, answered)) if answered else None, "ci_method": "wilson"}
    return Score(value, answered, failures, details)
