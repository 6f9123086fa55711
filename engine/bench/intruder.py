"""The intruder benchmark (Paulo & Belrose 2025, "Evaluating SAE interpretability without
explanations"): per feature, with no label.

Each round the judge sees ``k`` activating examples of the feature, all from one activation-
quantile bin (quantile-matched: they look alike in strength), and one example of another
random feature of the same source from the same bin, in a seeded order, each with its own
activating tokens marked ``<<like this>>``; it must name the intruder.  The score is the
accuracy over the rounds answered, chance ``1 / (k + 1)``, with a Wilson 95% interval;
answers that are not one example number are parse failures, counted apart, never scored as
wrong.  A feature the judge can tell from others is one whose examples share something; the
question behind the human tier "obscure".

Examples are the ``quantile`` examples ``saegold score`` keeps (10 bins); round ``r`` uses
the feature's bins in a seeded order, and a bin with fewer than ``k`` examples takes the
nearest bins' as well.
"""
from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any

from saegold.store.db import Project, dumps, now
from saegold.store.examples import examples as stored_examples
from saegold.store.superseded import supersede_intruder

from .examples import BenchExample, mark_tokens, true_highlights
from .metrics import wilson_ci
from .prompts import EXAMPLE_PREFIX, flat
from .rng import rng_for

DEFAULT_K = 4
DEFAULT_ROUNDS = 5

INTRUDER_SYSTEM = (
    "You are a saegold benchmark judge (intruder). A feature of a language model is active on "
    "some texts. You are given a numbered list of text examples, the tokens where a feature is "
    "active marked <<like this>>. All examples but one come from the same feature; exactly one, "
    "the intruder, comes from a different feature. Find the intruder. Reply with its number "
    "only, e.g. 3, and nothing else."
)


@dataclass
class Round:
    examples: list[BenchExample]          # in the order shown
    truth: int                            # 0-based position of the intruder
    bin: int


@dataclass
class IntruderScore:
    value: float | None
    n: int
    parse_failures: int
    details: dict = field(default_factory=dict)


def chance(k: int = DEFAULT_K) -> float:
    return 1 / (k + 1)


def parse_pick(text: str | None, n: int) -> int | None:
    """The 1-based example number of an answer, or None: the whole answer (or its last
    non-empty line, for judges that think aloud) must be one integer in 1..n."""
    if not text:
        return None
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    for candidate in (text.strip(), lines[-1] if lines else ""):
        m = re.fullmatch(r"(?:example\s*)?(\d+)\.?", candidate.strip().strip("`*"), re.IGNORECASE)
        if m and 1 <= int(m.group(1)) <= n:
            return int(m.group(1))
    return None


def messages(rnd: Round) -> list[dict]:
    lines = [f"{EXAMPLE_PREFIX}{i}: {flat(mark_tokens(e.tokens, e.highlight))}"
             for i, e in enumerate(rnd.examples, start=1)]
    lines += ["", f"Which example, 1 to {len(rnd.examples)}, is the intruder? Answer with its number only."]
    return [{"role": "system", "content": INTRUDER_SYSTEM}, {"role": "user", "content": "\n".join(lines)}]


class IntruderRounds:
    """Seeded rounds of each feature (k examples of it, one of another feature)."""

    def __init__(self, project: Project, *, seed: int, k: int = DEFAULT_K, rounds: int = DEFAULT_ROUNDS):
        self.project, self.seed, self.k, self.n_rounds = project, int(seed), int(k), int(rounds)
        self._pool: dict[int, list[tuple[int, str]]] = {}

    @property
    def settings(self) -> dict:
        return {"seed": self.seed, "k": self.k, "rounds": self.n_rounds, "sampler": "quantiles"}

    def _quantile(self, feature_id: int) -> list[dict]:
        rows = stored_examples(self.project, feature_id, "quantile")
        return [r for r in rows if r["max_act"] is not None and r["max_act"] > 0]

    def _others(self, source_id: int) -> list[tuple[int, str]]:
        if source_id not in self._pool:
            self._pool[source_id] = [(r["id"], r["name"]) for r in self.project.query(
                "SELECT f.id, s.name || '#' || f.idx AS name FROM features f JOIN sources s ON s.id = f.source_id "
                "WHERE f.source_id = ? AND EXISTS (SELECT 1 FROM examples e WHERE e.feature_id = f.id "
                "AND e.kind = 'quantile') ORDER BY f.id", [source_id])]
        return self._pool[source_id]

    def for_feature(self, feature_id: int) -> list[Round]:
        row = self.project.query("SELECT f.source_id, s.name || '#' || f.idx AS name FROM features f "
                                 "JOIN sources s ON s.id = f.source_id WHERE f.id = ?", [feature_id])[0]
        own = self._quantile(feature_id)
        others = [o for o in self._others(row["source_id"]) if o[0] != feature_id]
        if len(own) < self.k or not others:
            return []
        rng = rng_for(self.seed, "intruder", row["name"])
        bins = sorted({int(r["bin"] or 0) for r in own})
        order = [bins[int(i)] for i in rng.permutation(len(bins))]
        rounds = []
        for r in range(self.n_rounds):
            b = order[r % len(order)]
            # the k examples nearest to bin b (its own first, then the nearest bins), seeded
            near = sorted(own, key=lambda e: (abs(int(e["bin"] or 0) - b), float(rng.random())))
            picked = near[: self.k]
            intruder = None
            for i in rng.permutation(len(others))[:8].tolist():
                cand = self._quantile(others[int(i)][0])
                mine = {tuple(e["tokens"]) for e in picked}
                cand = [c for c in cand if tuple(c["tokens"]) not in mine]
                if cand:
                    intruder = min(cand, key=lambda e: (abs(int(e["bin"] or 0) - b), float(rng.random())))
                    break
            if intruder is None:
                continue
            items = [_example(e, 0) for e in picked] + [_example(intruder, 1)]
            perm = rng.permutation(len(items)).tolist()
            shown = [items[i] for i in perm]
            rounds.append(Round(shown, perm.index(len(items) - 1), b))
        return rounds


def _example(row: dict, truth: int) -> BenchExample:
    acts = tuple(float(a) for a in row["acts"])
    return BenchExample(row["id"], row["feature_id"], "quantile", row["rank"], truth, tuple(row["tokens"]), acts,
                        true_highlights(acts), row.get("bin"))


async def judge(client: Any, rounds: list[Round], settings: dict, *, params: dict | None = None) -> IntruderScore:
    replies = await asyncio.gather(*(client.chat(messages(r), tag="bench/intruder", est_completion_tokens=2,
                                                 **(params or {})) for r in rounds))
    rows, correct, answered, failures = [], 0, 0, 0
    for rnd, reply in zip(rounds, replies):
        pick = parse_pick(reply.text, len(rnd.examples))
        status = "ok" if pick is not None else ("no_answer" if not reply.text else "unparseable")
        rows.append({"example_ids": [e.example_id for e in rnd.examples],
                     "feature_ids": [e.feature_id for e in rnd.examples], "bin": rnd.bin,
                     "truth": rnd.truth + 1, "prediction": pick, "status": status, "raw": reply.text,
                     "request_key": reply.request_key, "cached": reply.cached})
        if pick is None:
            failures += 1
        else:
            answered += 1
            correct += pick == rnd.truth + 1
    value = correct / answered if answered else None
    ci = wilson_ci(correct, answered)
    details = {"benchmark": "intruder", "selection": settings, "chance": chance(settings["k"]),
               "ci": None if ci[0] is None else list(ci), "ci_method": "wilson", "rounds": rows}
    return IntruderScore(value, answered, failures, details)


def write(project: Project, feature_id: int, score: IntruderScore, judge_model: str | None, seed: int) -> None:
    """Store the feature's result; one it replaces (--redo, other settings) is superseded:
    kept in ``store.superseded``, no longer live."""
    with project.write() as db:
        supersede_intruder(db, feature_id)
        db.execute(
            "INSERT INTO intruder_scores(feature_id, value, n, parse_failures, judge_model, seed, details, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(feature_id) DO UPDATE SET "
            "value = excluded.value, n = excluded.n, parse_failures = excluded.parse_failures, "
            "judge_model = excluded.judge_model, seed = excluded.seed, details = excluded.details, "
            "created_at = excluded.created_at",
            [feature_id, score.value, score.n, score.parse_failures, judge_model, seed, dumps(score.details), now()])


def stored(project: Project) -> dict[int, tuple]:
    """feature id -> (seed, judge model, selection) of every stored intruder result."""
    import json
    return {r["feature_id"]: (r["seed"], r["judge_model"], json.loads(r["sel"]) if r["sel"] else None)
            for r in project.query("SELECT feature_id, seed, judge_model, json_extract(details, '$.selection') "
                                   "AS sel FROM intruder_scores")}


def rows(project: Project) -> list[dict]:
    """Every stored intruder result with its feature's category and CI."""
    return project.query(
        "SELECT i.feature_id, i.value, i.n, i.parse_failures, i.judge_model, i.seed, "
        "json_extract(i.details, '$.ci[0]') AS ci_low, json_extract(i.details, '$.ci[1]') AS ci_high, "
        "json_extract(i.details, '$.chance') AS chance, t.category "
        "FROM intruder_scores i LEFT JOIN taxonomy_scores t ON t.feature_id = i.feature_id ORDER BY i.feature_id")


def tier_separation(project: Project, *, n_boot: int = 2000, seed: int = 0) -> list[dict[str, Any]]:
    """How well the intruder score tells features apart from 'obscure' ones: AUROC of the
    feature's intruder accuracy for "not obscure", against (a) the human tier (one row per
    annotator's tier judgment of a scored feature) and (b) the automatic taxonomy category,
    each with a 95% percentile bootstrap CI over features (a feature's rows resampled
    together).  0.5: no separation; None where a side is empty."""
    import numpy as np

    from saegold.engine.stats.data import judgments

    from .metrics import auroc

    score = {r["feature_id"]: r["value"] for r in rows(project) if r["value"] is not None}
    cats = {r["feature_id"]: r["category"] for r in rows(project)}
    own, _ = judgments(project)
    human = [(j.feature_id, float(score[j.feature_id]), int(j.tier != "obscure")) for j in own
             if j.tier is not None and j.feature_id in score]
    auto = [(f, float(v), int(cats[f] != "obscure")) for f, v in score.items() if cats.get(f)]
    out = []
    for name, data in (("human tier 'obscure' vs the rest", human), ("taxonomy category 'obscure' vs the rest", auto)):
        feats = sorted({f for f, _, _ in data})
        est = auroc([y for _, _, y in data], [x for _, x, _ in data]) if data else None
        lo = hi = None
        if est is not None and len(feats) > 1:
            by = {f: [(x, y) for g, x, y in data if g == f] for f in feats}
            rng = np.random.default_rng(seed)
            boots = []
            for _ in range(n_boot):
                pick = [feats[int(i)] for i in rng.integers(len(feats), size=len(feats))]
                xs = [p for f in pick for p in by[f]]
                a = auroc([y for _, y in xs], [x for x, _ in xs])
                if a is not None:
                    boots.append(a)
            if boots:
                lo, hi = float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))
        out.append({"against": name, "rows": len(data), "features": len(feats),
                    "positives": sum(y for _, _, y in data), "auroc": est, "ci_low": lo, "ci_high": hi})
    return out
