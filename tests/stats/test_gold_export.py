"""Gold resolution policies and export round trips."""
from __future__ import annotations

import json

import pytest

from saegold.engine import gold


def _project(build):
    """Feature 0: clear majority; 1: a tie, then a lead adjudicates; 2: own labels only."""
    f = build.features(3)
    a0, b0 = build.label(f[0], "eleuther_acts_top5", "the word 'cat'"), build.label(f[0], "baez", "felines")
    a1 = build.label(f[1], "baez", "dates, \"quoted\",\nwith a newline")
    a2 = build.label(f[2], "output_logits", "promotes 'the'")
    build.judge("ann", f[0], tier="input", verdicts={a0: "correct", b0: "partly"}, preference=a0, seconds=12)
    build.judge("bob", f[0], tier="input", verdicts={a0: "correct", b0: "wrong"}, seconds=30)
    build.judge("cat", f[0], tier="cross", verdicts={a0: "partly", b0: "wrong"}, seconds=18)
    build.judge("ann", f[1], tier="output", verdicts={a1: "correct"})
    build.judge("bob", f[1], tier="obscure", verdicts={a1: "wrong"})
    build.judge("ann", f[2], tier="obscure", verdicts={a2: "wrong"}, gold_label="Fires on  Dates ")
    build.judge("bob", f[2], tier="obscure", verdicts={a2: "wrong"}, gold_label="fires on dates")
    build.lead("lea")
    build.judge("lea", f[1], tier="output", verdicts={a1: "correct"}, gold_label="calendar dates",
                adjudicate=True)
    build.commit()
    return f, (a0, b0, a1, a2)


def test_policies(build):
    f, (a0, b0, a1, a2) = _project(build)
    # records name a feature by source and index (feature i of build.features is index i)
    maj = {f[r["feature"]]: r for r in gold.gold_records(build.project, policy="majority")}
    una = {f[r["feature"]]: r for r in gold.gold_records(build.project, policy="unanimous")}
    adj = {f[r["feature"]]: r for r in gold.gold_records(build.project, policy="adjudicated")}

    r = maj[f[0]]
    assert (r["tier"], r["tier_source"]) == ("input", "majority")
    assert r["tier_votes"] == {"input": 2, "output": 0, "cross": 1, "obscure": 0}
    assert r["gold_label"] == "the word 'cat'" and r["gold_label_source"] == "candidate:eleuther_acts_top5"
    cand = {c["label_uuid"]: c for c in r["candidates"]}
    assert (cand[a0]["correct"], cand[a0]["partly"], cand[a0]["wrong"]) == (2, 1, 0)
    assert cand[b0]["verdict"] == "wrong" and cand[a0]["preferred_by"] == 1
    assert r["n_annotators"] == 3 and r["tier_agreement"] == pytest.approx(1 / 3)
    assert r["annotators"] == ["ann", "bob", "cat"] and r["policy"] == "majority"
    assert una[f[0]]["tier"] is None and "not unanimous (input 2, cross 1)" == una[f[0]]["tier_reason"]

    # The tie stays unresolved under majority, the lead's decision wins under adjudicated.
    assert maj[f[1]]["tier"] is None and maj[f[1]]["tier_reason"].startswith("tie")
    assert maj[f[1]]["gold_label"] is None
    assert adj[f[1]]["tier"] == "output" and adj[f[1]]["tier_source"] == "adjudication"
    assert adj[f[1]]["gold_label"] == "calendar dates" and adj[f[1]]["adjudicated_by"] == ["lea"]
    assert adj[f[0]]["tier"] == "input"  # no adjudication: majority

    # Own labels agree once whitespace and case are normalised.
    assert maj[f[2]]["gold_label"] == "Fires on Dates" and maj[f[2]]["gold_label_source"] == "annotator"
    assert una[f[2]]["tier"] == "obscure"


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_round_trip(build, tmp_path, fmt):
    _project(build)
    records = gold.gold_records(build.project, policy="adjudicated")
    out = tmp_path / f"gold.{fmt}"
    n = gold.export_gold(build.project, fmt=fmt, policy="adjudicated", output=out)
    assert n == 3
    assert gold.read_gold(out, fmt) == records


def test_attribution_graph_formats(build, tmp_path):
    f, _ = _project(build)
    out = tmp_path / "np.json"
    n = gold.export_gold(build.project, fmt="neuronpedia", policy="adjudicated", output=out)
    recs = json.loads(out.read_text())
    assert n == len(recs) == 3
    assert recs[0] == {"modelId": "tiny-model", "layer": "3-res-test", "index": "0",
                       "description": "the word 'cat'", "explanationModelName": "saegold-gold",
                       "typeName": "saegold_gold"}
    out2 = tmp_path / "labels.json"
    n = gold.export_gold(build.project, fmt="graph-labels", policy="majority", output=out2)
    pairs = json.loads(out2.read_text())
    assert n == 2  # the tied feature has no gold label under majority
    assert pairs == [["3_0", "the word 'cat'"], ["3_2", "Fires on Dates"]]


def test_empty_and_bad_arguments(project, tmp_path):
    assert gold.export_gold(project, fmt="parquet", output=tmp_path / "g.parquet") == 0
    assert gold.read_gold(tmp_path / "g.parquet", "parquet") == []
    with pytest.raises(gold.GoldError, match="unknown policy"):
        gold.export_gold(project, fmt="jsonl", policy="loudest", output=tmp_path / "x")
    with pytest.raises(gold.GoldError, match="give --output"):
        gold.export_gold(project, fmt="parquet", output=None)
    assert not (tmp_path / "x").exists()


def test_records_carry_source_and_feature_as_documented(build, tmp_path, capsys):
    """The fields the README and `export gold --help` list, named as `import judgments` and
    `export labels` name a feature; no internal database id."""
    from saegold.tui.cli import main

    _project(build)
    other = build.features(1, model="other-model", sae="5-res-x", layer=5)
    lab = build.label(other[0], "baez", "something else")
    build.judge("ann", other[0], tier="output", verdicts={lab: "correct"})
    build.commit()
    db = str(build.project.path)
    capsys.readouterr()
    assert main(["--db", db, "export", "gold"]) == 0
    recs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["source"], r["feature"]) for r in recs] == [
        ("tiny-model/3-res-test", 0), ("tiny-model/3-res-test", 1), ("tiny-model/3-res-test", 2),
        ("other-model/5-res-x", 0)]
    assert set(recs[0]) == set(gold.SCALAR_COLUMNS) | set(gold.NESTED_COLUMNS)
    assert "feature_id" not in recs[0] and "feature_index" not in recs[0]
    # the same names as the other exports use
    assert main(["--db", db, "export", "labels"]) == 0
    label_rec = json.loads(capsys.readouterr().out.splitlines()[0])
    assert {"source", "feature"} <= set(label_rec)
    # --source
    assert main(["--db", db, "export", "gold", "--source", "other-model/5-res-x", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("source,feature,") and len(lines) == 2 and lines[1].startswith("other-model/5-res-x,0,")
    assert main(["--db", db, "export", "gold", "--source", "nope/nope"]) == 2
    assert capsys.readouterr().err == ("saegold: error: --source 'nope/nope': no such source in this project "
                                       "(known: other-model/5-res-x, tiny-model/3-res-test)\n")
    # `export gold --help` names every field
    try:
        main(["export", "gold", "--help"])
    except SystemExit:
        pass
    shown = capsys.readouterr().out
    assert all(name in shown for name in [*gold.SCALAR_COLUMNS, *gold.NESTED_COLUMNS])
