"""`saegold annotators`: register a lead from the command line, so adjudications made elsewhere import."""
from __future__ import annotations

import json

from saegold.store import judgments
from saegold.store.db import open_project
from saegold.store.features import get_or_create_source, upsert_feature
from saegold.tui.cli import main


def test_register_lead_then_import_adjudication(tmp_path, capsys):
    db = tmp_path / "p.db"
    with open_project(db, create=True) as p, p.write() as w:
        upsert_feature(w, get_or_create_source(w, "m", "s"), 4)
    record = {"uuid": "u-1", "annotator": "lena", "source": "m/s", "feature": 4, "kind": "adj_tier",
              "value": "cross", "created_at": "2026-11-26T10:00:00Z"}
    (tmp_path / "j.jsonl").write_text(json.dumps(record) + "\n")

    assert main(["--db", str(db), "import", "judgments", str(tmp_path / "j.jsonl")]) == 2
    assert "lead" in capsys.readouterr().err

    assert main(["--db", str(db), "annotators", "--add", "lena", "--lead"]) == 0
    assert "lena" in capsys.readouterr().out
    assert main(["--db", str(db), "import", "judgments", str(tmp_path / "j.jsonl")]) == 0
    with open_project(db) as p:
        assert judgments.role_of(p, "lena") == "lead"
        assert [e["kind"] for e in judgments.events(p)] == ["adj_tier"]
    # registering again as a plain annotator does not demote
    assert main(["--db", str(db), "annotators", "--add", "lena"]) == 0
    with open_project(db) as p:
        assert judgments.role_of(p, "lena") == "lead"


def test_bad_arguments_are_one_line(tmp_path, capsys):
    db = tmp_path / "p.db"
    open_project(db, create=True).close()
    assert main(["--db", str(db), "annotators", "--lead"]) == 2
    assert main(["--db", str(db), "annotators", "--add", "a\x1b[2Jb"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("saegold: error:") for line in err)
    with open_project(db) as p:
        assert p.scalar("SELECT COUNT(*) FROM annotators") == 0
