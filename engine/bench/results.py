"""``bench_scores`` rows: one per (label, benchmark, control), written as each completes."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from saegold.store.benchmarks import negatives_verified_sql, sampler_sql
from saegold.store.db import Project, dumps, loads, now
from saegold.store.superseded import supersede_bench


@dataclass(frozen=True)
class BenchRow:
    label_id: int
    benchmark: str
    control: str            # 'true' | 'shuffled'
    scored_label_id: int    # the label whose text was judged
    value: float | None
    n: int
    parse_failures: int
    judge_model: str | None
    seed: int
    details: dict


def stored_runs(project: Project, benchmarks: list[str] | tuple[str, ...]) -> dict[tuple[int, str, str], tuple]:
    """(label_id, benchmark, control) -> (seed, judge model, example selection settings) of
    every stored result of these benchmarks: what a result was made with."""
    if not benchmarks:
        return {}
    marks = ",".join("?" * len(benchmarks))
    return {(r["label_id"], r["benchmark"], r["control"]): (r["seed"], r["judge_model"], loads(r["selection"]))
            for r in project.query(
                "SELECT label_id, benchmark, control, seed, judge_model, "
                "json_extract(details, '$.selection') AS selection "
                f"FROM bench_scores WHERE benchmark IN ({marks})", list(benchmarks))}


def write(project: Project, row: BenchRow) -> None:
    """Store one result in its own short transaction; an earlier one it replaces (--redo, or
    other example settings) is superseded: kept in ``store.superseded``, no longer live."""
    with project.write() as db:
        supersede_bench(db, row.label_id, row.benchmark, row.control)
        db.execute(
            "INSERT INTO bench_scores(label_id, benchmark, control, scored_label_id, value, n, parse_failures, "
            "judge_model, seed, details, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(label_id, benchmark, control) DO UPDATE SET scored_label_id = excluded.scored_label_id, "
            "value = excluded.value, n = excluded.n, parse_failures = excluded.parse_failures, "
            "judge_model = excluded.judge_model, seed = excluded.seed, details = excluded.details, "
            "created_at = excluded.created_at",
            [row.label_id, row.benchmark, row.control, row.scored_label_id, row.value, row.n,
             row.parse_failures, row.judge_model, row.seed, dumps(row.details), now()],
        )


def rows(project: Project, *, with_details: bool = False) -> list[dict[str, Any]]:
    """Every result joined with its label's feature, method and the feature's category."""
    cols = ", b.details" if with_details else ""
    out = project.query(
        "SELECT b.label_id, b.benchmark, b.control, b.scored_label_id, b.value, b.n, b.parse_failures, "
        f"b.judge_model, b.seed{cols}, json_extract(b.details, '$.selection.negatives') AS negatives, "
        f"{sampler_sql('b')} AS sampler, "
        f"{negatives_verified_sql('b')} AS negatives_verified, "
        "json_extract(b.details, '$.ci[0]') AS ci_low, json_extract(b.details, '$.ci[1]') AS ci_high, "
        "l.feature_id, l.method, t.category "
        "FROM bench_scores b JOIN labels l ON l.id = b.label_id "
        "LEFT JOIN taxonomy_scores t ON t.feature_id = l.feature_id "
        "ORDER BY b.label_id, b.benchmark, b.control")
    if with_details:
        for r in out:
            r["details"] = loads(r["details"])
    return out
