"""Malformed input: one line naming file, record and field; the database left exactly as it was."""
from __future__ import annotations

import copy
import gzip
import json

import pytest

from saegold.store.errors import BadInput
from saegold.store.importers.neuronpedia import import_neuronpedia

from store_samples import FULL_FILES, TRIMMED_FILES, dump, load, needs_samples

pytestmark = needs_samples


@pytest.fixture
def seeded(project):
    """A project that already holds data, so 'unchanged' means something."""
    import_neuronpedia(project, [FULL_FILES[0], TRIMMED_FILES[0]])
    return project


def _feature() -> dict:
    return copy.deepcopy(load(FULL_FILES[1]))


def _expl(**kw) -> dict:
    rec = {"modelId": "gemma-2-2b", "layer": "20-gemmascope-res-16k", "index": "7",
           "description": "time intervals.", "explanationModelName": "gpt-4o-mini",
           "typeName": "oai_token-act-pair"}
    rec.update(kw)
    return {k: v for k, v in rec.items() if v is not ...}


def _jsonl(*records) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in records)


def _mutated(path_fn):
    d = _feature()
    path_fn(d)
    return json.dumps(d).encode()


CASES = {
    # name: (file name, bytes, record, field, words in the problem)
    "truncated JSON": ("f.json", json.dumps(load(FULL_FILES[1])).encode()[:5000], "line 1", None, "truncated"),
    "truncated JSONL line": ("f.jsonl", _jsonl(_expl(), _expl(index="8"))[:-20], "line 2", None, "truncated"),
    "wrong type: index": ("f.jsonl", _jsonl(_expl(), _expl(index="abc")), "line 2", "index", "non-negative integer"),
    "wrong type: value in values": (
        "f.json", _mutated(lambda d: d["activations"][2]["values"].__setitem__(5, "high")), None,
        "activations[2].values[5]", "expected a number"),
    "wrong type: tokens": ("f.json", _mutated(lambda d: d["activations"][0].__setitem__("tokens", "abc")),
                           None, "activations[0].tokens", "array of strings"),
    "wrong type: description": ("f.jsonl", _jsonl(_expl(description=12)), "line 1", "description", "string"),
    "wrong type: record": ("f.json", json.dumps([_expl(), [1, 2]]).encode(), "[1]", None, "JSON object"),
    "missing: modelId": ("f.jsonl", _jsonl(_expl(modelId=...)), "line 1", "modelId", "missing"),
    "missing: layer": ("f.jsonl", _jsonl(_expl(), _expl(layer=...)), "line 2", "layer", "missing"),
    "missing: index": ("f.json", json.dumps([_expl(), _expl(), _expl(index=...)]).encode(), "[2]", "index", "missing"),
    "missing: values": ("f.json", _mutated(lambda d: d["activations"][3].pop("values")), None,
                        "activations[3].values", "missing"),
    "empty description": ("f.jsonl", _jsonl(_expl(description="  \n")), "line 1", "description", "empty"),
    "negative index": ("f.jsonl", _jsonl(_expl(index=-4)), "line 1", "index", "negative"),
    "negative index as string": ("f.jsonl", _jsonl(_expl(index="-4")), "line 1", "index", "negative"),
    "NaN": ("f.json", _mutated(lambda d: d["activations"][1]["values"].__setitem__(3, float("nan"))), None,
            "activations[1].values[3]", "finite"),
    "Infinity": ("f.json", _mutated(lambda d: d.__setitem__("maxActApprox", float("inf"))), None,
                 "maxActApprox", "finite"),
    "1e999 overflows": ("f.jsonl", _jsonl(b'{"modelId":"m","layer":"1-s","index":1,"tokens":["a"],"values":[1e999]}'),
                        "line 1", "values[0]", "finite"),
    "huge integer": ("f.jsonl", _jsonl(b'{"modelId":"m","layer":"1-s","index":1,"tokens":["a","b"],"values":[0,1' + b"0" * 400 + b']}'),
                     "line 1", "values[1]", "too large"),
    "huge index": ("f.jsonl", _jsonl(_expl(index="9" * 5000)), "line 1", "index", "too large"),
    "index past SQLite's integers": ("f.jsonl", _jsonl(_expl(index=2**64)), "line 1", "index", "too large"),
    "NaN in scores": ("f.json", _mutated(lambda d: d["explanations"][0].__setitem__("scores", [float("nan")])),
                      None, "explanations[0].scores", "NaN"),
    "length mismatch": ("f.json", _mutated(lambda d: d["activations"][4]["values"].pop()), None,
                        "activations[4].values", "values for"),
    "max index past the end": ("f.json", _mutated(lambda d: d["activations"][0].__setitem__("maxValueTokenIndex", 10_000)),
                               None, "activations[0].maxValueTokenIndex", "past the last token"),
    "density not a fraction": ("f.json", _mutated(lambda d: d.__setitem__("frac_nonzero", 3.5)), None,
                               "frac_nonzero", "fraction"),
    "logit lists differ": ("f.json", _mutated(lambda d: d["pos_values"].pop()), None, "pos_values", "tokens"),
    "5 MB token string": ("f.json", _mutated(lambda d: d["activations"][6]["tokens"].__setitem__(2, "x" * 5_000_000)),
                          None, "activations[6].tokens[2]", "characters long"),
    "non-UTF-8 in JSONL": ("f.jsonl", _jsonl(_expl(), b'{"modelId":"gemma-2-2b","layer":"20-x","index":3,"description":"caf\xe9"}'),
                           "line 2", None, "UTF-8"),
    "non-UTF-8 in JSON": ("f.json", json.dumps([_expl()]).encode().replace(b"time", b"ti\xffme"), "line 1", None, "UTF-8"),
    "lone surrogate in a token": ("f.jsonl", _jsonl(b'{"modelId":"m","layer":"1-s","index":1,"tokens":["a","\\ud800"],"values":[0,1]}'),
                                  "line 1", "tokens[1]", "surrogate"),
    "lone surrogate in a description": ("f.jsonl", _jsonl(_expl(description="x\ud800")), "line 1", "description", "surrogate"),
    "empty JSON file": ("f.json", b"  \n", None, None, "is empty"),
    "top-level scalar": ("f.json", b"42", None, None, "JSON object"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_file_names_file_record_field_and_changes_nothing(seeded, tmp_path, case):
    name, data, record, field, words = CASES[case]
    path = tmp_path / name
    path.write_bytes(data)
    before = dump(seeded)
    with pytest.raises(BadInput) as err:
        import_neuronpedia(seeded, [path])
    e = err.value
    assert (e.file, e.record, e.field) == (str(path), record, field)
    msg = str(e)
    assert "\n" not in msg and str(path) in msg and words in msg
    assert len(msg) < 400  # one readable line, not a 5 MB echo
    assert dump(seeded) == before


def _gzip_cases(tmp_path):
    good = gzip.compress(_jsonl(*[_expl(index=str(i)) for i in range(200)]))
    truncated = tmp_path / "truncated.jsonl.gz"
    truncated.write_bytes(good[: len(good) // 2])
    corrupt = tmp_path / "corrupt.jsonl.gz"
    corrupt.write_bytes(good[:-8] + bytes(b ^ 0xFF for b in good[-8:]))  # CRC and length wrong
    garbage = tmp_path / "garbage.json.gz"
    garbage.write_bytes(b"\x1f\x8b" + b"not really gzip" * 10)
    return [truncated, corrupt, garbage]


def test_gzip_errors_are_clear_and_change_nothing(seeded, tmp_path):
    before = dump(seeded)
    for path in _gzip_cases(tmp_path):
        with pytest.raises(BadInput, match="gzip data is corrupt or truncated") as err:
            import_neuronpedia(seeded, [path])
        assert err.value.file == str(path)
        assert dump(seeded) == before


def test_bad_second_file_undoes_the_first(seeded, tmp_path):
    good = tmp_path / "a_good.jsonl"
    good.write_bytes(_jsonl(_expl(index="900"), _expl(index="901")))
    bad = tmp_path / "b_bad.jsonl"
    bad.write_bytes(_jsonl(_expl(index="902"), _expl(index=-1)))
    before = dump(seeded)
    with pytest.raises(BadInput, match="b_bad.jsonl: record line 2: field 'index'"):
        import_neuronpedia(seeded, [tmp_path])
    assert dump(seeded) == before


def test_skip_bad_imports_the_good_and_lists_the_rejected(project, tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(_jsonl(_expl(index="1"), _expl(index=-1), b"{not json", _expl(index="2"),
                            _expl(description=None), b'{"modelId":"m","layer":"1-s","index":3,"description":"caf\xe9"}'))
    report = import_neuronpedia(project, [path], skip_bad=True)
    assert [(e.record, e.field) for e in report.rejected] == [
        ("line 2", "index"), ("line 3", None), ("line 5", "description"), ("line 6", None)]
    assert report.records == 2
    assert sorted(r["idx"] for r in project.query("SELECT idx FROM features")) == [1, 2]
    assert project.query("SELECT records, rejected FROM import_log") == [{"records": 2, "rejected": 4}]
    # the same file again with --skip-bad: nothing changes
    before = dump(project)
    import_neuronpedia(project, [path], skip_bad=True)
    assert dump(project) == before


def test_skip_bad_keeps_records_before_a_gzip_break(project, tmp_path):
    truncated = _gzip_cases(tmp_path)[0]
    report = import_neuronpedia(project, [truncated], skip_bad=True)
    assert len(report.rejected) == 1 and "rest of the file" in report.rejected[0].problem
    n = project.scalar("SELECT count(*) FROM labels")
    assert 0 < n < 200 and n == report.records


def test_missing_path_and_empty_dir(project, tmp_path):
    with pytest.raises(BadInput, match="no such file"):
        import_neuronpedia(project, [tmp_path / "nope.json"])
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(BadInput, match="no importable files"):
        import_neuronpedia(project, [tmp_path / "empty"])
