"""The request/response cache in the project's ``llm_cache`` table.

A request is keyed by the sha256 of its endpoint, model, kind, payload (messages or
inputs) and parameters, so a re-run of a finished job sends nothing.  What is stored never
holds a key or a header: only the JSON payload and the endpoint's JSON answer.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

from store.db import Project, dumps, loads, now


def request_key(endpoint: str, model: str, kind: str, payload: Any, params: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of (endpoint, model, kind, payload, params)."""
    canon = json.dumps(
        {"endpoint": endpoint, "model": model, "kind": kind, "payload": payload, "params": params},
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
            "SELECT response, prompt_tokens, completion_tokens FROM llm_cache WHERE key = ?", [key]
        )
        if not rows:
            return None
        row = rows[0]
        return {"response": loads(row["response"]), "prompt_tokens": row["prompt_tokens"] or 0,
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
