"""Candidate labels, NLA explanations and benchmark scores.

A redo supersedes: a label saegold makes for a (feature, method) that already has a live one
marks the old one ``superseded_by`` the new one (:func:`add_label`).  The old label stays, with
the judgments made on it (gold data and agreement use them for what they were), but the app,
``bench`` and ``method`` references see only live labels (:data:`LIVE`).  Imported labels
(origin ``neuronpedia``) are the source's own: several explanations of one ``typeName`` on a
feature stay several live candidates (name one by ``label_uuid``).
"""
from __future__ import annotations

import uuid as _uuid
from typing import Any

from .sqlite_utils_lib import Database

from .db import Project, dumps, now

# A usable candidate now: not a failed attempt, not replaced by a redo.  ``live("l")`` for an alias.
LIVE = "status = 'ok' AND superseded_at IS NULL"
SUPERSEDING_ORIGIN = "saegold"   # labels saegold makes: one live per (feature, method)


def live(alias: str = "") -> str:
    p = f"{alias}." if alias else ""
    return f"{p}status = 'ok' AND {p}superseded_at IS NULL"


# Stable namespace so that the same imported label always gets the same UUID (idempotent
# re-import, merge without duplicates).
_NS = _uuid.UUID("5d7c3a0e-8f61-4b8e-9a43-2f0d1e6b7c11")


def content_uuid(*parts: object) -> str:
    return str(_uuid.uuid5(_NS, "\x1f".join(str(p) for p in parts)))


def add_label(db: Database, feature_id: int, method: str, text: str | None, *, origin: str,
              status: str = "ok", model: str | None = None, prompt_hash: str | None = None,
              prompt_tokens: int | None = None, completion_tokens: int | None = None,
              raw_response: str | None = None, error: str | None = None,
              details: dict | None = None, uuid: str | None = None,
              created_at: str | None = None) -> str:
    """Insert a label (or failed attempt) unless its UUID exists; return the UUID.

    A usable label saegold makes (``origin`` saegold, status ok) supersedes the feature's
    live label of the same method (a redo), in the caller's transaction."""
    uuid = uuid or str(_uuid.uuid4())
    if status == "ok" and origin == SUPERSEDING_ORIGIN and not db.execute(
            "SELECT 1 FROM labels WHERE uuid = ?", [uuid]).fetchone():
        db.execute(
            f"UPDATE labels SET superseded_by = ?, superseded_at = ? WHERE feature_id = ? AND method = ? "
            f"AND origin = ? AND {LIVE}", [uuid, now(), feature_id, method, SUPERSEDING_ORIGIN])
    db.execute(
        "INSERT OR IGNORE INTO labels(uuid, feature_id, method, text, status, model, prompt_hash, "
        "prompt_tokens, completion_tokens, raw_response, error, origin, details, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [uuid, feature_id, method, text, status, model, prompt_hash, prompt_tokens,
         completion_tokens, raw_response, error, origin, dumps(details) if details else None,
         created_at or now()],
    )
    return uuid


def candidates(project: Project, feature_id: int) -> list[dict[str, Any]]:
    """The feature's live candidate labels (usable, not superseded by a redo), oldest first."""
    return project.query(
        f"SELECT * FROM labels WHERE feature_id = ? AND {LIVE} ORDER BY created_at, id", [feature_id]
    )
