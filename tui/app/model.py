"""What the feature screen shows: the store's reads of one feature
(:mod:`store.feature_view`), with the candidates in the annotator's blind order."""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from saegold.store import feature_view as fv
from saegold.store import steering as sst
from saegold.store.db import Project
from saegold.store.feature_view import IntruderResult, Score, Taxonomy

MAX_EXAMPLES = 50
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass
class Candidate:
    """One candidate label as shown: a letter, never the method (until revealed)."""

    letter: str
    uuid: str
    text: str
    method: str
    bench: dict[str, dict[str, Score]] = field(default_factory=dict)  # benchmark -> control -> score


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
    taxonomy: Taxonomy | None
    candidates: list[Candidate]
    steering: list[sst.SteeredRow] = field(default_factory=list)   # steered continuations, by target KL
    clean: dict[str, str] = field(default_factory=dict)             # prompt -> clean continuation
    model_id: str | None = None     # what the source names: the model and SAE a score run needs
    sae_id: str | None = None
    intruder: IntruderResult | None = None   # the feature's intruder benchmark (revealed with the scores)
    # examples across the activation range (kind 'quantile', each with its bin), under "more"
    quantiles: Sequence[dict[str, Any]] = ()

    @property
    def candidate_uuids(self) -> list[str]:
        return [c.uuid for c in self.candidates]

    def candidate(self, uuid: str | None) -> Candidate | None:
        return next((c for c in self.candidates if c.uuid == uuid), None)


def shuffled(cands: list[fv.LabelScores], annotator: str, feature_id: int) -> list[fv.LabelScores]:
    """Candidates in a per-annotator, per-feature shuffled order (stable across sessions)."""
    base = sorted(cands, key=lambda c: c.uuid)
    random.Random(f"{annotator}\x1f{feature_id}").shuffle(base)
    return base


def load_feature(project: Project, feature_id: int, annotator: str) -> FeatureView:
    head = fv.head(project, feature_id)
    if head is None:
        raise LookupError(f"no feature with id {feature_id} in this project")
    lt = fv.logit_tokens(project, feature_id)
    cands = shuffled(fv.labels(project, feature_id), annotator, feature_id)
    return FeatureView(
        feature_id=feature_id, source=head.source, idx=head.idx, density=head.density,
        max_act=head.max_act,
        # Decoded when shown: the screen shows 5-15 of them until the annotator asks for more.
        examples=fv.top_examples(project, feature_id, MAX_EXAMPLES),
        promoted=lt.promoted, suppressed=lt.suppressed, amplified_next=lt.amplified_next,
        taxonomy=fv.taxonomy(project, feature_id), model_id=head.model_id, sae_id=head.sae_id,
        candidates=[Candidate(LETTERS[i] if i < len(LETTERS) else str(i), c.uuid, c.text, c.method, c.scores)
                    for i, c in enumerate(cands)],
        steering=sst.for_feature(project, feature_id), clean=sst.clean_for_feature(project, feature_id),
        intruder=fv.intruder(project, feature_id),
        quantiles=fv.quantile_examples(project, feature_id),
    )


def find_feature(project: Project, idx: int, source: str | None) -> int | None:
    """The feature id for an index (in ``source``, else the only source holding it)."""
    return fv.find_feature(project, idx, source)
