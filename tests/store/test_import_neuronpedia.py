"""Importing the real Neuronpedia samples: counts, exact strings, mapping, idempotence."""
from __future__ import annotations

import gzip
import json

import pytest

from saegold.store import features as F
from saegold.store.errors import BadInput
from saegold.store.examples import all_examples
from saegold.store.importers.neuronpedia import import_neuronpedia
from saegold.store.labels import content_uuid

from store_samples import (EXCERPT, EXPORT, FULL_FILES, NP_DIR, TRIMMED_FILES, distinct_ranked, dump,
                           load, needs_samples, split_top_negative)

pytestmark = needs_samples


def _expected_export():
    recs = load(EXPORT)
    features = {int(r["index"]) for r in recs}
    labels = {(int(r["index"]), r["typeName"], r["explanationModelName"], r["description"]) for r in recs}
    return recs, features, labels


def test_explanations_export_counts(np_project):
    recs, features, labels = _expected_export()
    assert len(recs) == 17_008  # as PROVENANCE.md states
    src = "gemma-2-2b/20-gemmascope-res-16k"
    n_feat = np_project.scalar(
        "SELECT count(*) FROM features f JOIN sources s ON s.id = f.source_id WHERE s.name = ?", [src])
    assert n_feat == len(features) == 16_383
    n_lab = np_project.scalar(
        "SELECT count(*) FROM labels l JOIN features f ON f.id = l.feature_id "
        "JOIN sources s ON s.id = f.source_id WHERE s.name = ?", [src])
    assert n_lab == len(labels)
    assert F.feature_id(np_project, src, 5798) is None  # absent from the export


def test_all_samples_counts(np_project):
    full = [load(p) for p in FULL_FILES]
    trimmed = [load(p) for p in TRIMMED_FILES]
    _, features, labels = _expected_export()
    assert np_project.scalar("SELECT count(*) FROM sources") == 3
    assert np_project.scalar("SELECT count(*) FROM features") == (
        len(features) + len({d["index"] for d in full}) + len({d["feature_index"] for d in trimmed}))
    assert np_project.scalar("SELECT count(*) FROM examples") == (
        sum(len(distinct_ranked(d["activations"])) for d in full + trimmed))
    assert np_project.scalar("SELECT count(*) FROM labels") == len(labels) + sum(
        len(d["explanations"]) for d in full)
    assert np_project.scalar("SELECT count(*) FROM logit_tokens") == sum(
        len(d["pos_str"]) + len(d["neg_str"]) for d in full)
    report = np_project.report
    assert not report.rejected
    assert [p.endswith("PROVENANCE.md") for p in report.ignored] == [True]
    assert report.counts["labels_existing"] == len(load(EXCERPT))  # the excerpt repeats export records
    assert np_project.scalar("SELECT count(*) FROM import_log WHERE kind = 'neuronpedia'") == len(report.files)


def test_full_response_mapping(np_project):
    path = NP_DIR / "gemma-4-e2b__17-matryoshka-res-65k" / "np_feature_5.json"
    d = load(path)
    name = F.source_name(d["modelId"], d["layer"])
    src = np_project.query("SELECT * FROM sources WHERE name = ?", [name])[0]
    assert src["hook_name"] == d["hookName"] and src["layer"] == 17
    fid = F.feature_id(np_project, name, int(d["index"]))
    feat = np_project.query("SELECT * FROM features WHERE id = ?", [fid])[0]
    assert feat["density"] == d["frac_nonzero"]
    assert feat["max_act"] == max([d["maxActApprox"]] + [a["maxValue"] for a in d["activations"]])
    assert feat["n_tokens_seen"] == d["source"]["num_prompts"] * d["source"]["num_tokens_in_prompt"]
    exs = F.examples(np_project, fid)
    ranked, never = split_top_negative(d["activations"])
    assert 0 < len(ranked) + len(never) < len(d["activations"])  # this feature lists contexts twice
    assert never and all(a["maxValue"] == 0 and not any(a["values"]) for a in never)
    negs = F.examples(np_project, fid, "negative")
    assert [e["tokens"] for e in negs] == [a["tokens"] for a in never]
    assert {e["origin"] for e in negs} == {"neuronpedia"} and all(e["max_act"] == 0 for e in negs)
    assert [e["tokens"] for e in exs] == [a["tokens"] for a in ranked]  # exactly, "▁" and "\n\n" kept
    assert [e["acts"] for e in exs] == [[float(v) for v in a["values"]] for a in ranked]
    assert [e["max_idx"] for e in exs] == [a["maxValueTokenIndex"] for a in ranked]
    assert [e["max_act"] for e in exs] == [a["maxValue"] for a in ranked]
    assert {e["origin"] for e in exs} == {"neuronpedia"} and [e["rank"] for e in exs] == list(range(len(exs)))
    assert [(t["token"], t["value"]) for t in F.logit_tokens(np_project, fid, "promoted")] == list(
        zip(d["pos_str"], d["pos_values"]))
    assert [(t["token"], t["value"]) for t in F.logit_tokens(np_project, fid, "suppressed")] == list(
        zip(d["neg_str"], d["neg_values"]))
    labels = np_project.query("SELECT * FROM labels WHERE feature_id = ?", [fid])
    (exp,) = d["explanations"]
    assert len(labels) == 1
    lb = labels[0]
    assert (lb["method"], lb["model"], lb["text"], lb["origin"], lb["status"]) == (
        exp["typeName"], exp["explanationModelName"], exp["description"], "neuronpedia", "ok")
    assert lb["uuid"] == content_uuid(name, int(d["index"]), exp["typeName"],
                                      exp["explanationModelName"], exp["description"])
    assert json.loads(lb["details"])["neuronpedia_id"] == exp["id"]


def test_trimmed_variant_mapping(np_project):
    for path in TRIMMED_FILES:
        d = load(path)
        name = F.source_name(d["modelId"], d["source"])
        fid = F.feature_id(np_project, name, d["feature_index"])
        assert fid is not None, path
        (ex,) = F.examples(np_project, fid)
        assert ex["tokens"] == d["activations"][0]["tokens"]
        assert ex["max_act"] == d["activations"][0]["maxValue"]
        assert np_project.scalar("SELECT hook_name FROM sources WHERE name = ?", [name]) == d["hookName"]


def test_descriptions_kept_exactly(np_project):
    recs = load(EXPORT)
    padded = [r for r in recs if r["description"] != r["description"].strip()]
    assert len(padded) == 3_823  # PROVENANCE.md: leading/trailing whitespace or "\n"
    src = "gemma-2-2b/20-gemmascope-res-16k"
    stored = {(r["feature"], r["model"], r["text"]) for r in np_project.query(
        "SELECT f.idx AS feature, l.model, l.text FROM labels l JOIN features f ON f.id = l.feature_id "
        "JOIN sources s ON s.id = f.source_id WHERE s.name = ?", [src])}
    assert all((int(r["index"]), r["explanationModelName"], r["description"]) in stored for r in padded)


def test_one_model_two_explanations_both_kept(np_project):
    fid = F.feature_id(np_project, "gemma-2-2b/20-gemmascope-res-16k", 14403)
    texts = [r["text"] for r in np_project.query(
        "SELECT text FROM labels WHERE feature_id = ? AND model = 'gpt-4o-mini'", [fid])]
    expected = {r["description"] for r in load(EXCERPT) if r["index"] == "14403"
                and r["explanationModelName"] == "gpt-4o-mini"}
    assert len(expected) == 2 and set(texts) == expected and len(texts) == 2


def test_reimport_changes_nothing(tmp_path, project):
    import_neuronpedia(project, [NP_DIR])
    before = dump(project)
    report = import_neuronpedia(project, [NP_DIR])
    assert dump(project) == before
    assert report.counts["labels_new"] == 0 and report.counts["features_new"] == 0
    assert report.counts["examples_written"] == 0 and report.counts["logit_tokens_written"] == 0


def test_same_file_twice_in_one_run(project):
    path = FULL_FILES[0]
    import_neuronpedia(project, [path, path])
    d = load(path)
    assert project.scalar("SELECT count(*) FROM examples") == len(distinct_ranked(d["activations"]))
    assert project.scalar("SELECT count(*) FROM labels") == len(d["explanations"])


def _export_dir(tmp_path, full: dict) -> "Path":
    """Write one real feature the way Neuronpedia's bulk export lays it out."""
    base = tmp_path / "v1" / full["modelId"] / full["layer"]
    for sub in ("features", "activations", "explanations"):
        (base / sub).mkdir(parents=True)
    feature = {k: v for k, v in full.items() if k not in ("activations", "explanations", "source", "model")}
    with gzip.open(base / "features" / "batch-0.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write(json.dumps(feature) + "\n")
    with gzip.open(base / "activations" / "batch-0.jsonl.gz", "wt", encoding="utf-8") as f:
        for a in full["activations"]:
            f.write(json.dumps(a) + "\n")
    with open(base / "explanations" / "batch-0.jsonl", "w", encoding="utf-8") as f:
        for e in full["explanations"]:
            f.write(json.dumps({**e, "modelId": full["modelId"], "layer": full["layer"],
                                "index": full["index"]}) + "\n")
    (base / "source.jsonl").write_text(json.dumps({
        **full["source"], "saelensConfig": {"hook_name": "blocks.17.hook_resid_post", "d_sae": 65536,
                                            "d_in": 1536}}) + "\n")
    (base / "model.jsonl").write_text(json.dumps(full["model"]) + "\n")
    return tmp_path / "v1"


def _stored(project):
    return sorted((e["kind"], e["rank"], e["tokens"], e["acts"], e["max_idx"], e["max_act"], e["origin"])
                  for e in all_examples(project))


def test_bulk_export_layout_equals_api_response(tmp_path):
    from saegold.store.db import open_project

    full = load(NP_DIR / "gemma-4-e2b__17-matryoshka-res-65k" / "np_feature_19.json")
    a = open_project(tmp_path / "a.db", create=True)
    b = open_project(tmp_path / "b.db", create=True)
    import_neuronpedia(a, [NP_DIR / "gemma-4-e2b__17-matryoshka-res-65k" / "np_feature_19.json"])
    report = import_neuronpedia(b, [_export_dir(tmp_path, full)])
    assert report.records == 1 + len(full["activations"]) + len(full["explanations"]) + 2
    name = "gemma-4-e2b/17-matryoshka-res-65k"
    assert _stored(a) == _stored(b)
    cols = "kind, rank, token, value"
    assert a.query(f"SELECT {cols} FROM logit_tokens ORDER BY 1, 2") == \
        b.query(f"SELECT {cols} FROM logit_tokens ORDER BY 1, 2")
    assert a.query("SELECT uuid, method, text, model FROM labels") == b.query("SELECT uuid, method, text, model FROM labels")
    fa = a.query("SELECT density, max_act FROM features")
    assert fa == b.query("SELECT density, max_act FROM features")
    src = b.query("SELECT * FROM sources WHERE name = ?", [name])[0]
    assert (src["d_sae"], src["width"]) == (65536, 1536)  # from source.jsonl's saelensConfig
    assert src["hook_name"] == full["hookName"]  # the feature's own hookName came first
    a.close()
    b.close()


def test_scored_examples_are_never_overwritten(project):
    d = load(FULL_FILES[0])
    name = F.source_name(d["modelId"], d["layer"])
    with project.write() as db:
        sid = F.get_or_create_source(db, d["modelId"], d["layer"])
        fid = F.upsert_feature(db, sid, int(d["index"]))
        F.put_examples(db, fid, "top", [{"tokens": ["a", "b"], "acts": [0.0, 1.0]}], "scored")
        F.put_logit_tokens(db, fid, "promoted", [("x", 7, 0.5)])
    report = import_neuronpedia(project, [FULL_FILES[0]])
    assert [e["tokens"] for e in F.examples(project, fid)] == [["a", "b"]]
    assert F.logit_tokens(project, fid, "promoted") == [{"token": "x", "token_id": 7, "value": 0.5}]
    assert report.counts["examples_kept_scored"] == 1 and report.counts["logit_lists_kept_scored"] == 1
    assert len(F.logit_tokens(project, fid, "suppressed")) == len(d["neg_str"])  # that list was empty
    assert F.feature_id(project, name, int(d["index"])) == fid


def test_changed_examples_replace_old_ones_and_their_nla(project, tmp_path):
    d = load(FULL_FILES[0])
    import_neuronpedia(project, [FULL_FILES[0]])
    fid = F.feature_id(project, F.source_name(d["modelId"], d["layer"]), int(d["index"]))
    ex0 = F.examples(project, fid)[0]
    with project.write() as db:
        db.execute("INSERT INTO nla_explanations(example_id, nla_source, token_index, text, created_at) "
                   "VALUES (?, 'nla', 0, 'x', 'now')", [ex0["id"]])
    fewer = {**d, "activations": split_top_negative(d["activations"])[0][:3]}
    path = tmp_path / "fewer.json"
    path.write_text(json.dumps(fewer))
    import_neuronpedia(project, [path])
    assert len(F.examples(project, fid)) == 3
    assert F.examples(project, fid, "negative") == []  # the new file has no zero contexts
    assert project.scalar("SELECT count(*) FROM nla_explanations") == 0


def test_progress_is_reported(project):
    calls = []
    import_neuronpedia(project, [EXPORT, FULL_FILES[0]], progress=lambda s, d, t: calls.append((s, d, t)))
    files = [c for c in calls if c[0] == "importing files"]
    assert files[0] == ("importing files", 0, 2) and files[-1] == ("importing files", 2, 2)
    reading = [c for c in calls if c[0] == "reading the current file"]
    assert ("reading the current file", 17_008, 17_008) in reading  # the array, record by record
    assert len(reading) > 5 and all(d <= t for _, d, t in reading)


@pytest.mark.parametrize("buffer_tokens", [0, 10**9])
def test_lock_taken_late_or_early_gives_the_same_data(tmp_path, buffer_tokens):
    """Files are parsed before the write lock; past the buffer the lock is taken early and
    the rest streams through it.  Either way: the same rows, one transaction."""
    from saegold.store.db import open_project

    ref = open_project(tmp_path / "ref.db", create=True)
    import_neuronpedia(ref, [NP_DIR])
    p = open_project(tmp_path / f"p{buffer_tokens}.db", create=True)
    import_neuronpedia(p, [NP_DIR], buffer_tokens=buffer_tokens)
    strip = lambda d: {t: [r for r in rows] for t, rows in d.items()
                       if t not in ("import_log", "sources", "labels", "_sqlite_migrations")}
    assert strip(dump(p)) == strip(dump(ref))
    cols = "uuid, feature_id, method, text, model, origin, details"
    assert p.query(f"SELECT {cols} FROM labels ORDER BY id") == ref.query(f"SELECT {cols} FROM labels ORDER BY id")
    bad = tmp_path / "zz_bad.jsonl"  # sorts after the samples: found last
    bad.write_text('{"modelId":"m","layer":"1-s","index":-1,"description":"d"}\n')
    before = dump(p)
    with pytest.raises(BadInput):
        import_neuronpedia(p, [NP_DIR, bad], buffer_tokens=buffer_tokens)
    assert dump(p) == before
    ref.close()
    p.close()


def test_write_lock_is_not_held_while_parsing(project, tmp_path, monkeypatch):
    """A bad record found while reading means the lock was never taken at all."""
    import saegold.store.importers.neuronpedia as np_mod
    taken = []
    real_write = project.write
    monkeypatch.setattr(project, "write", lambda: (taken.append(1), real_write())[1])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"modelId":"m","layer":"1-s","index":-1,"description":"d"}\n')
    with pytest.raises(BadInput):
        np_mod.import_neuronpedia(project, [EXPORT, bad])
    assert taken == []
    np_mod.import_neuronpedia(project, [EXCERPT])
    assert taken == [1]
