"""The import / export / status commands, in-process and as the installed `saegold` script."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from saegold.tui.cli import main

from store_samples import EXCERPT, FULL_FILES, NP_DIR, dump, load, needs_samples

pytestmark = needs_samples
SAEGOLD = Path(sys.executable).parent / "saegold"


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "p.db"
    assert main(["--db", str(path), "init"]) == 0
    return str(path)


def test_import_export_status(db, capsys, tmp_path):
    capsys.readouterr()
    assert main(["--db", db, "import", "neuronpedia", str(EXCERPT), str(FULL_FILES[0])]) == 0
    out = capsys.readouterr().out
    assert "imported 2 file(s), 12 record(s)" in out and "labels:   12 new" in out
    assert main(["--db", db, "export", "labels", "--format", "jsonl"]) == 0
    recs = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(recs) == 12 and {"source", "feature", "method", "text"} <= set(recs[0])
    assert {r["text"] for r in recs} >= {r["description"] for r in load(EXCERPT)}
    assert main(["--db", db, "status", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["tables"]["labels"] == 12 and len(s["imports"]) == 2
    assert main(["--db", db, "status"]) == 0
    assert "oai_token-act-pair" in capsys.readouterr().out


def test_bad_import_is_one_line_exit_2_and_changes_nothing(db, capsys, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"modelId":"m","layer":"1-s","index":1,"description":"ok"}\n'
                   '{"modelId":"m","layer":"1-s","index":"x","description":"\\u001b[2J evil"}\n')
    main(["--db", db, "import", "neuronpedia", str(EXCERPT)])
    from saegold.store.db import open_project
    with open_project(db) as p:
        before = dump(p)
    capsys.readouterr()
    assert main(["--db", db, "import", "neuronpedia", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err == f"saegold: error: {bad}: record line 2: field 'index': expected a non-negative integer, got the string 'x'"
    with open_project(db) as p:
        assert dump(p) == before
    assert main(["--db", db, "import", "neuronpedia", "--skip-bad", str(bad)]) == 0
    out = capsys.readouterr().out
    assert "rejected 1 record(s)" in out and "record line 2: field 'index'" in out


def test_untrusted_text_is_inert_in_the_skip_bad_summary(db, capsys, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"modelId":"m","layer":"1-s","index":"\\u001b[31mred","description":"d"}\n')
    assert main(["--db", db, "import", "neuronpedia", "--skip-bad", str(bad)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\x1b[31m" in out


def test_export_gold_is_wired(db, capsys):
    """`export gold` reaches engine.gold.export_gold (an empty project has no gold records)."""
    pytest.importorskip("saegold.engine.gold", reason="engine/gold.py (the STATS engineer's) not present")
    capsys.readouterr()
    assert main(["--db", db, "export", "gold", "--format", "jsonl", "--policy", "majority"]) == 0
    assert capsys.readouterr().out == ""


def test_installed_script(tmp_path):
    db = tmp_path / "s.db"
    run = lambda *a: subprocess.run([str(SAEGOLD), "--db", str(db), *a], capture_output=True, text=True,
                                    timeout=120)
    assert run("init").returncode == 0
    r = run("import", "neuronpedia", str(NP_DIR))
    assert r.returncode == 0, r.stderr
    assert "16,391 new" in r.stdout  # 16,383 + 5 + 3 features, see test_import_neuronpedia
    r = run("export", "scores", "--format", "csv")
    assert r.returncode == 0 and r.stdout.splitlines() == [
        "source,feature,input_score,output_score,category,input_threshold,output_threshold,"
        "scorer_version,device,continuation,created_at"]
    r = run("import", "judgments", str(tmp_path / "missing.jsonl"))
    assert r.returncode == 2 and "no such file" in r.stderr and r.stderr.count("\n") == 1
