"""`saegold demo` builds a project offline with the real pipeline and opens the app on it."""
from __future__ import annotations

from apphelp import drive, make_app, screen_text

from store.db import open_project
from tui.cli import main


def test_demo_builds_with_the_real_pipeline_and_opens(tmp_path, capsys):
    db = tmp_path / "demo" / "saegold.db"
    assert main(["--db", str(db), "demo", "--no-open", "--max-contexts", "120"]) == 0
    out = capsys.readouterr().out
    assert "DEMO STAND-IN" in out and "NOT a language model" in out and "127.0.0.1" in out
    assert db.exists() and not (db.parent / "saegold.db.building").exists()
    p = open_project(db)
    cats = {r["category"] for r in p.query("SELECT category FROM taxonomy_scores")}
    assert {"input", "output", "cross", "obscure"} <= cats
    methods = {r["method"] for r in p.query("SELECT DISTINCT method FROM labels WHERE status = 'ok'")}
    assert {"eleuther_acts_top5", "baez", "output_logits"} <= methods
    assert p.scalar("SELECT COUNT(*) FROM bench_scores WHERE control = 'shuffled'") > 0
    assert p.scalar("SELECT COUNT(*) FROM logit_tokens WHERE kind = 'amplified_next'") > 0
    # The app opens on it: a feature with candidates, judged and revealed.
    app = make_app(p, "newcomer")
    n = len(app.session.view.candidates)
    text = drive(app, ["i"] + ["y"] * n, after=screen_text)
    assert "Predicted" in text and "DONE" in text
    p.close()
    # A second run keeps the project (built only when missing).
    assert main(["--db", str(db), "demo", "--no-open"]) == 0
    assert "exists" in capsys.readouterr().out
