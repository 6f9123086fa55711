"""`saegold --db PATH demo --rebuild` deletes PATH: only when PATH is a demo project."""
from __future__ import annotations

import json

from saegold.store.db import open_project
from saegold.tui.cli import main


def test_demo_rebuild_refuses_to_delete_a_real_project(tmp_path, capsys):
    db = tmp_path / "saegold.db"
    assert main(["--db", str(db), "init"]) == 0
    feature = {"modelId": "gemma-2-2b", "layer": "20-gemmascope-res-16k", "index": "12",
               "explanations": [{"description": "cats", "explanationModelName": "m", "typeName": "t"}]}
    (tmp_path / "f.json").write_text(json.dumps(feature))
    assert main(["--db", str(db), "import", "neuronpedia", str(tmp_path / "f.json")]) == 0
    capsys.readouterr()
    assert main(["--db", str(db), "demo", "--rebuild", "--no-open"]) == 2
    err = capsys.readouterr().err
    assert "not a demo project" in err and "gemma-2-2b/20-gemmascope-res-16k" in err
    with open_project(db) as project:           # untouched
        assert [r["name"] for r in project.query("SELECT name FROM sources")] == ["gemma-2-2b/20-gemmascope-res-16k"]
        assert project.scalar("SELECT COUNT(*) FROM labels") == 1
    # a file that is no project at all is not deleted either
    other = tmp_path / "notes.db"
    other.write_text("my notes")
    assert main(["--db", str(other), "demo", "--rebuild", "--no-open"]) == 2
    assert other.read_text() == "my notes"


def test_demo_leaves_a_foreign_planted_folder_alone(tmp_path, capsys):
    """The demo saves its model in a folder `planted` beside the project (and clears it
    first): a folder of that name holding other files is not emptied."""
    mine = tmp_path / "planted" / "my-results.csv"
    mine.parent.mkdir()
    mine.write_text("a,b\n")
    assert main(["--db", str(tmp_path / "demo.db"), "demo", "--no-open", "--max-contexts", "5"]) == 2
    assert "holds files the demo did not make" in capsys.readouterr().err
    assert mine.read_text() == "a,b\n" and not (tmp_path / "demo.db").exists()
