"""Steered continuations (tables ``steering`` and ``steering_clean``; definitions in
:mod:`engine.scoring.steering`).

Writers take ``db`` (the sqlite-utils ``Database`` yielded by ``Project.write()``), so a
caller decides how much goes into one transaction.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .sqlite_utils_lib import Database

from .db import Project, dumps, loads, now


@dataclass(frozen=True)
class SteeredRow:
    feature_id: int
    target_kl: float
    alpha: float
    kl: float
    reached: bool
    continuations: list[dict[str, Any]]     # [{"prompt", "text", "token_ids"}]
    details: dict[str, Any]


def replace_feature(db: Database, feature_id: int, rows: list[SteeredRow]) -> None:
    """The feature's steering results become ``rows`` (earlier targets are dropped)."""
    db.execute("DELETE FROM steering WHERE feature_id = ?", [feature_id])
    for r in rows:
        db.execute(
            "INSERT INTO steering(feature_id, target_kl, alpha, kl, reached, continuations, details, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [feature_id, float(r.target_kl), float(r.alpha), float(r.kl), int(bool(r.reached)),
             dumps(r.continuations), dumps(r.details), now()])


def put_clean(db: Database, source_id: int, prompt: str, text: str, token_ids: list[int],
              details: dict[str, Any]) -> None:
    db.execute(
        "INSERT INTO steering_clean(source_id, prompt, text, token_ids, details, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(source_id, prompt) DO UPDATE SET text = excluded.text, "
        "token_ids = excluded.token_ids, details = excluded.details, created_at = excluded.created_at",
        [source_id, prompt, text, dumps([int(t) for t in token_ids]), dumps(details), now()])


def done_settings(project: Project, source: str) -> dict[int, list[tuple[float, dict]]]:
    """Feature index -> [(target, settings it was made with)] of a source's stored results."""
    out: dict[int, list[tuple[float, dict]]] = {}
    for r in project.query(
            "SELECT f.idx, st.target_kl, json_extract(st.details, '$.settings') AS settings FROM steering st "
            "JOIN features f ON f.id = st.feature_id JOIN sources s ON s.id = f.source_id WHERE s.name = ?",
            [source]):
        out.setdefault(r["idx"], []).append((r["target_kl"], loads(r["settings"]) or {}))
    return out


def clean_settings(project: Project, source: str) -> dict[str, dict]:
    """Prompt -> settings of a source's stored clean continuations."""
    return {r["prompt"]: loads(r["details"]) or {} for r in project.query(
        "SELECT c.prompt, c.details FROM steering_clean c JOIN sources s ON s.id = c.source_id WHERE s.name = ?",
        [source])}


def for_feature(project: Project, feature_id: int) -> list[SteeredRow]:
    """The feature's steering results, by target."""
    return [SteeredRow(r["feature_id"], r["target_kl"], r["alpha"], r["kl"], bool(r["reached"]),
                       loads(r["continuations"]), loads(r["details"]))
            for r in project.query("SELECT * FROM steering WHERE feature_id = ? ORDER BY target_kl", [feature_id])]


def clean_for_feature(project: Project, feature_id: int) -> dict[str, str]:
    """Prompt -> the clean continuation text, for the feature's source."""
    return {r["prompt"]: r["text"] for r in project.query(
        "SELECT c.prompt, c.text FROM steering_clean c JOIN features f ON f.source_id = c.source_id "
        "WHERE f.id = ?", [feature_id])}
