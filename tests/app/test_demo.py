"""`saegold demo` builds a project offline with the real pipeline and opens the app on it."""
from __future__ import annotations

from apphelp import drive, make_app, screen_text

from saegold.store.db import open_project
from saegold.tui.cli import main


def test_demo_builds_with_the_real_pipeline_and_opens(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    db = tmp_path / "demo" / "saegold.db"
    assert main(["--db", str(db), "demo", "--no-open", "--max-contexts", "120"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "DEMO STAND-IN" in out and "NOT a language model" in out and "127.0.0.1" in out
    # Every build step reports progress (one line per stage where no bars are drawn), the
    # first before the model libraries are imported; the summary wraps between words at 80.
    stages = [line.removeprefix("  ... ") for line in captured.err.splitlines() if line.startswith("  ... ")]
    assert stages[:3] == ["load torch, transformers, sae-lens", "build planted model and SAE", "load model and SAE"]
    assert {"logit lens", "output scores", "input scores", "labels", "bench"} <= set(stages)
    assert all(len(line) <= 80 or len(line.split()) == 1 for line in out.splitlines()), out   # a long path stays whole
    summary = out[out.index("demo project: "):].split("\n\n")[0]
    p = open_project(db)
    n_labels = p.scalar("SELECT COUNT(*) FROM labels WHERE status = 'ok'")
    p.close()
    assert f"{n_labels:,} labels" in " ".join(summary.split())
    assert db.exists() and not (db.parent / "saegold.db.building").exists()
    p = open_project(db)
    cats = {r["category"] for r in p.query("SELECT category FROM taxonomy_scores")}
    assert {"input", "output", "cross", "obscure"} <= cats
    methods = {r["method"] for r in p.query("SELECT DISTINCT method FROM labels WHERE status = 'ok'")}
    assert {"eleuther_acts_top5", "baez", "output_logits"} <= methods
    assert p.scalar("SELECT COUNT(*) FROM bench_scores WHERE control = 'shuffled'") > 0
    assert p.scalar("SELECT COUNT(*) FROM intruder_scores WHERE n > 0") > 0      # the stand-in answers intruder rounds
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
