"""One benchmark of one label text on one feature's examples.

``details`` (stored as JSON in ``bench_scores.details``) keeps every per-example answer so the
calibration can hold it against human judgments:

- judged benchmarks (detection, fuzzing)::

    {"benchmark", "label_text", "selection": {seed, positive_ranks, negatives, ...},
     "examples": [{"example_id", "feature_id", "kind", "rank", "truth",
                   "prediction": 1 | 0 | null, "batch", "position", "raw",
                   "highlight": [token positions]  (fuzzing only)}],
     "batches": [{"example_ids", "status": "ok" | "unparseable" | "no_answer",
                  "raw", "request_key", "cached"}]}

- embedding::

    {"benchmark", "label_text", "embedding_model", "selection",
     "examples": [{"example_id", "feature_id", "kind", "rank", "truth", "similarity"}]}

Every result's ``details`` also holds ``ci``: ``[low, high]``, the 95% interval of that one
label's score (:mod:`.metrics`: balanced accuracy, AUROC, steering's proportion), or null.

``n`` counts the examples that were scored; ``parse_failures`` counts the examples whose
batch answer could not be parsed (or never came).  They are left out of the metric, never
scored as wrong.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import metrics, prompts
from .embedders import Embedder
from .examples import ExampleSet

JUDGE_PARAMS: dict[str, Any] = {"temperature": 0.0}


@dataclass
class Score:
    """A benchmark result, ready to become one ``bench_scores`` row."""

    value: float | None
    n: int
    parse_failures: int
    details: dict = field(default_factory=dict)


async def judge(client: Any, benchmark: str, label_text: str, examples: ExampleSet, *,
                batch_size: int = prompts.BATCH_SIZE, params: dict | None = None) -> Score:
    """Detection or fuzzing: ask the judge about each batch, score balanced accuracy."""
    groups = prompts.batches(examples.examples, batch_size)
    replies = await asyncio.gather(*(
        client.chat(prompts.judge_messages(benchmark, label_text, group), tag=f"bench/{benchmark}",
                    **(JUDGE_PARAMS if params is None else params))
        for group in groups))
    rows, batch_rows = [], []
    truth, predicted, failures = [], [], 0
    for b, (group, reply) in enumerate(zip(groups, replies)):
        answer = prompts.parse_answer(reply.text, len(group))
        status = "ok" if answer is not None else ("no_answer" if not reply.text else "unparseable")
        batch_rows.append({"example_ids": [e.example_id for e in group], "status": status, "raw": reply.text,
                           "request_key": reply.request_key, "cached": reply.cached})
        for pos, ex in enumerate(group):
            pred = None if answer is None else answer[pos]
            row = {**ex.record(), "prediction": pred, "batch": b, "position": pos, "raw": reply.text}
            if benchmark == "fuzzing":
                row["highlight"] = list(ex.highlight)
            rows.append(row)
            if pred is None:
                failures += 1
            else:
                truth.append(ex.truth)
                predicted.append(pred)
    value = metrics.balanced_accuracy(truth, predicted)
    ci = metrics.balanced_accuracy_ci(truth, predicted) if value is not None else (None, None)
    details = {"benchmark": benchmark, "label_text": label_text, "selection": examples.settings,
               "ci": None if ci[0] is None else list(ci), "ci_method": "agresti-caffo balanced accuracy",
               "negatives_verified": examples.negatives_verified,
               "examples": rows, "batches": batch_rows}
    return Score(value, len(truth), failures, details)


async def example_vectors(embedder: Embedder, examples: ExampleSet) -> np.ndarray:
    return await embedder.embed([e.text() for e in examples.examples])


async def embedding(embedder: Embedder, label_text: str, examples: ExampleSet,
                    vectors: np.ndarray | None = None) -> Score:
    """AUROC of the cosine similarity between the label and each example, positives vs negatives."""
    if vectors is None:
        vectors = await example_vectors(embedder, examples)
    label_vec = (await embedder.embed([label_text]))[0]
    sims = metrics.cosine(vectors, label_vec)
    truth = [e.truth for e in examples.examples]
    rows = [{**e.record(), "similarity": float(s)} for e, s in zip(examples.examples, sims)]
    ci = metrics.auroc_ci(truth, sims.tolist())
    details = {"benchmark": "embedding", "label_text": label_text, "embedding_model": embedder.name,
               "selection": examples.settings, "ci": None if ci[0] is None else list(ci),
               "negatives_verified": examples.negatives_verified,
               "ci_method": "hanley-mcneil auroc, logit scale", "examples": rows}
    return Score(metrics.auroc(truth, sims.tolist()), len(rows), 0, details)
