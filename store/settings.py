"""Project settings: JSON values in the ``settings`` table, with documented defaults."""
from __future__ import annotations

from typing import Any

from .db import Project, dumps, loads
from .errors import StoreError

DEFAULTS: dict[str, Any] = {
    # Taxonomy (DESIGN.md): category from two thresholds on the input / output scores.
    "input_threshold": 0.5,
    "output_threshold": 0.01,
    "neutral_prompt": "From my experience,",
    "amplification": 10.0,
    "logit_lens_k": 20,
    # Score-then-label routing: category -> label methods.
    "label_routing": {
        "input": ["eleuther_acts_top5", "baez"],
        "output": ["output_logits", "baez"],
        "cross": ["eleuther_acts_top5", "baez", "baez_last", "output_logits"],
        "obscure": [],
    },
    # LLM endpoint (the *name* of the key variable only; keys never enter the database).
    "llm_base_url": None,
    "llm_model": "gpt-4o-mini",
    "llm_api_key_env": "OPENAI_API_KEY",
    # NLA explanation service for the baez labelers (Neuronpedia's NLA explain shape).
    "nla_url": None,               # e.g. "https://www.neuronpedia.org/api/nla"
    "nla_model_id": None,          # None: the SAE source's model id
    "nla_source_id": None,         # e.g. "kitft-l41"; also names the stored explanations
    # Annotation.
    "overlap": 2,
    "blind": True,
    "guidelines_path": None,
}


def get(project: Project, key: str) -> Any:
    row = project.db.execute("SELECT value FROM settings WHERE key = ?", [key]).fetchone()
    if row is not None:
        return loads(row[0])
    if key in DEFAULTS:
        return DEFAULTS[key]
    raise StoreError(f"unknown setting {key!r} (known: {', '.join(sorted(DEFAULTS))})")


def set(project: Project, key: str, value: Any) -> None:  # noqa: A001 - mirrors get()
    if key not in DEFAULTS:
        raise StoreError(f"unknown setting {key!r} (known: {', '.join(sorted(DEFAULTS))})")
    with project.write() as db:
        db.execute(
            "INSERT INTO settings(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [key, dumps(value)],
        )


def all_settings(project: Project) -> dict[str, Any]:
    stored = {r["key"]: loads(r["value"]) for r in project.query("SELECT key, value FROM settings")}
    return {**DEFAULTS, **stored}
