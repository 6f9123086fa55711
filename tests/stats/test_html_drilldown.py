"""The HTML report: the n behind each reliability point, and a drill-down list of the features
where annotators disagree or that were flagged (untrusted text escaped)."""
from __future__ import annotations

import json
import re

import numpy as np

from saegold.engine.stats import disputes
from saegold.store.judgments import make_event
from saegold.tui.cli import main

HOSTILE = "<script>alert(1)</script> [bold]x[/bold] \x1b[31m"


def _project(build, n=40, seed=5):
    rng = np.random.default_rng(seed)
    fids = build.features(n, scores=[(0.9 if i % 2 else 0.1, 0.05) for i in range(n)])
    uuids = []
    for i, fid in enumerate(fids):
        u = build.label(fid, "baez", HOSTILE if i == 3 else f"label {i}")
        uuids.append(u)
        q = rng.random()
        verdict = "correct" if q > 0.5 else "wrong"
        build.bench(u, "detection", 0.3 + 0.6 * q + rng.normal(0, 0.05))
        build.bench(u, "detection", 0.5 + rng.normal(0, 0.05), control="shuffled")
        build.judge("ann", fid, tier="input", verdicts={u: verdict})
        # bob disagrees on the tier of feature 1 and on the verdict of feature 3
        build.judge("bob", fid, tier="cross" if i == 1 else "input",
                    verdicts={u: ("wrong" if verdict == "correct" else "correct") if i == 3 else verdict})
    build.events.append(make_event("bob", fids[5], "flag", value="tokens look " + HOSTILE,
                                   created_at=build._time()))
    build.commit()
    return fids, uuids


def test_disputes_lists_disagreements_and_flags(build):
    _project(build)
    got = {(d.feature, tuple(d.reasons)) for d in disputes.disputes(build.project)}
    assert got == {(1, ("tier split (cross 1, input 1)",)),
                   (3, ("verdict split on baez (correct, wrong)",)),
                   (5, ("flagged by bob",))}


def test_html_report_shows_n_per_point_and_the_drilldown(build, tmp_path, capsys):
    _project(build)
    page = tmp_path / "report.html"
    assert main(["--db", str(build.project.path), "calibrate", "--bootstrap", "50", "--grid", "8",
                 "--html", str(page)]) == 0
    doc = page.read_text()
    # reliability diagram: every point carries its n as text and a marker size that grows with n
    figs = [json.loads(m) for m in re.findall(r'Plotly\.newPlot\(\s*"[^"]+",\s*(\[.*?\]),\s*\{', doc)]
    points = [t for fig in figs for t in fig if str(t.get("name", "")).endswith("out-of-fold")]
    assert points, "no reliability trace"
    for t in points:
        ns = [int(s.removeprefix("n=")) for s in t["text"]]
        assert sum(ns) == 80                                    # 40 labels x 2 verdicts, out of fold
        sizes = t["marker"]["size"]
        assert [a < b for a, b in zip(ns, ns[1:]) if a != b] == [x < y for x, y in zip(sizes, sizes[1:])
                                                                  if x != y]
    # drill-down: the three features, with annotators' verdicts; hostile text escaped
    assert "Disagreements and flags (3 feature(s))" in doc
    assert doc.count("<details>") == 3
    assert "tier split (cross 1, input 1)" in doc and "flagged by bob" in doc
    assert "<script>alert(1)</script>" not in doc
    assert "&lt;script&gt;alert(1)&lt;/script&gt; [bold]x[/bold]" in doc
    assert "flag: tokens look &lt;script&gt;" in doc
