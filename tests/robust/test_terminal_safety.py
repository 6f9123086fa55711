"""Escape sequences, control characters, bidi overrides and Rich markup stored anywhere in
a project never reach the terminal raw through the CLI (reports, tables, error lines)."""
from __future__ import annotations

import json
import shutil
import unicodedata

import pytest

from saegold.store import judgments, settings
from saegold.store.db import open_project
from saegold.store.features import get_or_create_source, put_examples, put_logit_tokens, put_score, upsert_feature
from saegold.store.labels import add_label

ESC = "\x1b[2J\x1b]0;pwned\x07"          # clear screen + set window title
C1 = "\x9b31m"                          # 8-bit CSI
BIDI = "\u202e"                         # right-to-left override
MARKUP = "[bold red]markup[/bold red]"
HOSTILE = f"{ESC}x{C1}y{BIDI}z {MARKUP}"


def raw_controls(text: str) -> list[str]:
    """Characters a terminal could act on: C0/C1 controls (but newline) and format chars."""
    return sorted({repr(ch) for ch in text if ch != "\n"
                   and unicodedata.category(ch) in ("Cc", "Cf")})


@pytest.fixture
def hostile(tmp_path):
    path = tmp_path / "hostile.db"
    with open_project(path, create=True) as p:
        with p.write() as db:
            sid = get_or_create_source(db, f"model{ESC}", f"0-res{BIDI}", hook_name=f"hook{C1}")
            for i in range(6):
                fid = upsert_feature(db, sid, i, density=0.1, max_act=2.0)
                put_examples(db, fid, "top", [{"tokens": [HOSTILE, "b"], "acts": [1.0, 0.0]}],
                             origin="scored")
                put_logit_tokens(db, fid, "promoted", [(HOSTILE, 1, 1.0)])
                put_score(db, fid, input_threshold=0.5, output_threshold=0.01, scorer_version=HOSTILE,
                          input_score=0.9 if i % 2 else 0.1, output_score=0.5, continuation=HOSTILE)
                for method in ("baez", f"method{ESC}"):
                    uuid = add_label(db, fid, method, f"label {i} {HOSTILE}", origin="saegold", model=HOSTILE)
                    lid = db.execute("SELECT id FROM labels WHERE uuid = ?", [uuid]).fetchone()[0]
                    for control in ("true", "shuffled"):
                        db.execute("INSERT INTO bench_scores(label_id, benchmark, control, value, n, "
                                   "judge_model, details, created_at) VALUES (?, 'detection', ?, ?, 10, ?, "
                                   "'{}', 'now')", [lid, control, 0.4 + 0.1 * (i % 3), HOSTILE])
        settings.set(p, "guidelines_path", HOSTILE)
        settings.set(p, "llm_model", HOSTILE)
        for who in (f"alice{ESC}", MARKUP, "carol"):
            judgments.ensure_annotator(p, who)
        for fid in [r["id"] for r in p.query("SELECT id FROM features")]:
            labels = [r["uuid"] for r in p.query("SELECT uuid FROM labels WHERE feature_id = ?", [fid])]
            for n, who in enumerate((f"alice{ESC}", MARKUP, "carol")):
                for ev in (judgments.make_event(who, fid, "tier", value=judgments.TIERS[(fid + n) % 4],
                                                confidence=2),
                           judgments.make_event(who, fid, "verdict", value="correct", label_uuid=labels[0]),
                           judgments.make_event(who, fid, "gold_label", value=HOSTILE),
                           judgments.make_event(who, fid, "flag", value=HOSTILE),
                           judgments.make_event(who, fid, "note", value=HOSTILE)):
                    judgments.append(p, ev)
    return path


REPORTS = [
    ["init"], ["status"], ["agreement", "--bootstrap", "20"], ["calibrate", "--bootstrap", "20"],
    ["bench", "--report"], ["label", "--methods", "baez", "--dry-run"],
]
# Data for scripts: JSON escapes every C0 control (ESC, BEL...) and the text round-trips.
DATA = [["status", "--json"], ["bench", "--report", "--json"], ["agreement", "--json", "--bootstrap", "20"], ["export", "labels"],
        ["export", "scores"], ["export", "features"], ["export", "gold"],
        ["export", "gold", "--format", "neuronpedia"]]


@pytest.fixture
def wide(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # no truncated table cells: the whole name is checked


@pytest.mark.parametrize("args", REPORTS, ids=" ".join)
def test_reports_are_inert(hostile, cli, wide, args):
    rc, out, err = cli("--db", hostile, *args)
    assert rc in (0, 2), err
    assert raw_controls(out) == [], out
    assert raw_controls(err) == [], err


def _c0(text: str) -> list[str]:
    return sorted({repr(ch) for ch in text if ch != "\n" and (ord(ch) < 0x20 or ord(ch) == 0x7f)})


@pytest.mark.parametrize("args", DATA, ids=" ".join)
def test_json_data_escapes_controls_and_keeps_the_text(hostile, cli, args):
    rc, out, err = cli("--db", hostile, *args)
    assert rc == 0, err
    assert _c0(out) == [] and raw_controls(err) == []
    try:
        parsed = json.loads(out)  # one document (status, agreement, a Neuronpedia array)
    except json.JSONDecodeError:
        parsed = [json.loads(line) for line in out.splitlines() if line.strip()]  # JSON Lines
    texts = list(_strings(parsed))
    assert any(ESC in t for t in texts)  # the stored text comes back exactly, escapes included
    if args[0] == "export" and args[1] in ("labels", "scores", "gold"):
        assert any(HOSTILE in t for t in texts)


def _strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def test_status_shows_markup_literally(hostile, cli, wide):
    rc, out, err = cli("--db", hostile, "status")
    assert rc == 0, err
    assert MARKUP in out  # shown as typed, not rendered (and not swallowed)
    assert "alice\\x1b[2J" in out  # the escape is visible, not executed


def test_merge_report_is_inert(hostile, tmp_path, cli):
    other = tmp_path / "other.db"
    shutil.copy(hostile, other)
    with open_project(other) as p:
        settings.set(p, "guidelines_path", HOSTILE + "-other")
        with p.write() as db:
            db.execute("UPDATE taxonomy_scores SET category = 'obscure'")
    rc, out, err = cli("--db", hostile, "merge", other)
    assert rc == 0, err
    assert "conflicts" in out
    assert raw_controls(out + err) == []


def test_error_lines_are_inert(hostile, tmp_path, cli):
    evil = tmp_path / f"evil{ESC}{BIDI}.db"
    rc, out, err = cli("--db", evil, "status")
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert raw_controls(err) == []
    assert "\\x1b" in err  # shown, escaped: the user can still see what the name was
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"annotator": HOSTILE, "source": HOSTILE, "feature": 0, "kind": "note",
                               "value": HOSTILE, "created_at": "2026-11-01T00:00:00Z"}) + "\n")
    rc, out, err = cli("--db", hostile, "import", "judgments", bad)
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert raw_controls(err) == []
    rc, out, err = cli("--db", hostile, "import", "judgments", "--skip-bad", bad)
    assert rc == 0 and raw_controls(out + err) == []
    rc, out, err = cli("--db", hostile, "backup", tmp_path / f"snap{ESC}.db")
    assert rc == 0 and raw_controls(out + err) == []


def test_neuronpedia_import_report_is_inert(hostile, tmp_path, cli):
    feature = {"modelId": f"gemma{ESC}", "layer": f"0-res{BIDI}", "index": 0,
               "activations": [{"tokens": [HOSTILE, "b"], "values": [1.0, 0.0]}],
               "explanations": [{"description": HOSTILE, "typeName": f"type{C1}"}]}
    good, bad = tmp_path / f"np{ESC}.json", tmp_path / "bad.jsonl"
    good.write_text(json.dumps(feature))
    bad.write_text(json.dumps({**feature, "index": -1}) + "\n" + json.dumps({**feature, "index": HOSTILE}) + "\n")
    for args in (["import", "neuronpedia", good], ["import", "neuronpedia", bad],
                 ["import", "neuronpedia", "--skip-bad", bad]):
        rc, out, err = cli("--db", hostile, *args)
        assert rc in (0, 2), err
        assert raw_controls(out + err) == [], out + err
