"""What the feature screen shows, read from the project store in a handful of indexed queries."""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from store import features as sf
from store import labels as sl
from store import steering as sst
from store.db import Project
from store.examples import examples_lazy

MAX_EXAMPLES = 50
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass
class Candidate:
    """One candidate label as shown: a letter, never the method (until revealed)."""

    letter: str
    uuid: str
    text: str
    method: str
    bench: dict[str, dict[str, float | None]] = field(default_factory=dict)  # benchmark -> control -> value


@dataclass
class FeatureView:
    feature_id: int
    source: str
    idx: int
    density: float | None
    max_act: float | None
    examples: Sequence[dict[str, Any]]   # items: tokens, acts, max_idx, max_act (and more)
    promoted: list[tuple[str, float | None]]
    suppressed: list[tuple[str, float | None]]
    amplified_next: list[tuple[str, float | None]]
    taxonomy: dict[str, Any] | None
    candidates: list[Candidate]
    steering: list[sst.SteeredRow] = field(default_factory=list)   # steered continuations, by target KL
    clean: dict[str, str] = field(default_factory=dict)             # prompt -> clean continuation
    model_id: str | None = None     # what the source names: the model and SAE a score run needs
    sae_id: str | None = None

    @property
    def candidate_uuids(self) -> list[str]:
        return [c.uuid for c in self.candidates]

    def candidate(self, uuid: str | None) -> Candidate | None:
        return next((c for c in self.candidates if c.uuid == uuid), None)


def shuffled(cands: list[dict[str, Any]], annotator: str, feature_id: int) -> list[dict[str, Any]]:
    """Candidates in a per-annotator, per-feature shuffled order (stable across sessions)."""
    base = sorted(cands, key=lambda c: c["uuid"])
    random.Random(f"{annotator}\x1f{feature_id}").shuffle(base)
    return base


def load_feature(project: Project, feature_id: int, annotator: str) -> FeatureView:
    row = project.query(
        "SELECT f.id, f.idx, f.density, f.max_act, s.name AS source, s.model_id, s.sae_id FROM features f "
        "JOIN sources s ON s.id = f.source_id WHERE f.id = ?", [feature_id]
    )[0]
    # Decoded when shown: the screen shows 5-15 of them until the annotator asks for more.
    examples = examples_lazy(project, feature_id, "top", limit=MAX_EXAMPLES)
    lt: dict[str, list[tuple[str, float | None]]] = {"promoted": [], "suppressed": [], "amplified_next": []}
    for r in project.query(
        "SELECT kind, token, value FROM logit_tokens WHERE feature_id = ? ORDER BY kind, rank", [feature_id]
    ):
        lt[r["kind"]].append((r["token"], r["value"]))
    tax = project.query("SELECT * FROM taxonomy_scores WHERE feature_id = ?", [feature_id])
    cands = shuffled(sl.candidates(project, feature_id), annotator, feature_id)
    bench: dict[int, dict[str, dict[str, float | None]]] = {}
    if cands:
        ids = [c["id"] for c in cands]
        for b in project.query(
            f"SELECT label_id, benchmark, control, value FROM bench_scores "
            f"WHERE label_id IN ({','.join('?' * len(ids))})", ids,
        ):
            bench.setdefault(b["label_id"], {}).setdefault(b["benchmark"], {})[b["control"]] = b["value"]
    return FeatureView(
        feature_id=feature_id, source=row["source"], idx=row["idx"], density=row["density"],
        max_act=row["max_act"], examples=examples, promoted=lt["promoted"],
        suppressed=lt["suppressed"], amplified_next=lt["amplified_next"],
        taxonomy=tax[0] if tax else None, model_id=row["model_id"], sae_id=row["sae_id"],
        candidates=[
            Candidate(LETTERS[i] if i < len(LETTERS) else str(i), c["uuid"], c["text"] or "",
                      c["method"], bench.get(c["id"], {}))
            for i, c in enumerate(cands)
        ],
        steering=sst.for_feature(project, feature_id), clean=sst.clean_for_feature(project, feature_id),
    )


def find_feature(project: Project, idx: int, source: str | None) -> int | None:
    """The feature id for an index (in ``source``, else the only source holding it)."""
    if source is not None:
        fid = sf.feature_id(project, source, idx)
        if fid is not None:
            return fid
    rows = project.query("SELECT id FROM features WHERE idx = ? ORDER BY id LIMIT 1", [idx])
    return rows[0]["id"] if rows else None
