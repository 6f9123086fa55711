"""Store round-trips: what is written is what is read back, exactly."""
from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from saegold.store import features as F
from saegold.store.db import dumps, loads
from saegold.store.labels import add_label, candidates

WEIRD_TOKENS = ["<bos>", "▁the", "\n\n", "", " ", "\u202eevil", "\x1b[31m", "[bold]x[/bold]", "🙂", "\\n", "\t"]


def _source_feature(project, idx=3):
    with project.write() as db:
        sid = F.get_or_create_source(db, "gemma-2-2b", "20-gemmascope-res-16k", hook_name="blocks.20.hook_resid_post",
                                     layer=20, d_sae=16384, width=2304)
        fid = F.upsert_feature(db, sid, idx, density=0.0123, max_act=41.5, n_tokens_seen=2_097_152)
    return sid, fid


def test_source_and_feature(project):
    sid, fid = _source_feature(project)
    assert project.query("SELECT name, model_id, sae_id, hook_name, layer, d_sae, width FROM sources") == [{
        "name": "gemma-2-2b/20-gemmascope-res-16k", "model_id": "gemma-2-2b", "sae_id": "20-gemmascope-res-16k",
        "hook_name": "blocks.20.hook_resid_post", "layer": 20, "d_sae": 16384, "width": 2304}]
    assert project.query("SELECT source_id, idx, density, max_act, n_tokens_seen FROM features") == [
        {"source_id": sid, "idx": 3, "density": 0.0123, "max_act": 41.5, "n_tokens_seen": 2_097_152}]
    assert F.feature_id(project, "gemma-2-2b/20-gemmascope-res-16k", 3) == fid
    with project.write() as db:  # None keeps, a value replaces; metadata never overwritten
        F.upsert_feature(db, sid, 3, max_act=50.0)
        F.get_or_create_source(db, "gemma-2-2b", "20-gemmascope-res-16k", layer=7)
    assert project.query("SELECT density, max_act FROM features") == [{"density": 0.0123, "max_act": 50.0}]
    assert project.scalar("SELECT layer FROM sources") == 20


def test_examples_and_logit_tokens(project):
    _, fid = _source_feature(project)
    exs = [{"tokens": WEIRD_TOKENS, "token_ids": list(range(len(WEIRD_TOKENS))),
            "acts": [0.0] * 5 + [7.25] + [0.5] * 5, "max_idx": 5, "max_act": 7.25},
           {"tokens": ["a", "b"], "acts": [1.0, 0.0]}]
    neg = [{"tokens": ["x"], "acts": [0.0]}]
    with project.write() as db:
        F.put_examples(db, fid, "top", exs, "scored")
        F.put_examples(db, fid, "negative", neg, "scored")
        F.put_logit_tokens(db, fid, "promoted", [("▁sports", 123, 2.5), ("\n", 10, 1.0)])
        F.put_logit_tokens(db, fid, "suppressed", [("ing", None, -1.5)])
    top = F.examples(project, fid)
    assert [e["tokens"] for e in top] == [WEIRD_TOKENS, ["a", "b"]]
    assert top[0]["token_ids"] == list(range(len(WEIRD_TOKENS))) and top[1]["token_ids"] is None
    assert [e["acts"] for e in top] == [exs[0]["acts"], exs[1]["acts"]]
    assert [(e["max_idx"], e["max_act"], e["rank"]) for e in top] == [(5, 7.25, 0), (0, 1.0, 1)]
    assert [e["tokens"] for e in F.examples(project, fid, "negative")] == [["x"]]
    assert F.logit_tokens(project, fid, "promoted") == [
        {"token": "▁sports", "token_id": 123, "value": 2.5}, {"token": "\n", "token_id": 10, "value": 1.0}]
    assert F.logit_tokens(project, fid, "suppressed") == [{"token": "ing", "token_id": None, "value": -1.5}]
    with project.write() as db:  # fewer examples replace more
        F.put_examples(db, fid, "top", exs[1:], "scored")
    assert [e["tokens"] for e in F.examples(project, fid)] == [["a", "b"]]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tokens=st.lists(st.text(max_size=12), min_size=1, max_size=8))
def test_any_token_strings_round_trip(project, tokens):
    _, fid = _source_feature(project)
    with project.write() as db:
        F.put_examples(db, fid, "top", [{"tokens": tokens, "acts": [1.0] * len(tokens)}], "scored")
    assert F.examples(project, fid)[0]["tokens"] == tokens


def test_scores_and_categories(project):
    _, fid = _source_feature(project)
    with project.write() as db:
        F.put_score(db, fid, input_threshold=0.5, output_threshold=0.1, scorer_version="v1",
                    input_score=0.7, device="cpu", details={"ll": [1, 2]})
    row = project.query("SELECT * FROM taxonomy_scores")[0]
    assert (row["input_score"], row["output_score"], row["category"]) == (0.7, None, None)
    with project.write() as db:
        F.put_score(db, fid, input_threshold=0.5, output_threshold=0.1, scorer_version="v1",
                    output_score=0.05, continuation=" the the")
    row = project.query("SELECT * FROM taxonomy_scores")[0]
    assert (row["input_score"], row["output_score"], row["category"], row["continuation"]) == (
        0.7, 0.05, "input", " the the")
    assert F.recategorize(project, 0.9, 0.01) == 1
    assert project.scalar("SELECT category FROM taxonomy_scores") == "output"
    assert [F.categorize(i, o, 0.5, 0.5) for i, o in [(1, 1), (1, 0), (0, 1), (0, 0), (None, 1)]] == [
        "cross", "input", "output", "obscure", None]


def test_labels(project):
    _, fid = _source_feature(project)
    with project.write() as db:
        u1 = add_label(db, fid, "baez", "  sports scores\n", origin="saegold", model="m", prompt_hash="h",
                       prompt_tokens=10, completion_tokens=3, raw_response="raw", details={"k": [1.5]},
                       created_at="2026-01-01T00:00:00.000000Z")
        u2 = add_label(db, fid, "eleuther_acts_top5", None, origin="saegold", status="failed", error="timeout")
        assert add_label(db, fid, "baez", "other", origin="x", uuid=u1) == u1  # same UUID: ignored
    row = project.query("SELECT * FROM labels WHERE uuid = ?", [u1])[0]
    assert (row["text"], row["model"], row["prompt_hash"], row["prompt_tokens"], row["completion_tokens"],
            row["raw_response"], loads(row["details"]), row["created_at"]) == (
        "  sports scores\n", "m", "h", 10, 3, "raw", {"k": [1.5]}, "2026-01-01T00:00:00.000000Z")
    assert [c["uuid"] for c in candidates(project, fid)] == [u1]
    assert project.scalar("SELECT error FROM labels WHERE uuid = ?", [u2]) == "timeout"


def test_json_columns_refuse_nan():
    import math

    import pytest
    with pytest.raises(ValueError):
        dumps([math.nan])
    assert json.loads(dumps({"a": "ü"})) == {"a": "ü"}
