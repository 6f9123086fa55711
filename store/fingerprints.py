"""Source fingerprints as the store keeps and compares them (what produced a source; the
engine builds them: ``engine/scoring/fingerprint.py``).  No database access here, so listing
commands can name a fingerprint without loading the database layer."""
from __future__ import annotations

import hashlib
import json
from typing import Any

# Fields that say where something came from, not what it is: never compared.
PROVENANCE = frozenset({"path", "corpus"})
_PART_NAMES = {"model": "model", "sae": "SAE", "output": "", "input": ""}
_FIELD_NAMES = {"files": "files", "weights": "weights", "neutral_prompt": "neutral prompt",
                "logit_lens_k": "logit lens k", "continuation_tokens": "continuation tokens",
                "ctx_len": "ctx len", "doc_sep": "doc sep", "top_k": "top k", "n_negatives": "negatives", "text_field": "text field",
                "max_contexts": "max contexts", "max_tokens": "max tokens", "n_quantile": "quantile examples", "verified_negatives": "verified negatives", "d_in": "d_in", "d_sae": "width"}


# Settings whose absence from a stored part has a known meaning: the part was recorded before
# the setting existed, when the run did without it (no model-verified negatives were stored).
# Compared as that value, so a run with it into such a source is refused, never mixed in.
ABSENT_MEANS = {"input": {"verified_negatives": False}}


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12]                     # a sha256 digest: its first 12 hex digits
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    return f"{value:g}" if isinstance(value, float) else str(value)


def fingerprint_differences(stored: dict[str, Any] | None, run: dict[str, Any]) -> list[str]:
    """What differs between a stored fingerprint and a run's, as ``what: stored vs run``, in
    the parts both have (a part one of them lacks is unknown there, not different)."""
    if not stored:
        return []
    out = []
    for part in [p for p in (*_PART_NAMES, "dtype") if p in stored and p in run]:
        a, b = stored[part], run[part]
        if not isinstance(a, dict) or not isinstance(b, dict):
            if a != b:
                out.append(f"{part} {_show(a)} vs {_show(b)}")
            continue
        known = ABSENT_MEANS.get(part, {})
        a, b = {**known, **a} if a else a, {**known, **b} if b else b
        for key in sorted((set(a) & set(b)) - PROVENANCE):    # a key one side lacks: unknown there
            if a[key] != b[key]:
                label = " ".join(x for x in (_PART_NAMES.get(part, part), _FIELD_NAMES.get(key, key)) if x)
                out.append(f"{label} {_show(a[key])} vs {_show(b[key])}")
    return out


def identity_differences(stored: dict[str, Any] | None, run: dict[str, Any]) -> list[str]:
    """The differences in what the source *is* (model, SAE, dtype), not in its settings."""
    stored = stored or {}
    return [d for p in ("model", "sae", "dtype") if stored.get(p) is not None and p in run
            for d in fingerprint_differences({p: stored[p]}, {p: run[p]})]


def merged_fingerprint(stored: dict[str, Any] | None, run: dict[str, Any]) -> dict[str, Any]:
    """The stored fingerprint with the run's parts it lacked (and the run's provenance)."""
    return {**(stored or {}), **run}


def refusal(name: str, diffs: list[str]) -> str:
    """The one line a run gets when it is not what the stored source of that name is."""
    return (f"source {name!r} holds scores of another model, SAE or settings ({'; '.join(diffs)}; stored vs "
            f"this run): give --source NAME to score this as a new source, or --redo to replace the stored "
            f"scores")


def fingerprint_id(fingerprint: dict[str, Any] | str | None) -> str | None:
    """A short id of what a fingerprint identifies (provenance left out), for listings; None
    when unknown."""
    fp = json.loads(fingerprint) if isinstance(fingerprint, str) else fingerprint
    if not fp:
        return None
    core = {part: ({k: v for k, v in val.items() if k not in PROVENANCE} if isinstance(val, dict) else val)
            for part, val in fp.items()}
    return hashlib.sha256(json.dumps(core, sort_keys=True).encode()).hexdigest()[:12]


