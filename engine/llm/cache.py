"""The request/response cache in the project's ``llm_cache`` table.

A request is keyed by the sha256 of what determines its answer: model, kind, payload
(messages or inputs) and parameters, without the length limit (``max_tokens``, checked on a
hit by the client) and without the endpoint's address (kept in the row as provenance), so
a re-run of a finished job sends nothing, even through another address of the same server.
Migration ``m004_llm_cache_keys`` re-keyed rows made under the old key, which held the
endpoint.  What is stored never
holds a key or a header: only the JSON payload and the endpoint's JSON answer.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

from saegold.store.db import Project, dumps, loads, now


# Parameters that bound an answer's length: not part of the key (see the module docstring).
UNKEYED_PARAMS = ("max_tokens", "max_completion_tokens")


def request_key(model: str, kind: str, payload: Any, params: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of (model, kind, payload, params without the length
    limit).  ``store/schema.py: m004_llm_cache_keys`` holds a frozen copy: keep them equal."""
    keyed = {k: v for k, v in params.items() if k not in UNKEYED_PARAMS}
    canon = json.dumps(
        {"model": model, "kind": kind, "payload": payload, "params": keyed},
        sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str,
    )
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()


class LLMCache:
    """Reads and writes ``llm_cache`` rows of one project (None: no caching)."""

    def __init__(self, project: Project | None, *, read: bool = True):
        self.project = project
        self.read = read  # False: always ask the endpoint (answers are still stored)

    def get(self, key: str) -> dict[str, Any] | None:
        if self.project is None or not self.read:
            return None
        rows = self.project.query(
            "SELECT request, response, prompt_tokens, completion_tokens FROM llm_cache WHERE key = ?",
            [key])
        if not rows:
            return None
        row = rows[0]
        return {"request": loads(row["request"]), "response": loads(row["response"]),
                "prompt_tokens": row["prompt_tokens"] or 0,
                "completion_tokens": row["completion_tokens"] or 0}

    def put(self, key: str, *, endpoint: str, model: str, request: Any, response: Any,
            prompt_tokens: int | None, completion_tokens: int | None) -> None:
        """Store one answer in its own short transaction."""
        if self.project is None:
            return
        with self.project.write() as db:
            db.execute(
                "INSERT OR REPLACE INTO llm_cache(key, endpoint, model, request, response, "
                "prompt_tokens, completion_tokens, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [key, endpoint, model, dumps(request), dumps(response), prompt_tokens,
                 completion_tokens, now()],
            )
