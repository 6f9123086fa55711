"""What the annotation app's feature screen reads about one feature, as plain dataclasses:
the one home of those queries (the app holds no SQL).  Each read is one indexed query on
the feature's id (or, for :func:`find_feature`, its index).

Candidate labels come with their live benchmark scores and each score's stored 95%
interval (``details.ci``, written by :mod:`engine.bench`); the per-feature intruder result
likewise.  Whether the screen may show them (blind mode) is the app's rule, not this
module's.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .db import Project
from .examples import LazyExamples, examples_lazy
from .labels import live


@dataclass(frozen=True)
class FeatureHead:
    """The feature and the source it belongs to."""

    feature_id: int
    idx: int
    source: str
    density: float | None
    max_act: float | None
    model_id: str | None = None     # what the source names: the model and SAE a score run needs
    sae_id: str | None = None


@dataclass(frozen=True)
class LogitTokens:
    """Output evidence by token, strongest first: ``(token, value)`` pairs (logit-lens value,
    or the next-token probability for ``amplified_next``)."""

    promoted: list[tuple[str, float | None]] = field(default_factory=list)
    suppressed: list[tuple[str, float | None]] = field(default_factory=list)
    amplified_next: list[tuple[str, float | None]] = field(default_factory=list)


@dataclass(frozen=True)
class Taxonomy:
    """The feature's taxonomy scores and predicted category (None where not scored)."""

    category: str | None
    input_score: float | None
    output_score: float | None
    input_threshold: float | None
    output_threshold: float | None
    continuation: str | None


@dataclass(frozen=True)
class Score:
    """One stored benchmark result: its value, its 95% interval where stored, and how many
    examples (or rounds) it rests on."""

    value: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int | None = None


@dataclass(frozen=True)
class LabelScores:
    """A live candidate label and its benchmark scores (benchmark -> control -> score)."""

    id: int
    uuid: str
    text: str
    method: str
    scores: dict[str, dict[str, Score]] = field(default_factory=dict)


@dataclass(frozen=True)
class IntruderResult:
    """The feature's intruder benchmark (no label needed): accuracy, its interval, and the
    chance level (1/(k+1))."""

    value: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    chance: float | None


def head(project: Project, feature_id: int) -> FeatureHead | None:
    rows = project.query(
        "SELECT f.id, f.idx, f.density, f.max_act, s.name AS source, s.model_id, s.sae_id FROM features f "
        "JOIN sources s ON s.id = f.source_id WHERE f.id = ?", [feature_id])
    if not rows:
        return None
    r = rows[0]
    return FeatureHead(r["id"], r["idx"], r["source"], r["density"], r["max_act"], r["model_id"], r["sae_id"])


def logit_tokens(project: Project, feature_id: int) -> LogitTokens:
    out = LogitTokens()
    for r in project.query(
            "SELECT kind, token, value FROM logit_tokens WHERE feature_id = ? ORDER BY kind, rank", [feature_id]):
        getattr(out, r["kind"]).append((r["token"], r["value"]))
    return out


def taxonomy(project: Project, feature_id: int) -> Taxonomy | None:
    rows = project.query(
        "SELECT category, input_score, output_score, input_threshold, output_threshold, continuation "
        "FROM taxonomy_scores WHERE feature_id = ?", [feature_id])
    return Taxonomy(**rows[0]) if rows else None


def labels(project: Project, feature_id: int) -> list[LabelScores]:
    """The feature's live candidate labels (usable, not superseded by a redo), oldest first,
    each with its live benchmark scores."""
    rows = project.query(
        f"SELECT id, uuid, text, method FROM labels WHERE feature_id = ? AND {live()} ORDER BY created_at, id",
        [feature_id])
    scores: dict[int, dict[str, dict[str, Score]]] = {}
    if rows:
        ids = [r["id"] for r in rows]
        for b in project.query(
                "SELECT label_id, benchmark, control, value, n, json_extract(details, '$.ci[0]') AS lo, "
                "json_extract(details, '$.ci[1]') AS hi FROM bench_scores "
                f"WHERE label_id IN ({','.join('?' * len(ids))})", ids):
            scores.setdefault(b["label_id"], {}).setdefault(b["benchmark"], {})[b["control"]] = \
                Score(b["value"], b["lo"], b["hi"], b["n"])
    return [LabelScores(r["id"], r["uuid"], r["text"] or "", r["method"], scores.get(r["id"], {})) for r in rows]


def intruder(project: Project, feature_id: int) -> IntruderResult | None:
    rows = project.query(
        "SELECT value, json_extract(details, '$.ci[0]') AS ci_low, json_extract(details, '$.ci[1]') AS ci_high, "
        "n, json_extract(details, '$.chance') AS chance FROM intruder_scores WHERE feature_id = ?", [feature_id])
    return IntruderResult(**rows[0]) if rows else None


def top_examples(project: Project, feature_id: int, limit: int) -> LazyExamples:
    """The ``limit`` strongest examples, decoded when first read (:class:`LazyExamples`)."""
    return examples_lazy(project, feature_id, "top", limit=limit)


def quantile_examples(project: Project, feature_id: int) -> LazyExamples:
    """The examples drawn across the activation range (kind ``quantile``: each with its
    ``bin``, 0 the weakest), strongest bin first as stored."""
    return examples_lazy(project, feature_id, "quantile")


def find_feature(project: Project, idx: int, source: str | None) -> int | None:
    """The feature id for an index (in ``source``, else the first source holding it)."""
    if source is not None:
        fid = project.scalar(
            "SELECT f.id FROM features f JOIN sources s ON s.id = f.source_id WHERE s.name = ? AND f.idx = ?",
            [source, idx])
        if fid is not None:
            return fid
    return project.scalar("SELECT id FROM features WHERE idx = ? ORDER BY id LIMIT 1", [idx])


def any_top_examples(project: Project) -> bool:
    """Does any feature of the project have activating examples?"""
    return project.scalar("SELECT 1 FROM examples WHERE kind = 'top' LIMIT 1") is not None
