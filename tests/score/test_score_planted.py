"""The planted model through the real CLI: every planted feature lands in its category."""
from __future__ import annotations

from saegold.store.db import open_project
from saegold.store.features import examples, logit_tokens
from saegold.tui.cli import main


def test_planted_features_land_in_their_categories(planted, demo_corpus, tmp_path, capsys):
    model_dir, sae_dir, expected = planted
    db = tmp_path / "p.db"
    assert main(["--db", str(db), "init"]) == 0
    rc = main(["--db", str(db), "score", "--model", str(model_dir), "--sae", str(sae_dir), "--corpus",
               str(demo_corpus), "--ctx-len", "32", "--max-contexts", "500", "--batch-size", "16"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "categories:" in out
    with open_project(db) as project:
        rows = project.query(
            "SELECT f.idx, f.id, t.category, t.input_score, t.output_score, t.continuation, t.details "
            "FROM features f JOIN taxonomy_scores t ON t.feature_id = f.id ORDER BY f.idx")
        got = {r["idx"]: r["category"] for r in rows}
        assert {j: got[j] for j in expected} == expected
        assert len(rows) == 48
        by_idx = {r["idx"]: r for r in rows}
        # A cross feature on "ocean": detector input, logit lens and amplified output all say ocean.
        ocean = by_idx[0]
        assert ocean["input_score"] == 1.0
        assert logit_tokens(project, ocean["id"], "promoted")[0]["token"] == " ocean"
        nxt = logit_tokens(project, ocean["id"], "amplified_next")
        assert len(nxt) == 10 and nxt[0]["token"] == " ocean" and 0 < nxt[0]["value"] <= 1
        assert "ocean" in ocean["continuation"]
        top = examples(project, ocean["id"], "top")
        assert top and all(ex["tokens"][ex["max_idx"]] == " ocean" for ex in top)
        assert [ex["max_act"] for ex in top] == sorted((ex["max_act"] for ex in top), reverse=True)
        negs = examples(project, ocean["id"], "negative")
        assert len(negs) == 20 and all(" ocean" not in ex["tokens"] for ex in negs)
        # Output features fire on many words, none of them in their logit lens.
        out_feat = next(j for j, c in expected.items() if c == "output")
        maxtoks = {ex["tokens"][ex["max_idx"]] for ex in examples(project, by_idx[out_feat]["id"], "top")}
        assert len(maxtoks) > 3
        assert project.scalar("SELECT COUNT(*) FROM sources") == 1
        src = project.query("SELECT * FROM sources")[0]
        assert (src["hook_name"], src["layer"], src["d_sae"], src["width"]) == ("blocks.1.hook_resid_post", 1, 48, 256)
