"""Who judges what, in which order: assignments, per-annotator progress, the review queue.

Assignment is lazy: an annotator is handed features in batches as they work.  Each
feature goes to ``overlap`` annotators (project setting), so agreement can be measured;
features already taken by someone else (but not yet by ``overlap`` people) come first, so
pairs complete early.  The order is stratified by predicted category: round-robin over
input / output / cross / obscure / unscored, each category in a seeded per-annotator
pseudo-random order, so gold data covers every category from the start.

A batch is chosen and written in one ``BEGIN IMMEDIATE`` transaction, so many annotator
processes starting at once never over-assign a feature.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from . import settings
from .db import Project, now
from .judgments import FeatureJudgment, derive, ensure_annotator

QUEUE_CATEGORIES = ("input", "output", "cross", "obscure", "unscored")
BATCH = 100

_CAT_ORDER = " ".join(f"WHEN '{c}' THEN {i}" for i, c in enumerate(QUEUE_CATEGORIES))


def annotator_seed(annotator: str) -> int:
    """A stable 32-bit seed for one annotator's order."""
    return int.from_bytes(hashlib.sha256(annotator.encode()).digest()[:4], "big")


# Seeded pseudo-random key in SQL: multiply (mod 2^32), xor the seed, multiply again.
# SQLite has no xor operator: a ^ b == (a | b) - (a & b).
_KEY = (
    "((((f.id * 2654435761) % 4294967296) | :seed) - (((f.id * 2654435761) % 4294967296) & :seed))"
    " * 2246822519 % 4294967296"
)


def assign_more(project: Project, annotator: str, n: int | None = None) -> int:
    """Hand ``annotator`` up to ``n`` (default :data:`BATCH`) more features; return how many
    were assigned."""
    n = BATCH if n is None else n
    with project.write() as db:
        ensure_annotator(project, annotator)
        overlap = int(settings.get(project, "overlap"))
        start = db.execute(
            "SELECT COALESCE(MAX(position), -1) + 1 FROM assignments WHERE annotator = ?", [annotator]
        ).fetchone()[0]
        rows = db.execute(
            f"""
            WITH cand AS (
                SELECT f.id AS fid, COALESCE(t.category, 'unscored') AS cat,
                       -- others who hold the feature: assigned, or judged it without an
                       -- assignment (judgments imported or merged from elsewhere)
                       (SELECT COUNT(*) FROM (
                            SELECT a.annotator FROM assignments a WHERE a.feature_id = f.id
                            UNION
                            SELECT j.annotator FROM judgments j
                            WHERE j.feature_id = f.id AND j.annotator != :who
                              AND j.kind NOT IN ('retract', 'adj_tier', 'adj_verdict', 'adj_gold_label')
                       )) AS taken,
                       {_KEY} AS k
                FROM features f LEFT JOIN taxonomy_scores t ON t.feature_id = f.id
                WHERE NOT EXISTS (SELECT 1 FROM assignments a
                                  WHERE a.feature_id = f.id AND a.annotator = :who)
                  AND EXISTS (SELECT 1 FROM examples e WHERE e.feature_id = f.id AND e.kind = 'top')
            ), ranked AS (
                SELECT fid, cat,
                       ROW_NUMBER() OVER (PARTITION BY cat ORDER BY (taken > 0) DESC, k, fid) AS rn
                FROM cand WHERE taken < :overlap
            )
            SELECT fid FROM ranked ORDER BY rn, CASE cat {_CAT_ORDER} ELSE 9 END LIMIT :n
            """,
            {"seed": annotator_seed(annotator), "who": annotator, "overlap": overlap, "n": n},
        ).fetchall()
        stamp = now()
        db.conn.executemany(
            "INSERT OR IGNORE INTO assignments(feature_id, annotator, position, created_at) "
            "VALUES (?, ?, ?, ?)",
            [(fid, annotator, start + i, stamp) for i, (fid,) in enumerate(rows)],
        )
    return len(rows)


def queue(project: Project, annotator: str) -> list[int]:
    """The annotator's assigned feature ids in queue order."""
    return [r[0] for r in project.db.execute(
        "SELECT feature_id FROM assignments WHERE annotator = ? ORDER BY position", [annotator]
    ).fetchall()]


@dataclass
class FeatureState:
    """Where one annotator stands on one feature."""

    judgment: FeatureJudgment | None
    candidates: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.judgment is not None and self.judgment.done(self.candidates)

    @property
    def skipped(self) -> bool:
        return self.judgment is not None and self.judgment.skipped and not self.done

    @property
    def started(self) -> bool:
        return self.judgment is not None


def _own_view(rows: list[dict[str, Any]], annotator: str, lead: bool) -> dict[int, FeatureJudgment]:
    """Fold events into one judgment per feature: the annotator's own, or a lead's
    adjudication (with the lead's own skip/flag/note/preference events folded in)."""
    view = derive(rows)
    out: dict[int, FeatureJudgment] = {}
    for (fid, who), j in view.items():
        if lead:
            if who == f"{annotator} (adjudication)":
                base = out.setdefault(fid, FeatureJudgment(fid, annotator, is_adjudication=True))
                base.tier, base.confidence = j.tier, j.confidence
                base.verdicts.update(j.verdicts)
                base.gold_label = j.gold_label or base.gold_label
                base.seconds_spent = max(base.seconds_spent, j.seconds_spent)
            elif who == annotator:
                base = out.setdefault(fid, FeatureJudgment(fid, annotator, is_adjudication=True))
                base.preference, base.skipped = j.preference, j.skipped
                base.flags, base.notes = j.flags, j.notes
                base.seconds_spent = max(base.seconds_spent, j.seconds_spent)
        elif who == annotator:
            out[fid] = j
    return out


def feature_state(project: Project, feature_id: int, annotator: str, candidates: list[str],
                  *, lead: bool = False) -> FeatureState:
    """The annotator's (or lead's adjudication) state on one feature, from the event log."""
    rows = project.query(
        "SELECT * FROM judgments WHERE feature_id = ? AND annotator = ?", [feature_id, annotator]
    )
    return FeatureState(_own_view(rows, annotator, lead).get(feature_id), list(candidates))


def states(project: Project, annotator: str, feature_ids: list[int] | None = None, *,
           lead: bool = False) -> dict[int, FeatureState]:
    """States of the annotator's assigned features (or of ``feature_ids``), in few queries."""
    if feature_ids is None:
        jrows = project.query(
            "SELECT j.* FROM assignments a JOIN judgments j "
            "ON j.feature_id = a.feature_id AND j.annotator = a.annotator WHERE a.annotator = ?",
            [annotator],
        )
        lrows = project.query(
            "SELECT l.feature_id, l.uuid FROM assignments a JOIN labels l "
            "ON l.feature_id = a.feature_id AND l.status = 'ok' WHERE a.annotator = ?",
            [annotator],
        )
        feature_ids = queue(project, annotator)
    else:
        jrows, lrows = [], []
        for chunk in _chunks(feature_ids):
            marks = ",".join("?" * len(chunk))
            jrows += project.query(
                f"SELECT * FROM judgments WHERE annotator = ? AND feature_id IN ({marks})",
                [annotator, *chunk],
            )
            lrows += project.query(
                f"SELECT feature_id, uuid FROM labels WHERE status = 'ok' AND feature_id IN ({marks})",
                chunk,
            )
    cands: dict[int, list[str]] = {}
    for r in lrows:
        cands.setdefault(r["feature_id"], []).append(r["uuid"])
    own = _own_view(jrows, annotator, lead)
    return {fid: FeatureState(own.get(fid), cands.get(fid, [])) for fid in feature_ids}


def _chunks(ids: list[int], size: int = 500) -> list[list[int]]:
    return [ids[i:i + size] for i in range(0, len(ids), size)]


def disagreements(project: Project) -> list[int]:
    """Feature ids where at least two annotators disagree on the tier or on a verdict for
    the same candidate label (retractions taken into account), in feature order."""
    fids = [r[0] for r in project.db.execute(
        "SELECT feature_id FROM judgments WHERE kind IN ('tier', 'verdict') "
        "GROUP BY feature_id HAVING COUNT(DISTINCT annotator) >= 2 ORDER BY feature_id"
    ).fetchall()]
    out: list[int] = []
    for chunk in _chunks(fids):
        marks = ",".join("?" * len(chunk))
        view = derive(project.query(
            f"SELECT * FROM judgments WHERE feature_id IN ({marks}) "
            "AND kind NOT LIKE 'adj_%'", chunk,
        ))
        by_feature: dict[int, list[FeatureJudgment]] = {}
        for (fid, _who), j in view.items():
            by_feature.setdefault(fid, []).append(j)
        for fid in chunk:
            if disagree(by_feature.get(fid, [])):
                out.append(fid)
    return out


def disagree(judgments: list[FeatureJudgment]) -> bool:
    """Do these annotators' judgments differ on the tier or on any shared verdict?"""
    tiers = {j.tier for j in judgments if j.tier is not None}
    if len(tiers) > 1:
        return True
    verdicts: dict[str, set[str]] = {}
    for j in judgments:
        for label, v in j.verdicts.items():
            verdicts.setdefault(label, set()).add(v)
    return any(len(v) > 1 for v in verdicts.values())


def others(project: Project, feature_id: int, annotator: str) -> list[FeatureJudgment]:
    """Every other annotator's current judgment of a feature (what a lead reviews)."""
    view = derive(project.query(
        "SELECT * FROM judgments WHERE feature_id = ? AND kind NOT LIKE 'adj_%'", [feature_id]
    ))
    return sorted((j for (fid, who), j in view.items() if who != annotator), key=lambda j: j.annotator)
