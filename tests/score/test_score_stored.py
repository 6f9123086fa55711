"""Input scores of Neuronpedia features from their stored activations (no model)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from saegold.engine.scoring.inputscore import score_stored
from saegold.store.db import loads
from saegold.tui.cli import main

# shared/ lies beside the repository (in CI: beside the clone); /work/shared on developer machines.
_NP = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "neuronpedia"
if not _NP.is_dir():
    _NP = Path("/work/shared/data/neuronpedia")
SAMPLE = _NP / "gemma-4-e2b__17-matryoshka-res-65k" / "np_feature_5.json"


def _expected_from_raw(raw: dict) -> tuple[int, int]:
    """Recount from the JSON itself: activating contexts (max > 0), identical token sequences
    once, best first, at most 100; hit = the max-activating token string is in pos_str."""
    acts = sorted(raw["activations"], key=lambda a: -a["maxValue"])
    seen, hits, used = set(), 0, 0
    for a in acts:
        if a["maxValue"] <= 0 or tuple(a["tokens"]) in seen or used == 100:
            continue
        seen.add(tuple(a["tokens"]))
        used += 1
        hits += a["tokens"][a["maxValueTokenIndex"]] in raw["pos_str"]
    return hits, used


@pytest.mark.skipif(not SAMPLE.exists(), reason=f"shared Neuronpedia sample {SAMPLE} is not on this machine")
def test_neuronpedia_input_score_from_stored_activations(project, tmp_path, capsys):
    from saegold.store.importers.neuronpedia import import_neuronpedia

    raw = json.loads(SAMPLE.read_text())
    import_neuronpedia(project, [SAMPLE])
    hits, used = _expected_from_raw(raw)
    assert used > 10
    assert score_stored(project) == 1
    row = project.query("SELECT t.*, f.idx FROM taxonomy_scores t JOIN features f ON f.id = t.feature_id")[0]
    assert row["idx"] == 5
    assert row["input_score"] == pytest.approx(hits / used)
    assert row["output_score"] is None and row["category"] is None
    details = loads(row["details"])["input"]
    assert (details["hits"], details["contexts"], details["from"]) == (hits, used, "stored")
    # Quantile examples from the stored activating contexts (distinct, up to 50), 10 equal bins
    # from weakest to strongest, in descending order of activation.
    from saegold.store.examples import examples as stored_examples
    fid = project.scalar("SELECT id FROM features")
    quant = stored_examples(project, fid, "quantile")
    assert len(quant) == min(50, used) and len({tuple(q["tokens"]) for q in quant}) == len(quant)
    assert [q["max_act"] for q in quant] == sorted((q["max_act"] for q in quant), reverse=True)
    assert quant[0]["bin"] == 9 and quant[-1]["bin"] == 0 and {q["origin"] for q in quant} == {"stored-bins"}
    # Done features are skipped; --redo recomputes; the CLI goes the same way.
    assert score_stored(project) == 0
    assert score_stored(project, redo=True) == 1
    kept = project.query("SELECT feature_id, row FROM superseded_results")       # the replaced row, whole
    assert len(kept) == 1 and loads(kept[0]["row"]) == {k: v for k, v in row.items() if k != "idx"}
    db = str(project.path)
    assert main(["--db", db, "score", "--from-stored", "--redo", "--source",
                 "gemma-4-e2b/17-matryoshka-res-65k"]) == 0
    assert "1 features" in capsys.readouterr().out
    assert main(["--db", db, "score", "--from-stored", "--source", "nope/nope"]) == 2
    assert "no source named 'nope/nope'" in capsys.readouterr().err


def test_stored_input_score_counts_hits_by_string(project):
    """A hand-made feature: 3 activating contexts (one listed twice), one non-activating."""
    from saegold.store.features import get_or_create_source, put_examples, put_logit_tokens, upsert_feature

    with project.write() as db:
        sid = get_or_create_source(db, "m", "s")
        fid = upsert_feature(db, sid, 0)
        put_examples(db, fid, "top", [
            {"tokens": ["a", "\u2581cat", "b"], "acts": [0, 3, 1]},
            {"tokens": ["a", "\u2581cat", "b"], "acts": [0, 3, 1]},
            {"tokens": ["\u2581dog", "x"], "acts": [2, 0]},
            {"tokens": ["y", "z"], "acts": [0, 1.5]},
            {"tokens": ["q"], "acts": [0.0]},
        ], "neuronpedia")
        put_logit_tokens(db, fid, "promoted", [("\u2581cat", None, 1.0), ("z", None, 0.5)])
    assert score_stored(project) == 1
    assert project.scalar("SELECT input_score FROM taxonomy_scores") == pytest.approx(2 / 3)
