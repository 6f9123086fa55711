"""`import judgments` reads JSON Lines by content (any file name, standard input) and refuses
judgments dated in the future."""
from __future__ import annotations

import datetime as dt
import io
import json
import sys

import pytest

from saegold.store.features import get_or_create_source, upsert_feature
from saegold.store.labels import add_label
from saegold.tui.cli import main

from store_samples import dump

SRC = "gemma-2-2b/20-gemmascope-res-16k"


@pytest.fixture
def db(project):
    with project.write() as w:
        sid = get_or_create_source(w, "gemma-2-2b", "20-gemmascope-res-16k")
        for idx in (12, 13):
            add_label(w, upsert_feature(w, sid, idx), "baez", f"label {idx}", origin="saegold")
    return str(project.path)


def rec(n, *, feature=12, t="2026-11-26T10:00:00Z", **kw):
    return {"uuid": f"u{n}", "annotator": "alice", "source": SRC, "feature": feature, "kind": "tier",
            "value": "input", "created_at": t, **kw}


def lines(*records) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def _count(db):
    from saegold.store.db import open_project
    with open_project(db) as p:
        return p.scalar("SELECT COUNT(*) FROM judgments")


@pytest.mark.parametrize("name", ["xaa", "judgments.txt", "judgments.json", "judgments.json.part"])
def test_json_lines_by_content_whatever_the_name(db, tmp_path, capsys, name):
    path = tmp_path / name
    path.write_text(lines(rec(1), rec(2, feature=13)))
    assert main(["--db", db, "import", "judgments", str(path)]) == 0
    assert "2 new" in capsys.readouterr().out and _count(db) == 2


def test_one_document_still_reads_as_one(db, tmp_path, capsys):
    pretty = tmp_path / "array.txt"
    pretty.write_text(json.dumps([rec(1), rec(2, feature=13)], indent=2))
    single = tmp_path / "one.json"
    single.write_text(json.dumps(rec(3), indent=2) + "\n")
    assert main(["--db", db, "import", "judgments", str(pretty), str(single)]) == 0
    assert "3 new" in capsys.readouterr().out


def test_a_bad_line_names_the_line_not_extra_data(db, tmp_path, capsys):
    path = tmp_path / "piece.txt"
    path.write_text(lines(rec(1)) + '{"uuid": "u2", \n')
    assert main(["--db", db, "import", "judgments", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"saegold: error: {path}: record line 2: invalid JSON") and "Extra data" not in err
    assert _count(db) == 0


def _stdin(monkeypatch, text: str):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))


def test_standard_input(db, capsys, monkeypatch):
    _stdin(monkeypatch, lines(rec(1), rec(2, feature=13)))
    assert main(["--db", db, "import", "judgments", "-"]) == 0
    out = capsys.readouterr().out
    assert "imported 1 file(s), 2 judgment record(s)" in out and _count(db) == 2
    from saegold.store.db import open_project
    with open_project(db) as p:
        assert p.scalar("SELECT path FROM import_log ORDER BY id DESC LIMIT 1") == "<stdin>"
    _stdin(monkeypatch, lines(rec(3), {**rec(4), "kind": "vibe"}))
    assert main(["--db", db, "import", "judgments", "-"]) == 2
    assert capsys.readouterr().err == ("saegold: error: <stdin>: record line 2: field 'kind': 'vibe' is not one "
                                       "of tier, verdict, preference, gold_label, skip, flag, note, retract, "
                                       "adj_tier, adj_verdict, adj_gold_label\n")
    assert _count(db) == 2


def test_future_dates_are_refused_beyond_the_clock_skew(db, project, tmp_path, capsys):
    now = dt.datetime.now(dt.timezone.utc)
    soon = (now + dt.timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ")     # within the allowance
    path = tmp_path / "future.jsonl"
    path.write_text(lines(rec(1, t=soon), rec(2, feature=13, t="2030-01-01T00:00:00Z")))
    before = dump(project)
    assert main(["--db", db, "import", "judgments", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"saegold: error: {path}: record line 2: field 'created_at': '2030-01-01T00:00:00Z' "
                          "is in the future (this machine's clock says ")
    assert err.endswith("; 5 minutes of clock skew are allowed)\n") and err.count("\n") == 1
    assert dump(project) == before
    path.write_text(lines(rec(1, t=soon)))
    assert main(["--db", db, "import", "judgments", str(path)]) == 0
    assert _count(db) == 1


def test_neuronpedia_reads_json_lines_by_content_too(project, tmp_path, capsys):
    path = tmp_path / "explanations.json"          # JSON Lines under a .json name
    path.write_text(lines({"modelId": "m", "layer": "1-s", "index": 1, "description": "one"},
                          {"modelId": "m", "layer": "1-s", "index": 2, "description": "two"}))
    assert main(["--db", str(project.path), "import", "neuronpedia", str(path)]) == 0
    assert "labels:   2 new" in capsys.readouterr().out
