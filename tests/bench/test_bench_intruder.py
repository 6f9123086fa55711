"""The intruder benchmark (per feature, no label) against the local stand-in server (real openai
SDK, real HTTP): oracle 1.0, coin judge at chance inside its CI, garbage as parse failures."""
from __future__ import annotations

import hashlib
import re
from collections import Counter

from saegold.engine.bench.demo_judge import demo_judge_answer
from saegold.engine.bench.intruder import INTRUDER_SYSTEM, parse_pick
from saegold.engine.bench.job import BenchConfig
from saegold.engine.bench.report import build_report
from saegold.store.db import loads

from benchkit import build_project, run

_EX = re.compile(r"^Example (\d+): (.*)$")


def _bodies(request: dict) -> list[str]:
    assert request["messages"][0]["content"] == INTRUDER_SYSTEM
    return [m.group(2) for ln in request["messages"][-1]["content"].splitlines() if (m := _EX.match(ln))]


def oracle(request: dict) -> str:
    """Knows each example's feature word (benchkit's ground truth); names the odd one out."""
    found = [re.search(r"zq\d+word", b).group(0) for b in _bodies(request)]
    common = Counter(found).most_common(1)[0][0]
    return str(1 + next(i for i, w in enumerate(found) if w != common))


def coin(request: dict) -> str:
    n = len(_bodies(request))
    return str(1 + hashlib.sha256(request["messages"][-1]["content"].encode()).digest()[0] % n)


def _rows(project):
    rows = project.query("SELECT * FROM intruder_scores ORDER BY feature_id")
    for r in rows:
        r["details"] = loads(r["details"])
    return rows


def test_oracle_scores_one_and_rounds_are_quantile_matched(bench_project, llm_server):
    server = llm_server(chat_handler=oracle)
    summary, _ = run(bench_project, server, BenchConfig(benchmarks=("intruder",)))
    rows = _rows(bench_project)
    assert summary.written["intruder"] == len(rows) == 12
    for r in rows:
        assert r["value"] == 1.0 and r["n"] == 5 and r["parse_failures"] == 0
        assert r["details"]["chance"] == 0.2 and r["details"]["ci"][0] > 0.4
        for rnd in r["details"]["rounds"]:
            fids = rnd["feature_ids"]
            assert len(fids) == 5 and fids[rnd["truth"] - 1] != r["feature_id"]
            assert sum(f == r["feature_id"] for f in fids) == 4
    # one request per round; a re-run sends nothing
    assert server.count == 12 * 5
    summary, _ = run(bench_project, server, BenchConfig(benchmarks=("intruder",)))
    assert server.count == 12 * 5 and summary.already_done == 12
    # --redo supersedes: one live result per feature, each replaced one kept whole
    before = {r["feature_id"]: r for r in bench_project.query("SELECT * FROM intruder_scores")}
    run(bench_project, server, BenchConfig(benchmarks=("intruder",), redo=True))
    assert bench_project.scalar("SELECT count(*) FROM intruder_scores") == 12
    kept = bench_project.query("SELECT feature_id, row FROM superseded_results WHERE tbl = 'intruder_scores'")
    assert sorted(r["feature_id"] for r in kept) == sorted(before)
    assert all(loads(r["row"]) == before[r["feature_id"]] for r in kept)
    rep = build_report(bench_project)["intruder"]
    assert rep[0]["category"] == "all" and rep[0]["n"] == 12 and rep[0]["mean"] == 1.0


def test_coin_judge_is_at_chance_within_its_ci(project, llm_server):
    build_project(project, n_features=60, methods=("m_true",))
    server = llm_server(chat_handler=coin)
    run(project, server, BenchConfig(benchmarks=("intruder",)))
    rep = build_report(project)["intruder"][0]
    assert rep["n"] == 60 and rep["chance"] == [0.2]
    # Each feature's own Wilson 95% CI holds chance: at p = 0.2 only 3+ right of 5 (P = 0.058)
    # falls outside, so about 94% of features; 85% leaves room for the luck of 60 features.
    cis = [loads(r["details"])["ci"] for r in project.query("SELECT details FROM intruder_scores")]
    assert sum(lo <= 0.2 <= hi for lo, hi in cis) >= 0.85 * 60
    # the mean over 300 rounds: chance within 0.1 (over 4 standard errors of 0.023)
    assert abs(rep["mean"] - 0.2) < 0.1 and rep["ci_high"] < 0.4


def test_garbage_judge_gives_parse_failures(bench_project, llm_server):
    server = llm_server(chat_handler=lambda req: "Probably the third or the fourth one.")
    summary, _ = run(bench_project, server, BenchConfig(benchmarks=("intruder",)))
    rows = _rows(bench_project)
    assert all(r["value"] is None and r["n"] == 0 and r["parse_failures"] == 5 for r in rows)
    assert summary.parse_failures == 12 * 5 and summary.unscored == 12
    assert build_report(bench_project)["intruder"][0]["parse_failure_rate"] == 1.0


def test_demo_standin_answers_intruder(bench_project, llm_server):
    server = llm_server(chat_handler=lambda req: demo_judge_answer(req) or "not a judge prompt")
    run(bench_project, server, BenchConfig(benchmarks=("intruder",)))
    rows = _rows(bench_project)
    assert len(rows) == 12 and all(r["parse_failures"] == 0 for r in rows)
    assert sum(r["value"] for r in rows) / 12 > 0.8       # marked words the others share tell it


def test_parse_pick():
    assert parse_pick("3", 5) == 3 and parse_pick(" 2\n", 5) == 2 and parse_pick("Thinking...\n4", 5) == 4
    assert parse_pick("Example 5", 5) == 5
    for bad in ("6", "0", "3 or 4", "", None, "[3]"):
        assert parse_pick(bad, 5) is None


def test_cli_intruder_and_report(tmp_path, llm_server, capsys):
    from saegold.store.db import open_project
    from saegold.tui.cli import main

    db = tmp_path / "c.db"
    with open_project(db, create=True) as p:
        build_project(p, n_features=6)
    server = llm_server(chat_handler=oracle)
    assert main(["--db", str(db), "bench", "--base-url", server.base_url, "--model", "j", "--api-key-env",
                 "NO_KEY_HERE", "--benchmarks", "intruder", "--intruder-rounds", "3"]) == 0
    assert "stored 6 results (intruder 6)" in capsys.readouterr().out
    assert main(["--db", str(db), "bench", "--report"]) == 0
    out = capsys.readouterr().out
    assert "Intruder (per feature" in out and "1.000" in out


def test_intruder_separates_obscure_in_calibrate(bench_project, capsys):
    import json

    from saegold.engine.bench import intruder
    from saegold.store.judgments import append, make_event
    from saegold.tui.cli import main

    cats = {r["feature_id"]: r["category"] for r in bench_project.query("SELECT feature_id, category FROM taxonomy_scores")}
    for i, (fid, cat) in enumerate(sorted(cats.items())):
        value = 0.2 + 0.05 * (i % 3) if cat == "obscure" else 0.8 + 0.05 * (i % 3)
        intruder.write(bench_project, fid, intruder.IntruderScore(value, 5, 0, {"ci": [0.1, 0.9], "chance": 0.2}),
                       "j", 0)
        for who in ("ann1", "ann2"):
            append(bench_project, make_event(who, fid, "tier", value="obscure" if cat == "obscure" else "input"))
    seps = intruder.tier_separation(bench_project, n_boot=200)
    assert [s["auroc"] for s in seps] == [1.0, 1.0]
    assert seps[0]["rows"] == 24 and seps[0]["features"] == 12 and seps[0]["positives"] == 18
    assert seps[1]["ci_low"] == 1.0
    assert main(["--db", str(bench_project.path), "calibrate", "--json", "--bootstrap", "50"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["intruder_separation"][0]["auroc"] == 1.0
    assert main(["--db", str(bench_project.path), "calibrate", "--bootstrap", "50"]) == 0
    assert "intruder accuracy separating human tier 'obscure' vs the rest: AUROC 1.000" in capsys.readouterr().out


def test_merge_brings_intruder_results(tmp_path, llm_server):
    import shutil

    from saegold.store.db import open_project
    from saegold.store.merge import merge

    a, b = tmp_path / "a.db", tmp_path / "b.db"
    with open_project(a, create=True) as p:
        build_project(p, n_features=4)
    shutil.copy(a, b)
    with open_project(b) as p:
        run(p, llm_server(chat_handler=oracle), BenchConfig(benchmarks=("intruder",), intruder_rounds=2))
        theirs = {r["feature_id"]: r["value"] for r in p.query("SELECT feature_id, value FROM intruder_scores")}
    with open_project(a) as p:
        merge(p, b)
        ours = {r["feature_id"]: r["value"] for r in p.query("SELECT feature_id, value FROM intruder_scores")}
        merge(p, b)                      # again: nothing doubled
        assert p.scalar("SELECT COUNT(*) FROM intruder_scores") == 4
    assert ours == theirs and len(ours) == 4
