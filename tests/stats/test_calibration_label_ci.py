"""calibrate reports each benchmark's per-label CI (mean half-width, reliability) and the
scores judged on negatives no model verified (issue 15)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from saegold.engine.bench.metrics import wilson_ci
from saegold.engine.stats import calibration, html
from saegold.engine.stats.calibration import label_noise


def _world(rng, n_labels: int, n_items: int, p: np.ndarray):
    """Scores k/n with their Wilson 95% CIs, as the bench stores them."""
    k = rng.binomial(n_items, p)
    ci = np.array([wilson_ci(int(x), n_items) for x in k], dtype=float)
    return k / n_items, ci[:, 0], ci[:, 1]


def test_reliability_recovers_the_known_truth_by_simulation():
    """Seeded worlds with a known share of true spread: label quality p ~ U(0.1, 0.9) judged on
    40 items (true reliability var(p) / (var(p) + E[p(1-p)] / 40) = 0.916), and a coin judge
    (p = 0.5 for every label: reliability 0, all the spread is noise)."""
    rng = np.random.default_rng(15)
    var_p = 0.8 ** 2 / 12
    truth = var_p / (var_p + (0.5 - (var_p + 0.25)) / 40)
    good, coin, widths = [], [], []
    for _ in range(60):
        half, rel = label_noise(*_world(rng, 300, 40, rng.uniform(0.1, 0.9, 300)))
        good.append(rel)
        widths.append(half)
        coin.append(label_noise(*_world(rng, 300, 40, np.full(300, 0.5)))[1])
    assert abs(np.mean(good) - truth) < 0.03, (np.mean(good), truth)
    print(f"reliability: U(0.1, 0.9) world {np.mean(good):.3f} (truth {truth:.3f}); coin {np.mean(coin):.3f} (truth 0)")
    # Approximate at the bottom: a Wilson half-width / 1.96 understates the standard error near
    # 0.5 (0.0755 vs 0.0791 at 40 items), so pure noise reads about 0.1 (measured: 0.11), not 0.
    assert np.mean(coin) < 0.15 and np.quantile(coin, 0.9) < 0.25
    # mean half-width: about 1.96 x sqrt(E[p(1-p)] / 40) = 0.137 (Wilson pulls it in a little)
    assert 0.12 < np.mean(widths) < 0.15
    assert label_noise(np.array([0.5, 0.6]), np.array([np.nan] * 2), np.array([np.nan] * 2)) == (None, None)


def _project(build, n=30, seed=4):
    """detection scores with CIs; a third of them on unverified other-features negatives
    (every 6th from before the flag existed: no negatives_verified key at all)."""
    rng = np.random.default_rng(seed)
    fids = build.features(n)
    for i, fid in enumerate(fids):
        u = build.label(fid, "baez", f"label {i}")
        quality = rng.random()
        value = 0.5 + 0.45 * quality + rng.normal(0, 0.03)
        if i % 3 == 0:
            details = {"ci": [value - 0.2, min(1.0, value + 0.2)], "selection": {"negatives": "other-features"}}
            if i % 6:
                details["negatives_verified"] = False
        else:
            details = {"ci": [value - 0.1, min(1.0, value + 0.1)], "selection": {"negatives": "scoring"},
                       "negatives_verified": True}
        build.bench(u, "detection", value, details=details)
        build.bench(u, "detection", 0.5 + rng.normal(0, 0.03), control="shuffled", details=details)
        build.judge("ann", fid, verdicts={u: "correct" if quality > 0.6 else "partly" if quality > 0.3 else "wrong"})
    build.commit()


def test_calibrate_reports_label_cis_and_unverified_negatives(build, tmp_path):
    _project(build)
    rep = calibration.compute(build.project, n_boot=200, seed=0, grid=10)
    (det,) = [s for s in rep.benchmarks if s.benchmark == "detection"]
    assert det.unverified == 10 and det.n_with_ci == 30
    cell = rep.cell("detection")
    assert cell.unverified == 10
    # half-widths 0.2 on ten labels, 0.1 (or less where clipped at 1) on twenty
    assert 0.12 < cell.label_ci_halfwidth < 0.134
    assert 0 < cell.reliability < 1
    text = " ".join(rep.findings)
    assert "one judged label's score is known to about ±0.1" in text and "reliability" in text
    assert "10 of 30 true-label scores were judged on other features' examples no model verified" in text
    assert "label_ci" in rep.settings["rules"] and "NOT weighted" in rep.settings["rules"]["label_ci"]
    data = json.loads(json.dumps(rep.to_dict(), allow_nan=False))
    assert data["cells"][0]["label_ci_halfwidth"] == pytest.approx(cell.label_ci_halfwidth)
    page = html.render(rep)
    assert "label CI ± (reliability)" in page and "unverified negatives" in page


def test_calibrate_cli_shows_them(build, tmp_path, capsys):
    from saegold.tui.cli import main

    _project(build)
    db = build.project.path
    build.project.close()
    assert main(["--db", str(db), "calibrate", "--bootstrap", "50"]) == 0
    out = capsys.readouterr().out
    flat = " ".join(out.replace("│", " ").split())         # the panel wraps its lines
    assert "±0.13" in out and "10 of 30 true-label scores were judged" in flat, out
