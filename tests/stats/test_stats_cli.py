"""The `saegold agreement` and `saegold calibrate` commands end to end on a real project."""
from __future__ import annotations

import json

import numpy as np
import pytest

from saegold.store import settings
from saegold.store.features import categorize
from saegold.tui.cli import main


@pytest.fixture(autouse=True)
def wide(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # keep table rows on one line for the asserts


def _project(build, n=40, planted=(0.3, 0.05)):
    """Human tiers follow the thresholds ``planted`` (the project's are the defaults 0.5, 0.01)."""
    rng = np.random.default_rng(1)
    scores = [((i * 37 % n) / n, (i * 13 % n) / (4 * n)) for i in range(n)]
    fids = build.features(n, scores=scores)
    for i, fid in enumerate(fids):
        u = build.label(fid, "baez", f"label {i}")
        q = rng.random()
        build.bench(u, "detection", 0.5 + 0.4 * q)
        build.bench(u, "detection", 0.5 + rng.normal(0, 0.05), control="shuffled")
        v = "correct" if q > 0.6 else "partly" if q > 0.3 else "wrong"
        t = categorize(*scores[i], *planted)
        build.judge("ann", fid, tier=t, verdicts={u: v}, seconds=20)
        build.judge("evil\x1b[31m", fid, tier=t if i % 4 else "obscure", verdicts={u: v}, seconds=22)
    build.commit()


def test_agreement_json_and_table(build, capsys):
    _project(build)
    db = str(build.project.path)
    assert main(["--db", db, "agreement", "--json", "--bootstrap", "100"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("krippendorff_alpha", "percent_agreement"):
        e = out["tier"][key]
        assert set(e) >= {"value", "n_items", "ci"} and e["n_items"] == 40
        assert e["ci"][0] <= e["value"] <= e["ci"][1]
    assert out["verdict"]["krippendorff_alpha"]["value"] == 1.0 or out["verdict"]["krippendorff_alpha"]["value"] is None
    assert main(["--db", db, "agreement", "--bootstrap", "50"]) == 0
    text = capsys.readouterr().out
    assert "Krippendorff's α (nominal)" in text and "\x1b[31m" not in text and "evil\\x1b[31m" in text


def test_agreement_too_little_overlap(project, capsys):
    assert main(["--db", str(project.path), "agreement", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    a = out["tier"]["krippendorff_alpha"]
    assert a["value"] is None and a["ci"] is None and "too little overlap: 0 items" in a["reason"]
    assert main(["--db", str(project.path), "agreement"]) == 0
    text = capsys.readouterr().out
    assert "too little overlap: 0 items" in text and "nan" not in text.lower()


def test_calibrate_html_json_and_store(build, capsys, tmp_path):
    _project(build)
    db = str(build.project.path)
    page = tmp_path / "report.html"
    assert main(["--db", db, "calibrate", "--bootstrap", "100", "--grid", "12", "--html", str(page)]) == 0
    text = capsys.readouterr().out
    assert "Which benchmark predicts human judgment?" in text
    assert "reliability (" in text and "fitted thresholds" in text
    doc = page.read_text()
    assert doc.startswith("<!DOCTYPE html>") and "plotly" in doc and len(doc) > 1_000_000  # plotly.js inline
    assert "src=\"http" not in doc  # nothing fetched from the network
    assert main(["--db", db, "calibrate", "--json", "--bootstrap", "50", "--grid", "12"]) == 0
    out = json.loads(capsys.readouterr().out)
    det = next(c for c in out["cells"] if c["benchmark"] == "detection" and c["category"] == "all")
    assert det["auroc_correct"]["value"] > 0.5 and det["n_rows"] == 80
    fitted = out["thresholds"]["fitted"]
    assert main(["--db", db, "calibrate", "--bootstrap", "20", "--grid", "12", "--store-thresholds", "--yes"]) == 0
    assert settings.get(build.project, "input_threshold") == fitted[0]
    assert settings.get(build.project, "output_threshold") == fitted[1]


def test_store_thresholds_refuses_a_fit_not_shown_better(build, capsys):
    """Human tiers follow the current thresholds: the fit is the current pair, nothing is stored
    without --force, and --force says what it does (issue 12.5)."""
    _project(build, planted=(0.5, 0.01))
    db = str(build.project.path)
    assert main(["--db", db, "calibrate", "--bootstrap", "20", "--grid", "12"]) == 0
    assert "current thresholds kept: the current thresholds already reproduce" in capsys.readouterr().err
    assert main(["--db", db, "calibrate", "--bootstrap", "20", "--grid", "12", "--store-thresholds", "--yes"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("no thresholds stored: ") and "--force" in err[0]
    assert settings.get(build.project, "input_threshold") == 0.5
    assert main(["--db", db, "calibrate", "--bootstrap", "20", "--grid", "12", "--store-thresholds", "--yes",
                 "--force"]) == 0
    err = capsys.readouterr().err
    assert "storing anyway (--force): the current thresholds already reproduce" in err


def test_calibrate_empty_project(project, capsys):
    assert main(["--db", str(project.path), "calibrate", "--bootstrap", "20"]) == 0
    text = capsys.readouterr().out
    assert "not enough data (n=0" in text and "nan" not in text.lower()
    assert main(["--db", str(project.path), "calibrate", "--store-thresholds", "--yes"]) == 1


def test_store_thresholds_asks_on_a_terminal(build, capsys, monkeypatch):
    _project(build)
    db = str(build.project.path)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    asked = []
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or "n")
    assert main(["--db", db, "calibrate", "--bootstrap", "20", "--grid", "8", "--store-thresholds"]) == 0
    assert asked and "re-derive all categories" in asked[0]
    assert "thresholds not stored" in capsys.readouterr().err
    assert settings.get(build.project, "input_threshold") == 0.5  # unchanged default


def test_missing_project_is_one_line(tmp_path, capsys):
    assert main(["--db", str(tmp_path / "none.db"), "agreement"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such project database" in err[0]


def test_status_shows_the_stopping_rule(build, capsys):
    """`saegold status` says, per prediction-powered estimate ('all' in text, every category in
    --json), its CI width now and about how many more judged features reach target_ci_width;
    a tighter target needs more."""
    _project(build, n=60)
    db = str(build.project.path)
    assert main(["--db", db, "status", "--json"]) == 0
    stop = json.loads(capsys.readouterr().out)["stopping"]
    assert stop["target_ci_width"] == 0.1
    allc = next(e for e in stop["labels"] if e["category"] == "all" and e["target"] == "correct")
    assert allc["n_judged"] == 60 and allc["stopping"]["width"] > 0.1 and allc["stopping"]["more"] == 0
    # every feature is judged here: the 'all' row cannot shrink by judging more features
    assert not allc["stopping"]["reachable"]
    assert {e["category"] for e in stop["tiers"]} >= {"all", "input", "output"}
    assert main(["--db", db, "status"]) == 0
    out = capsys.readouterr().out
    assert "Stopping rule: 95% CI width now vs target 0.1" in out and "baez labels correct" in out
    assert "features in tier input" in out and "0 (all left; still wider)" in out


def test_stopping_rule_counts_fall_with_a_looser_target(build, capsys):
    """Half the features judged: the projected more judged features for the 'all' row is > 0
    and shrinks when target_ci_width is raised (settings set)."""
    rng = np.random.default_rng(5)
    n = 120
    scores = [((i * 37 % n) / n, (i * 13 % n) / (4 * n)) for i in range(n)]
    fids = build.features(n, scores=scores)
    for i, fid in enumerate(fids):
        u = build.label(fid, "baez", f"label {i}")
        q = rng.random()
        build.bench(u, "detection", q + rng.normal(0, 0.1))
        if rng.random() < 0.5:
            v = "correct" if q > 0.5 else "wrong"
            for who in ("ann", "bob"):
                build.judge(who, fid, tier=categorize(*scores[i], 0.5, 0.01), verdicts={u: v})
    build.commit()
    db = str(build.project.path)
    figures = []
    for target in ("0.1", "0.2"):
        assert main(["--db", db, "settings", "set", "target_ci_width", target]) == 0
        capsys.readouterr()
        assert main(["--db", db, "status", "--json"]) == 0
        stop = json.loads(capsys.readouterr().out)["stopping"]
        e = next(e for e in stop["labels"] if e["category"] == "all" and e["target"] == "correct")
        figures.append((e["stopping"]["width"], e["stopping"]["more"]))
    (w1, m1), (w2, m2) = figures
    assert w1 == pytest.approx(w2) and w1 > 0.1 and m1 > 0 and (m2 < m1 or m2 == 0)
    assert main(["--db", db, "settings", "set", "target_ci_width", "1.5"]) == 2
    assert "must be at most 1" in capsys.readouterr().err


def test_prediction_powered_population_is_the_queues_sampling_frame(build, capsys):
    """Features the score job kept without examples (dead ones) are never handed out by the
    queue: the estimates' population and the stopping rule's features left leave them out,
    and a judged feature stays in whatever its examples."""
    _project(build, n=60)
    dead = build.features(15, sae="dead-sae", scores=[(0.9, 0.0)] * 15)
    with build.project.write() as db:
        db.execute(f"DELETE FROM examples WHERE feature_id IN ({','.join(map(str, dead))})")
        db.execute("DELETE FROM examples WHERE feature_id = (SELECT min(feature_id) FROM judgments)")
    db = str(build.project.path)
    assert main(["--db", db, "status", "--json"]) == 0
    stop = json.loads(capsys.readouterr().out)["stopping"]
    allt = next(e for e in stop["tiers"] if e["category"] == "all")
    assert allt["n_features"] == 60, allt
    assert not allt["stopping"]["reachable"] and allt["stopping"]["more"] == 0  # nothing left to judge
