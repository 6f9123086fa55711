"""Small read-only queries that feed the statistics (no computation here)."""
from __future__ import annotations

from dataclasses import dataclass

from saegold.store import judgments as store_judgments
from saegold.store.db import Project
from saegold.store.judgments import FeatureJudgment


@dataclass(frozen=True)
class FeatureInfo:
    id: int
    source: str  # "MODEL/SOURCE"
    model_id: str
    sae_id: str
    layer: int | None
    index: int
    category: str | None
    input_score: float | None
    output_score: float | None


@dataclass(frozen=True)
class LabelInfo:
    uuid: str
    id: int
    feature_id: int
    method: str
    text: str | None
    status: str
    live: bool = True  # usable and not superseded by a redo (store.labels.LIVE)


@dataclass(frozen=True)
class BenchScore:
    label_uuid: str
    feature_id: int
    benchmark: str
    control: str  # 'true' | 'shuffled'
    value: float | None
    n: int
    parse_failures: int
    ci_low: float | None = None   # the score's own 95% interval, stored with it (None: older rows)
    ci_high: float | None = None
    negatives_verified: bool | None = None   # False: negatives no model checked (store.export rule)


def judgments(project: Project) -> tuple[list[FeatureJudgment], list[FeatureJudgment]]:
    """The current view split into (annotators' own judgments, lead adjudications)."""
    view = store_judgments.current(project)
    own = [j for j in view.values() if not j.is_adjudication]
    adj = [j for j in view.values() if j.is_adjudication]
    key = lambda j: (j.feature_id, j.annotator)  # noqa: E731
    return sorted(own, key=key), sorted(adj, key=key)


def features(project: Project) -> dict[int, FeatureInfo]:
    rows = project.query(
        "SELECT f.id, s.name AS source, s.model_id, s.sae_id, s.layer, f.idx, t.category, "
        "t.input_score, t.output_score FROM features f JOIN sources s ON s.id = f.source_id "
        "LEFT JOIN taxonomy_scores t ON t.feature_id = f.id ORDER BY f.id"
    )
    return {r["id"]: FeatureInfo(r["id"], r["source"], r["model_id"], r["sae_id"], r["layer"],
                                 r["idx"], r["category"], r["input_score"], r["output_score"])
            for r in rows}


def labels(project: Project) -> dict[str, LabelInfo]:
    from saegold.store.labels import LIVE

    rows = project.query(f"SELECT uuid, id, feature_id, method, text, status, ({LIVE}) AS live FROM labels ORDER BY id")
    return {r["uuid"]: LabelInfo(r["uuid"], r["id"], r["feature_id"], r["method"], r["text"], r["status"],
                                 bool(r["live"]))
            for r in rows}


def bench_scores(project: Project) -> list[BenchScore]:
    from saegold.store.benchmarks import negatives_verified_sql

    rows = project.query(
        "SELECT l.uuid, l.feature_id, b.benchmark, b.control, b.value, b.n, b.parse_failures, "
        "json_extract(b.details, '$.ci[0]') AS ci_low, json_extract(b.details, '$.ci[1]') AS ci_high, "
        f"{negatives_verified_sql('b')} AS verified "
        "FROM bench_scores b JOIN labels l ON l.id = b.label_id ORDER BY b.id"
    )
    return [BenchScore(r["uuid"], r["feature_id"], r["benchmark"], r["control"], r["value"],
                       r["n"], r["parse_failures"], r["ci_low"], r["ci_high"],
                       None if r["verified"] is None else bool(r["verified"])) for r in rows]


def thresholds(project: Project) -> tuple[float, float]:
    from saegold.store import settings

    cfg = settings.load(project)
    return cfg.input_threshold, cfg.output_threshold
