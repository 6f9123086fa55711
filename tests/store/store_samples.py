"""Helpers for the store tests: where the shared Neuronpedia samples are; a full-content dump."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from saegold.store.db import Project

NP_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "neuronpedia"
if not NP_DIR.is_dir():  # the working tree is /work/main; the samples are /work/shared
    NP_DIR = Path("/work/shared/data/neuronpedia")
EXPORT = NP_DIR / "gemma-2-2b__20-gemmascope-res-16k__explanations-export" / "gemma-2-2b_20-gemmascope-res-16k.json"
EXCERPT = NP_DIR / "gemma-2-2b_20-gemmascope-res-16k.explanations-excerpt.json"
FULL_FILES = sorted(NP_DIR.glob("gemma-4-e2b__17-matryoshka-res-65k/*.json")) + [
    NP_DIR / "gemma-4-e2b__17-matryoshka-res-65k__np_feature_0.json"]
TRIMMED_FILES = sorted(NP_DIR.glob("gemma-3-270m-it__12-gemmascope-2-res-16k/*.json")) + [
    NP_DIR / "gemma-3-270m-it__12-gemmascope-2-res-16k__np_feature_0.trimmed.json"]

needs_samples = pytest.mark.skipif(not EXPORT.is_file(), reason="shared Neuronpedia samples not present")


def load(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def dump(project: Project) -> dict[str, list[tuple]]:
    """Every row of every table (schema bookkeeping included), in a stable order."""
    tables = [r["name"] for r in project.query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    return {t: project.db.execute(f'SELECT * FROM "{t}" ORDER BY rowid').fetchall() for t in tables}


def distinct_ranked(activations: list[dict]) -> list[dict]:
    """Neuronpedia lists one context several times (top-k and quantile bins, duplicated
    documents); the import keeps each distinct (tokens, values) once, ranked by maxValue
    descending with ties in file order.  See split_top_negative for where each goes."""
    seen, out = set(), []
    for a in activations:
        key = (tuple(a["tokens"]), tuple(float(v) for v in a["values"]))
        if key not in seen:
            seen.add(key)
            out.append(a)
    return sorted(out, key=lambda a: -a["maxValue"])


def split_top_negative(activations: list[dict]) -> tuple[list[dict], list[dict]]:
    """Distinct contexts where the feature fires (top) and where it never does (negative)."""
    ranked = distinct_ranked(activations)
    return [a for a in ranked if a["maxValue"] > 0], [a for a in ranked if a["maxValue"] <= 0]
