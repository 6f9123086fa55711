"""Export (field names scripts depend on, formats, filters) and status figures."""
from __future__ import annotations

import csv
import io
import json

import pytest

from saegold.store import export as E
from saegold.store import features as F
from saegold.store import judgments
from saegold.store.errors import StoreError
from saegold.store.labels import add_label
from saegold.store.status import status

TEXT = 'label with "quotes", a comma,\na newline and ünïcödé'


@pytest.fixture
def filled(project):
    """Two sources; four scored features (one per category) and one unscored; labels; judgments."""
    with project.write() as db:
        a = F.get_or_create_source(db, "m", "1-a", layer=1)
        b = F.get_or_create_source(db, "m", "2-b", hook_name="blocks.2.hook_resid_post", layer=2)
        fids = [F.upsert_feature(db, a, i, density=0.01 * (i + 1), max_act=float(i)) for i in range(4)]
        fids.append(F.upsert_feature(db, b, 0))
        for fid, (i, o) in zip(fids, [(0.9, 0.5), (0.9, 0.0), (0.0, 0.5), (0.0, 0.0)]):
            F.put_score(db, fid, input_threshold=0.5, output_threshold=0.1, scorer_version="v1",
                        input_score=i, output_score=o, device="cpu")
        F.put_examples(db, fids[0], "top", [{"tokens": ["▁a", "\n"], "acts": [1.0, 2.0]}], "scored")
        labels = {
            "b0": add_label(db, fids[0], "baez", TEXT, origin="saegold", model="gpt"),
            "e0": add_label(db, fids[0], "eleuther_acts_top5", "x", origin="saegold"),
            "b1": add_label(db, fids[1], "baez", "y", origin="saegold"),
            "fail": add_label(db, fids[1], "eleuther_acts_top5", None, origin="saegold", status="failed",
                              error="timeout"),
        }
        db.execute("INSERT INTO annotators(name, role, created_at) VALUES ('carol', 'annotator', 't')")
        for pos, fid in enumerate(fids[:3]):
            db.execute("INSERT INTO annotators(name, role, created_at) VALUES (?, 'annotator', 't') "
                       "ON CONFLICT DO NOTHING", ["alice"])
            db.execute("INSERT INTO assignments(feature_id, annotator, position, created_at) "
                       "VALUES (?, 'alice', ?, 't')", [fid, pos])
    ev = judgments.make_event
    judgments.append_many(project, [
        ev("alice", fids[0], "tier", value="cross", confidence=2),
        ev("alice", fids[0], "verdict", value="correct", label_uuid=labels["b0"]),
        ev("alice", fids[0], "verdict", value="wrong", label_uuid=labels["e0"]),   # done
        ev("alice", fids[1], "tier", value="input", confidence=3),                  # needs a verdict
        ev("bob", fids[1], "tier", value="input", confidence=1),
        ev("bob", fids[1], "verdict", value="partly", label_uuid=labels["b1"]),     # done (failed label not a candidate)
        ev("bob", fids[2], "skip"),
    ])
    project.fids, project.labels = fids, labels
    return project


def _jsonl(project, kind, **kw):
    buf = io.StringIO()
    E.write_records(E.records(project, kind, **kw), E.FIELDS[kind], "jsonl", buf)
    return [json.loads(line) for line in buf.getvalue().splitlines()]


def _csv(project, kind, **kw):
    buf = io.StringIO()
    n = E.write_records(E.records(project, kind, **kw), E.FIELDS[kind], "csv", buf)
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert len(rows) == n
    return buf.getvalue().splitlines()[0].split(","), rows


def test_field_names_scripts_depend_on(filled):
    for kind in E.KINDS:
        assert E.FIELDS[kind][:2] == ("source", "feature")
        recs = _jsonl(filled, kind)
        # (this project has no bench scores: tests/bench/test_bench_ci.py checks that export's records)
        assert (recs or kind == "bench") and all(tuple(r) == E.FIELDS[kind] for r in recs)
        header, _ = _csv(filled, kind)
        assert tuple(header) == E.FIELDS[kind]
    assert {"input_score", "output_score", "category", "input_threshold", "output_threshold",
            "scorer_version"} <= set(E.FIELDS["scores"])
    assert {"method", "text", "model", "uuid", "origin", "status"} <= set(E.FIELDS["labels"])


def test_scores_export(filled):
    recs = _jsonl(filled, "scores")
    assert [(r["source"], r["feature"], r["input_score"], r["output_score"], r["category"]) for r in recs] == [
        ("m/1-a", 0, 0.9, 0.5, "cross"), ("m/1-a", 1, 0.9, 0.0, "input"),
        ("m/1-a", 2, 0.0, 0.5, "output"), ("m/1-a", 3, 0.0, 0.0, "obscure")]
    assert {(r["input_threshold"], r["output_threshold"], r["scorer_version"]) for r in recs} == {(0.5, 0.1, "v1")}
    _, rows = _csv(filled, "scores")
    assert [(r["feature"], float(r["input_score"]), r["category"]) for r in rows] == [
        ("0", 0.9, "cross"), ("1", 0.9, "input"), ("2", 0.0, "output"), ("3", 0.0, "obscure")]


def test_labels_export_text_exact_in_both_formats(filled):
    recs = _jsonl(filled, "labels")
    assert [(r["feature"], r["method"]) for r in recs] == [(0, "baez"), (0, "eleuther_acts_top5"), (1, "baez")]
    assert recs[0]["text"] == TEXT and recs[0]["model"] == "gpt" and recs[0]["uuid"] == filled.labels["b0"]
    _, rows = _csv(filled, "labels")
    assert rows[0]["text"] == TEXT
    failed = _jsonl(filled, "labels", include_failed=True)
    assert [r["status"] for r in failed].count("failed") == 1
    assert [r["uuid"] for r in _jsonl(filled, "labels", method="baez")] == [filled.labels["b0"], filled.labels["b1"]]


def test_features_export(filled):
    recs = _jsonl(filled, "features")
    assert [(r["source"], r["feature"], r["category"], r["n_labels"]) for r in recs] == [
        ("m/1-a", 0, "cross", 2), ("m/1-a", 1, "input", 1), ("m/1-a", 2, "output", 0),
        ("m/1-a", 3, "obscure", 0), ("m/2-b", 0, None, 0)]
    assert recs[0]["density"] == 0.01 and recs[0]["n_examples"] == 1
    only_b = _jsonl(filled, "features", source="m/2-b")
    assert [(r["feature"], r["hook_name"], r["layer"]) for r in only_b] == [(0, "blocks.2.hook_resid_post", 2)]
    full = list(E.records(filled, "features", with_examples=True))
    assert full[0]["examples"][0]["tokens"] == ["▁a", "\n"] and full[0]["examples"][0]["max_idx"] == 1
    assert full[1]["examples"] == [] and full[1]["promoted"] == []


def test_export_to_file_is_atomic(filled, tmp_path):
    out = tmp_path / "sub" / "labels.csv"
    with pytest.raises(StoreError, match="no such directory"):  # never made on the fly (a typo)
        E.export(filled, "labels", fmt="csv", output=out)
    out.parent.mkdir()
    assert E.export(filled, "labels", fmt="csv", output=out) == 3
    assert out.read_text(encoding="utf-8").startswith("source,feature,method,text")
    assert [p.name for p in out.parent.iterdir()] == ["labels.csv"]  # no temporary left behind
    with pytest.raises(StoreError, match="jsonl"):
        E.export(filled, "labels", fmt="csv", output=out, with_examples=True)
    with pytest.raises(StoreError, match="unknown format"):
        E.export(filled, "labels", fmt="xml")


def test_status_figures(filled):
    s = status(filled)
    assert s["tables"]["features"] == 5 and s["tables"]["labels"] == 4 and s["tables"]["judgments"] == 7
    assert s["categories"] == {"input": 1, "output": 1, "cross": 1, "obscure": 1, "unscored": 1}
    assert {m["method"]: (m["ok"], m["failed"], m["features"]) for m in s["label_methods"]} == {
        "baez": (2, 0, 2), "eleuther_acts_top5": (1, 1, 1)}
    assert [(x["name"], x["features"], x["scored"], x["labeled"]) for x in s["sources"]] == [
        ("m/1-a", 4, 4, 2), ("m/2-b", 1, 0, 0)]
    prog = {a["annotator"]: a for a in s["annotators"]}
    assert set(prog) == {"alice", "bob", "carol"}
    assert (prog["alice"]["assigned"], prog["alice"]["judged"], prog["alice"]["done"]) == (3, 2, 1)
    # bob's skip of fids[2] is counted as skipped, not judged (as agreement and gold count it)
    assert (prog["bob"]["assigned"], prog["bob"]["judged"], prog["bob"]["done"], prog["bob"]["skipped"]) == (0, 1, 1, 1)
    assert (prog["carol"]["judged"], prog["carol"]["events"]) == (0, 0)
    json.dumps(s)  # --json prints it as is


def test_unknown_source_is_named(filled):
    with pytest.raises(StoreError, match=r"no source named 'm/zz' in this project \(known: m/1-a, m/2-b\)"):
        _jsonl(filled, "scores", source="m/zz")


def test_export_gzip_output(filled, tmp_path):
    import gzip

    out = tmp_path / "scores.jsonl.gz"
    assert E.export(filled, "scores", fmt="jsonl", output=out) == 4
    lines = gzip.decompress(out.read_bytes()).decode("utf-8").splitlines()
    assert [json.loads(x)["category"] for x in lines] == ["cross", "input", "output", "obscure"]
