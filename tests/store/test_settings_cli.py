"""`saegold settings`: list / get / set / reset, one typed settings object, one validator."""
from __future__ import annotations

import dataclasses
import json

import pytest

from saegold.store import features as F
from saegold.store import settings
from saegold.store.db import dumps, open_project
from saegold.tui.cli import main


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "p.db"
    assert main(["--db", str(path), "init"]) == 0
    return str(path)


def _scored(db, scores):
    """Features 0.. with (input, output) scores, categorized at the default thresholds."""
    with open_project(db) as p, p.write() as w:
        sid = F.get_or_create_source(w, "m", "s")
        for i, (a, b) in enumerate(scores):
            fid = F.upsert_feature(w, sid, i)
            F.put_score(w, fid, input_threshold=0.5, output_threshold=0.01, scorer_version="t",
                        input_score=a, output_score=b)


def _rows(db):
    with open_project(db) as p:
        return {r["key"]: r["value"] for r in p.query("SELECT key, value FROM settings")}


def test_load_is_one_typed_frozen_object(db):
    with open_project(db) as p:
        cfg = settings.load(p)
        assert isinstance(cfg.overlap, int) and isinstance(cfg.blind, bool)
        assert isinstance(cfg.input_threshold, float) and cfg.label_routing["obscure"] == ()
        with pytest.raises(dataclasses.FrozenInstanceError):
            cfg.overlap = 3
        settings.set(p, "overlap", 3)
        assert settings.load(p).overlap == 3 and settings.get(p, "overlap") == 3
    # every key has help, a group and a default the rule accepts
    for key in settings.KEYS:
        assert settings.help_of(key) and settings.group_of(key)
        settings.check(key, settings.DEFAULTS[key])


def test_the_routing_rule_knows_every_label_method():
    from saegold.engine.labeling.methods import METHOD_NAMES

    assert set(settings.LABEL_METHODS) == set(METHOD_NAMES)


def test_list_get_set_reset(db, capsys):
    capsys.readouterr()
    assert main(["--db", db, "settings"]) == 0
    out = capsys.readouterr().out
    for key in settings.KEYS:
        assert key in out
    assert main(["--db", db, "settings", "set", "overlap", "3"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "overlap: 2 -> 3"
    assert main(["--db", db, "settings", "get", "overlap"]) == 0
    assert capsys.readouterr().out == "3\n"
    assert main(["--db", db, "settings", "set", "blind", "no"]) == 0
    assert "blind: true -> false" in capsys.readouterr().out
    assert main(["--db", db, "settings", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["blind"]["value"] is False and listed["blind"]["changed"] is True
    assert listed["overlap"]["default"] == 2 and listed["llm_model"]["changed"] is False
    assert main(["--db", db, "settings", "set", "label_routing", '{"input": ["baez", "baez"]}']) == 0
    capsys.readouterr()
    for argv in (["get", "label_routing", "--json"], ["--json", "get", "label_routing"]):
        assert main(["--db", db, "settings", *argv]) == 0
        assert json.loads(capsys.readouterr().out) == {"input": ["baez"], "output": [], "cross": [], "obscure": []}
    assert main(["--db", db, "settings", "set", "llm_base_url", "http://127.0.0.1:8000/v1"]) == 0
    assert main(["--db", db, "settings", "set", "llm_base_url", "none"]) == 0
    assert "llm_base_url: http://127.0.0.1:8000/v1 -> none" in capsys.readouterr().out
    assert main(["--db", db, "settings", "reset", "overlap"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "overlap: 3 -> 2"
    assert "overlap" not in _rows(db)


def test_guidelines_path_is_checked_and_stored_absolute(db, capsys, tmp_path, monkeypatch):
    (tmp_path / "rules.md").write_text("# Our rules\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["--db", db, "settings", "set", "guidelines_path", "rules.md"]) == 0
    with open_project(db) as p:
        assert settings.load(p).guidelines_path == str(tmp_path / "rules.md")
    capsys.readouterr()
    assert main(["--db", db, "settings", "set", "guidelines_path", "missing.md"]) == 2
    assert capsys.readouterr().err == (f"saegold: error: setting guidelines_path: {tmp_path / 'missing.md'}: "
                                       "no such file (got 'missing.md')\n")


@pytest.mark.parametrize("key, value, cause", [
    ("overlap", "0", "setting overlap: must be at least 1 (got 0)"),
    ("overlap", "2.5", "setting overlap: '2.5' is not a whole number"),
    ("input_threshold", "abc", "setting input_threshold: 'abc' is not a number"),
    ("input_threshold", "nan", "setting input_threshold: must be a finite number (got NaN)"),
    ("amplification", "0", "setting amplification: must be greater than 0 (got 0)"),
    ("blind", "maybe", "setting blind: must be true or false (or yes/no, on/off, 1/0) (got 'maybe')"),
    ("llm_base_url", "localhost:8000", "setting llm_base_url: must be an http:// or https:// URL"),
    ("llm_api_key_env", "sk-proj-abc123", "not the key itself"),
    ("llm_model", " ", "setting llm_model: must not be empty"),
    ("label_routing", '{"input": ["nope"]}', "setting label_routing: 'input' names unknown method 'nope'"),
    ("label_routing", '{"inputs": []}', "setting label_routing: unknown category 'inputs'"),
    ("label_routing", '{"input": [', "setting label_routing: '{\"input\": [' is not a JSON object"),
    ("overlp", "3", "unknown setting 'overlp' (did you mean overlap?"),
])
def test_bad_values_are_one_line_exit_2_nothing_written(db, capsys, key, value, cause):
    before = _rows(db)
    capsys.readouterr()
    assert main(["--db", db, "settings", "set", key, value]) == 2
    err = capsys.readouterr().err
    assert err.startswith("saegold: error: ") and err.count("\n") == 1 and cause in err
    assert _rows(db) == before


def test_threshold_change_rederives_categories_and_says_what_moved(db, capsys):
    # input scores 0.2, 0.4, 0.6, 0.8; output 0 except feature 3
    _scored(db, [(0.2, 0.0), (0.4, 0.0), (0.6, 0.0), (0.8, 0.5)])
    capsys.readouterr()
    assert main(["--db", db, "settings", "set", "input_threshold", "0.3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "input_threshold: 0.5 -> 0.3"
    assert out[1].strip() == "re-derived the category of 4 scored feature(s): 1 moved (obscure -> input 1)"
    with open_project(db) as p:
        cats = [r["category"] for r in p.query(
            "SELECT t.category FROM taxonomy_scores t JOIN features f ON f.id = t.feature_id ORDER BY f.idx")]
        assert cats == ["obscure", "input", "input", "cross"]
        assert {r["input_threshold"] for r in p.query("SELECT input_threshold FROM taxonomy_scores")} == {0.3}
    assert main(["--db", db, "settings", "set", "output_threshold", "0.6"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].strip() == "re-derived the category of 4 scored feature(s): 1 moved (cross -> input 1)"
    assert main(["--db", db, "settings", "set", "input_threshold", "0.3"]) == 0
    assert capsys.readouterr().out == "input_threshold: 0.3 (unchanged)\n"


def test_a_bad_stored_value_is_one_line_naming_the_key(db, capsys):
    with open_project(db) as p, p.write() as w:
        w.execute("INSERT INTO settings(key, value) VALUES ('overlap', ?)", [dumps("two")])
    capsys.readouterr()
    assert main(["--db", db, "settings"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "setting overlap: stored value 'two' must be a whole number" in err
    # ... and `settings set` repairs it
    assert main(["--db", db, "settings", "set", "overlap", "3"]) == 0
    assert "overlap: two -> 3" in capsys.readouterr().out
