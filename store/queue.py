"""Who judges what, in which order: assignments, per-annotator progress, the review queue.

Assignment is lazy: an annotator is handed features in batches as they work.  Each
feature goes to ``overlap`` annotators (project setting), so agreement can be measured;
features already taken by someone else (but not yet by ``overlap`` people) come first, so
pairs complete early.  The order is stratified by predicted category: round-robin over
input / output / cross / obscure / unscored, each category in a seeded per-annotator
pseudo-random order, so gold data covers every category from the start.

A batch is chosen from indexes in a read transaction, holding up no writer, and written in
a short ``BEGIN IMMEDIATE`` transaction that first checks the choice still holds (see
:func:`assign_more`), so many annotator processes starting at once never over-assign a
feature.
"""
from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from . import settings
from .db import Project, dumps, explain_db_error, now
from .judgments import FeatureJudgment, derive, ensure_annotator

QUEUE_CATEGORIES = ("input", "output", "cross", "obscure", "unscored")
BATCH = 100


def annotator_seed(annotator: str) -> int:
    """A stable 32-bit seed for one annotator's order."""
    return int.from_bytes(hashlib.sha256(annotator.encode()).digest()[:4], "big")


def _key(col: str) -> str:
    """Seeded pseudo-random sort key of feature id ``col``, in SQL: multiply (mod 2^32),
    xor the seed, multiply again.  SQLite has no xor operator: a ^ b == (a | b) - (a & b)."""
    h = f"(({col} * 2654435761) % 4294967296)"
    return f"(({h} | :seed) - ({h} & :seed)) * 2246822519 % 4294967296"


# Event kinds that make their author one of a feature's annotators (imported or merged
# judgments arrive without an assignment); a retraction or a lead's adjudication does not.
# Written exactly as in the partial index judgments_holders (schema m003), so it is used.
_NOT_HOLDING = "('retract', 'adj_tier', 'adj_verdict', 'adj_gold_label')"

# Features annotators other than :who hold (assigned, or judged without an assignment), with
# how many of them hold each, and of those the first :n per category in :who's order that
# still have room, are not :who's already and have examples.  The union merges two index
# scans (assignments' key, schema m003's judgments_holders) in (feature, annotator) order.
_STARTED = f"""
WITH held(fid, taken) AS (
    SELECT fid, COUNT(*) FROM (
        SELECT feature_id AS fid, annotator FROM assignments WHERE annotator != :who
        UNION
        SELECT feature_id, annotator FROM judgments
        WHERE annotator != :who AND kind NOT IN {_NOT_HOLDING}
        ORDER BY 1, 2
    ) GROUP BY fid
), cand AS (
    SELECT h.fid, COALESCE(t.category, 'unscored') AS cat, {_key('h.fid')} AS k
    FROM held h LEFT JOIN taxonomy_scores t ON t.feature_id = h.fid
    WHERE h.taken < :overlap
      AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.feature_id = h.fid AND a.annotator = :who)
      AND EXISTS (SELECT 1 FROM examples e WHERE e.feature_id = h.fid AND e.kind = 'top')
)
SELECT fid, cat FROM (
    SELECT fid, cat, ROW_NUMBER() OVER (PARTITION BY cat ORDER BY k, fid) AS rn FROM cand
) WHERE rn <= :n ORDER BY cat, rn
"""

# A feature nobody holds yet: no assignment at all (:who's included) and no judgment by
# another annotator; and it has examples to show.
_FRESH = f"""
    NOT EXISTS (SELECT 1 FROM assignments a WHERE a.feature_id = s.fid)
    AND NOT EXISTS (SELECT 1 FROM judgments j WHERE j.feature_id = s.fid AND j.annotator != :who
                    AND j.kind NOT IN {_NOT_HOLDING})
    AND EXISTS (SELECT 1 FROM examples e WHERE e.feature_id = s.fid AND e.kind = 'top')
"""

# The first :m features of one category in the annotator's order (from the category index,
# without looking at anything else), of which the first :need nobody holds.  The inner LIMIT
# keeps the per-feature checks to those :m features.
_FRESH_SCORED = f"""
SELECT fid FROM (
    SELECT feature_id AS fid, {_key('feature_id')} AS k FROM taxonomy_scores
    WHERE category = :cat ORDER BY k, fid LIMIT :m
) s WHERE {_FRESH} ORDER BY k, fid LIMIT :need
"""
_FRESH_UNSCORED = f"""
SELECT fid FROM (
    SELECT f.id AS fid, {_key('f.id')} AS k FROM features f
    WHERE NOT EXISTS (SELECT 1 FROM taxonomy_scores t
                      WHERE t.feature_id = f.id AND t.category IS NOT NULL)
    ORDER BY k, fid LIMIT :m
) s WHERE {_FRESH} ORDER BY k, fid LIMIT :need
"""


def _category_size(db: sqlite3.Connection, cat: str) -> int:
    """How many features the category holds (every score row has its feature: foreign key)."""
    if cat != "unscored":
        return db.execute("SELECT COUNT(*) FROM taxonomy_scores WHERE category = ?", [cat]).fetchone()[0]
    return db.execute(
        "SELECT (SELECT COUNT(*) FROM features) - (SELECT COUNT(*) FROM taxonomy_scores)"
        " + (SELECT COUNT(*) FROM taxonomy_scores WHERE category IS NULL)"
    ).fetchone()[0]


def _pick(project: Project, annotator: str, n: int) -> list[int]:
    """The next ``n`` features for ``annotator``, in queue order (reads only).

    Each feature goes to ``overlap`` annotators: those assigned it, and those who judged it
    without an assignment.  Per category, features others already hold come first (so pairs
    complete early), then features nobody holds, each part in the annotator's seeded order;
    the categories take turns (input, output, cross, obscure, unscored).  Only features with
    top examples are handed out.
    """
    db = project.db.conn
    overlap = settings.load(project).overlap
    if n <= 0 or overlap <= 0:
        return []
    params = {"seed": annotator_seed(annotator), "who": annotator, "overlap": overlap, "n": n}
    per_cat: dict[str, list[int]] = {c: [] for c in QUEUE_CATEGORIES}
    for fid, cat in db.execute(_STARTED, params).fetchall():
        per_cat[cat].append(fid)
    mine = db.execute("SELECT COUNT(*) FROM assignments WHERE annotator = ?", [annotator]).fetchone()[0]
    for cat in QUEUE_CATEGORIES:
        need = n - len(per_cat[cat])
        if need <= 0:
            continue
        size = _category_size(db, cat)
        sql = _FRESH_UNSCORED if cat == "unscored" else _FRESH_SCORED
        # Look at the first m features of the category in the annotator's order; those they
        # already have or others hold are passed over, so look further when too few were free.
        m = 2 * n + mine
        while size:
            fresh = [r[0] for r in db.execute(sql, {**params, "cat": cat, "m": m, "need": need})]
            if len(fresh) == need or m >= size:
                per_cat[cat] += fresh
                break
            m *= 4
    order = [per_cat[c][rn] for rn in range(n) for c in QUEUE_CATEGORIES if rn < len(per_cat[c])]
    return order[:n]


# Tries at choosing outside the write lock before choosing under it (see assign_more).
_TRIES = 2


def assign_more(project: Project, annotator: str, n: int | None = None) -> int:
    """Hand ``annotator`` up to ``n`` (default :data:`BATCH`) more features; return how many
    were assigned.

    The batch is chosen in a read transaction, so no writer (the annotator's own judgments
    included) waits while it is chosen, and written in a short ``BEGIN IMMEDIATE``
    transaction.  That transaction takes the batch as chosen if nothing was committed in
    between (``PRAGMA data_version``), or if the batch is full and every feature in it still
    goes to this annotator under the rules (not theirs yet, fewer than ``overlap`` holders,
    top examples).  Otherwise the batch is chosen again; after :data:`_TRIES` tries, inside
    the write transaction.  So many annotator processes starting at once never over-assign
    a feature.
    """
    n = BATCH if n is None else n
    if project.db.conn.in_transaction:  # inside a caller's transaction: choose and write in it
        with project.write():
            return _insert(project, annotator, _pick(project, annotator, n))
    for _ in range(_TRIES):
        chosen, version = _pick_snapshot(project, annotator, n)
        with project.write() as db:
            if _data_version(db.conn) == version or (
                    len(chosen) == n and _still_free(project, annotator, chosen)):
                return _insert(project, annotator, chosen)
    with project.write():
        return _insert(project, annotator, _pick(project, annotator, n))


# How many of the features :ids (a JSON list) still go to :who: not theirs yet, fewer than
# :overlap holders, top examples.
_STILL_FREE = f"""
SELECT COUNT(*) FROM json_each(:ids) c
WHERE NOT EXISTS (SELECT 1 FROM assignments a WHERE a.feature_id = c.value AND a.annotator = :who)
  AND EXISTS (SELECT 1 FROM examples e WHERE e.feature_id = c.value AND e.kind = 'top')
  AND (SELECT COUNT(*) FROM (
           SELECT annotator FROM assignments WHERE feature_id = c.value
           UNION
           SELECT annotator FROM judgments
           WHERE feature_id = c.value AND annotator != :who AND kind NOT IN {_NOT_HOLDING}
      )) < :overlap
"""


def _still_free(project: Project, annotator: str, chosen: list[int]) -> bool:
    """Does every feature in ``chosen`` still go to ``annotator`` (read inside the write
    transaction)?"""
    overlap = settings.load(project).overlap
    free = project.db.conn.execute(
        _STILL_FREE, {"ids": dumps(chosen), "who": annotator, "overlap": overlap}).fetchone()[0]
    return free == len(set(chosen))


def _data_version(conn: sqlite3.Connection) -> int:
    """Changes when another connection (any process) commits to the database."""
    return conn.execute("PRAGMA data_version").fetchone()[0]


def _pick_snapshot(project: Project, annotator: str, n: int) -> tuple[list[int], int]:
    """:func:`_pick` on one consistent snapshot, and the data version it saw."""
    conn = project.db.conn
    try:
        conn.execute("BEGIN")
        try:
            return _pick(project, annotator, n), _data_version(conn)
        finally:
            conn.execute("COMMIT")
    except sqlite3.DatabaseError as exc:
        err = explain_db_error(project.path, exc)
        if err is None:
            raise
        raise err from exc


def _insert(project: Project, annotator: str, chosen: list[int]) -> int:
    """Append ``chosen`` to the annotator's queue (inside a write transaction)."""
    ensure_annotator(project, annotator)
    conn = project.db.conn
    start = conn.execute(
        "SELECT COALESCE(MAX(position), -1) + 1 FROM assignments WHERE annotator = ?", [annotator]
    ).fetchone()[0]
    stamp = now()
    conn.executemany(
        "INSERT OR IGNORE INTO assignments(feature_id, annotator, position, created_at) "
        "VALUES (?, ?, ?, ?)",
        [(fid, annotator, start + i, stamp) for i, fid in enumerate(chosen)],
    )
    return len(chosen)


def queue(project: Project, annotator: str) -> list[int]:
    """The annotator's assigned feature ids in queue order."""
    return [r["feature_id"] for r in project.query(
        "SELECT feature_id FROM assignments WHERE annotator = ? ORDER BY position", [annotator])]


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
    fids = [r["feature_id"] for r in project.query(
        "SELECT feature_id FROM judgments WHERE kind IN ('tier', 'verdict') "
        "GROUP BY feature_id HAVING COUNT(DISTINCT annotator) >= 2 ORDER BY feature_id")]
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
