"""Candidate labels, NLA explanations and benchmark scores."""
from __future__ import annotations

import uuid as _uuid
from typing import Any

from sqlite_utils import Database

from .db import Project, dumps, now

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
    """Insert a label (or failed attempt) unless its UUID exists; return the UUID."""
    uuid = uuid or str(_uuid.uuid4())
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
    """The feature's usable candidate labels (status ok), oldest first."""
    return project.query(
        "SELECT * FROM labels WHERE feature_id = ? AND status = 'ok' ORDER BY created_at, id", [feature_id]
    )
