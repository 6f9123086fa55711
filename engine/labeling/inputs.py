"""What the label methods read about a feature, loaded from the project database."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from saegold.store import features as F
from saegold.store.db import Project

TOP_K = 5  # examples per feature, as in the experiment (top 5 activating)


@dataclass
class Example:
    id: int
    rank: int
    tokens: list[str]
    acts: list[float]
    max_idx: int
    max_act: float


@dataclass
class FeatureData:
    feature_id: int
    source: str
    idx: int
    category: str | None
    examples: list[Example] = field(default_factory=list)
    promoted: list[dict[str, Any]] = field(default_factory=list)
    suppressed: list[dict[str, Any]] = field(default_factory=list)
    amplified_next: list[dict[str, Any]] = field(default_factory=list)
    continuation: str | None = None
    nla: dict[int, str] = field(default_factory=dict)   # example id -> explanation text

    @property
    def scale_max(self) -> float:
        """The max activation over the examples shown (the 10 of every 0-10 scale)."""
        return max((e.max_act for e in self.examples), default=0.0)

    def nla_complete(self) -> bool:
        return bool(self.examples) and all(e.id in self.nla for e in self.examples)


def feature_rows(project: Project, *, source: str | None = None,
                 indices: list[int] | None = None) -> list[dict[str, Any]]:
    """Features (id, source, idx, category), optionally of one source / these indices."""
    sql = ("SELECT f.id, s.name AS source, f.idx, t.category FROM features f "
           "JOIN sources s ON s.id = f.source_id LEFT JOIN taxonomy_scores t ON t.feature_id = f.id")
    where, args = [], []
    if source is not None:
        where.append("s.name = ?")
        args.append(source)
    if indices is not None:
        where.append("f.idx IN (SELECT value FROM json_each(?))")   # one variable, any length
        args.append(json.dumps([int(i) for i in indices]))
    if where:
        sql += " WHERE " + " AND ".join(where)
    return project.query(sql + " ORDER BY s.name, f.idx", args)


SPM_SPACE = "\u2581"  # SentencePiece's visible space ("▁"), as in Neuronpedia's Gemma tokens


def as_text(token: str) -> str:
    """A token as the text it stands for: SentencePiece's "▁" becomes a space (prompts and
    NLA requests carry text, as a tokenizer's decode would give)."""
    return token.replace(SPM_SPACE, " ")


def _logits(project: Project, fid: int, kind: str) -> list[dict[str, Any]]:
    return [{**t, "token": as_text(t["token"])} for t in F.logit_tokens(project, fid, kind)]


def load(project: Project, row: dict[str, Any], nla_source: str | None) -> FeatureData:
    """Everything the methods need about one feature (tokens as text, see :func:`as_text`)."""
    fid = row["id"]
    examples = [
        Example(r["id"], r["rank"], [as_text(t) for t in r["tokens"]], [float(a) for a in r["acts"]],
                int(r["max_idx"]), float(r["max_act"]))
        for r in F.examples(project, fid, "top")[:TOP_K]
        if r["tokens"] and float(r["max_act"]) > 0
    ]
    data = FeatureData(fid, row["source"], row["idx"], row.get("category"), examples,
                       _logits(project, fid, "promoted"), _logits(project, fid, "suppressed"),
                       _logits(project, fid, "amplified_next"))
    data.continuation = project.scalar("SELECT continuation FROM taxonomy_scores WHERE feature_id = ?", [fid])
    if nla_source is not None and examples:
        data.nla = stored_nla(project, examples, nla_source)
    return data


def stored_nla(project: Project, examples: list[Example], nla_source: str) -> dict[int, str]:
    """Stored NLA explanations of each example at its max-activating token."""
    out: dict[int, str] = {}
    for e in examples:
        text = project.scalar(
            "SELECT text FROM nla_explanations WHERE example_id = ? AND nla_source = ? AND token_index = ?",
            [e.id, nla_source, e.max_idx],
        )
        if text is not None:
            out[e.id] = text
    return out
