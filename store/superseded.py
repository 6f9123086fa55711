"""Results a ``--redo`` replaced: kept, never live.

A redo replaces a feature's taxonomy scores (``saegold score --redo``), its intruder result or a
label's benchmark result (``saegold bench --redo``, or a re-run with other example settings): the live tables
keep one row per feature, and per (label, benchmark, control), which is what every reader
uses.  The row it replaced is not lost: it is copied here first, whole (every column, as JSON,
so a column added later is kept too), with when it was superseded.  Labels are superseded in
place instead (``store/labels.py``): judgments refer to them by id.
"""
from __future__ import annotations

from typing import Any

from .sqlite_utils_lib import Database

from .db import Project, dumps, loads, now

TABLES = ("taxonomy_scores", "bench_scores", "intruder_scores")


def _archive(db: Database, table: str, where: str, params: list[Any], feature_id: int,
             label_id: int | None) -> bool:
    cur = db.execute(f"SELECT * FROM {table} WHERE {where}", params)
    row = cur.fetchone()
    if row is None:
        return False
    record = dict(zip([d[0] for d in cur.description], row))
    db.execute("INSERT INTO superseded_results(tbl, feature_id, label_id, row, superseded_at) "
               "VALUES (?, ?, ?, ?, ?)", [table, feature_id, label_id, dumps(record), now()])
    return True


def supersede_taxonomy(db: Database, feature_id: int) -> bool:
    """Copy the feature's live taxonomy scores here before a redo replaces them (inside the
    replacing write's transaction); False when it had none."""
    return _archive(db, "taxonomy_scores", "feature_id = ?", [feature_id], feature_id, None)


def supersede_bench(db: Database, label_id: int, benchmark: str, control: str) -> bool:
    """Copy a label's live result of (benchmark, control) here before a re-run replaces it."""
    fid = db.execute("SELECT feature_id FROM labels WHERE id = ?", [label_id]).fetchone()
    if fid is None:
        return False
    return _archive(db, "bench_scores", "label_id = ? AND benchmark = ? AND control = ?",
                    [label_id, benchmark, control], fid[0], label_id)


def supersede_intruder(db: Database, feature_id: int) -> bool:
    """Copy the feature's live intruder result here before a re-run replaces it."""
    return _archive(db, "intruder_scores", "feature_id = ?", [feature_id], feature_id, None)


def superseded(project: Project, feature_id: int, table: str | None = None) -> list[dict[str, Any]]:
    """The feature's superseded results, oldest first: ``{"table", "superseded_at", "row"}``."""
    sql = "SELECT tbl, row, superseded_at FROM superseded_results WHERE feature_id = ?"
    args: list[Any] = [feature_id]
    if table is not None:
        sql += " AND tbl = ?"
        args.append(table)
    return [{"table": r["tbl"], "superseded_at": r["superseded_at"], "row": loads(r["row"])}
            for r in project.query(sql + " ORDER BY id", args)]
