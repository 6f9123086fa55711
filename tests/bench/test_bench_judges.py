"""Detection and fuzzing against local OpenAI-compatible servers (real openai SDK, real HTTP)."""
from __future__ import annotations

import json

import pytest

from saegold.engine.bench.demo_judge import demo_judge_answer
from saegold.engine.bench.job import BenchConfig
from saegold.engine.bench.report import build_report
from saegold.engine.llm.standin_server import Fault
from saegold.store.db import loads

from benchkit import build_project, coin_judge, garbage_judge, oracle_judge, run

JUDGED = ("detection", "fuzzing")


def _rows(project, **where):
    sql = "SELECT * FROM bench_scores"
    if where:
        sql += " WHERE " + " AND ".join(f"{k} = ?" for k in where)
    rows = project.query(sql + " ORDER BY label_id, benchmark, control", list(where.values()))
    for r in rows:
        r["details"] = loads(r["details"])
    return rows


def _report_row(report, method, benchmark):
    return next(r for r in report["overall"] if r["method"] == method and r["benchmark"] == benchmark)


def test_oracle_judge_scores_one(bench_project, llm_server):
    server = llm_server(chat_handler=oracle_judge)
    summary, usage = run(bench_project, server)
    rows = _rows(bench_project)
    assert len(rows) == 12 * 2 * 2 * 2            # features x methods x benchmarks x controls
    assert summary.written == {"detection": 48, "fuzzing": 48}
    assert all(r["value"] == 1.0 and r["n"] == 40 and r["parse_failures"] == 0 for r in rows)
    assert usage.calls == server.count == 12 * 2 * 2 * 2 * 8   # 40 examples in batches of 5
    for r in rows:
        ex = r["details"]["examples"]
        assert len(ex) == 40 and sum(e["truth"] for e in ex) == 20
        assert all(e["prediction"] == e["truth"] and e["raw"] for e in ex)
        assert r["judge_model"] == "judge" and r["seed"] == 0
    # Controls: another feature's label of the same method, on the same examples.
    for r in _rows(bench_project, control="shuffled"):
        true = _rows(bench_project, label_id=r["label_id"], benchmark=r["benchmark"], control="true")[0]
        assert r["scored_label_id"] != r["label_id"]
        scored = bench_project.query("SELECT feature_id, method FROM labels WHERE id = ?", [r["scored_label_id"]])[0]
        own = bench_project.query("SELECT feature_id, method FROM labels WHERE id = ?", [r["label_id"]])[0]
        assert scored["method"] == own["method"] and scored["feature_id"] != own["feature_id"]
        assert [e["example_id"] for e in r["details"]["examples"]] == \
               [e["example_id"] for e in true["details"]["examples"]]


def test_coin_flip_judge_is_chance_and_control_gap_contains_zero(project, llm_server):
    build_project(project, n_features=40, methods=("m_true",), n_top=15, n_neg=12)
    server = llm_server(chat_handler=coin_judge)
    run(project, server, BenchConfig(benchmarks=("detection",)))
    row = _report_row(build_report(project), "m_true", "detection")
    assert row["n"] == 40 and row["gap_n"] == 40
    assert row["ci_low"] < 0.5 < row["ci_high"]
    assert row["gap_ci_low"] < 0 < row["gap_ci_high"]
    assert 0.4 < row["mean"] < 0.6 and row["ci_high"] - row["ci_low"] < 0.2


def test_lexical_judge_separates_true_from_shuffled(bench_project, llm_server):
    """A judge that reads the label (the demo stand-in) scores true labels above their controls;
    a label that names nothing in the examples stays at chance, as does its control."""
    server = llm_server(chat_handler=lambda req: demo_judge_answer(req) or "not a judge prompt")
    run(bench_project, server)
    report = build_report(bench_project)
    for benchmark in JUDGED:
        good = _report_row(report, "m_true", benchmark)
        assert good["mean"] == 1.0 and good["shuffled_mean"] == 0.5
        assert good["gap_ci_low"] > 0
        vague = _report_row(report, "m_vague", benchmark)
        assert vague["mean"] == 0.5 and vague["gap_ci_low"] <= 0 <= vague["gap_ci_high"]
    for pair in report["method_pairs"]:          # the 2026-style paired comparison of methods
        assert (pair["method_a"], pair["method_b"], pair["n_features"]) == ("m_true", "m_vague", 12)
        assert pair["diff_mean"] == 0.5 and pair["diff_ci_low"] == 0.5
    assert {p["benchmark"] for p in report["method_pairs"]} == set(JUDGED)
    cats = {r["category"] for r in report["by_category"]}
    assert cats == {"input", "output", "cross", "obscure"}
    assert sum(r["n"] for r in report["by_category"] if r["method"] == "m_true" and r["benchmark"] == "detection") == 12


def test_garbage_judge_counts_parse_failures(bench_project, llm_server):
    server = llm_server(chat_handler=garbage_judge)
    summary, _ = run(bench_project, server)
    rows = _rows(bench_project)
    assert len(rows) == 96
    assert all(r["value"] is None and r["n"] == 0 and r["parse_failures"] == 40 for r in rows)
    assert summary.parse_failures == 96 * 40 and summary.unscored == 96
    for r in rows:
        assert {b["status"] for b in r["details"]["batches"]} == {"unparseable"}
        assert all(e["prediction"] is None and "examples 1 and 3" in e["raw"] for e in r["details"]["examples"])
    row = _report_row(build_report(bench_project), "m_true", "detection")
    assert row["n"] == 0 and row["mean"] is None and row["parse_failure_rate"] == 1.0 and row["unscored"] == 12


def test_partly_garbage_judge_is_never_scored_wrong(bench_project, llm_server):
    """Unparseable batches drop out; the parseable ones still score 1.0 with an oracle."""
    def judge(req):
        return oracle_judge(req) if "vague" not in req["messages"][-1]["content"] else "[1, 0"
    run(bench_project, llm_server(chat_handler=judge), BenchConfig(benchmarks=("detection",)))
    report = build_report(bench_project)
    vague = _report_row(report, "m_vague", "detection")
    good = _report_row(report, "m_true", "detection")
    assert vague["n"] == 0 and vague["parse_failure_rate"] == 1.0
    assert good["mean"] == 1.0 and good["parse_failure_rate"] == 0.0


def test_rerun_sends_zero_requests(bench_project, llm_server):
    server = llm_server(chat_handler=oracle_judge)
    run(bench_project, server)
    sent = server.count
    before = _rows(bench_project)
    summary, usage = run(bench_project, server)            # finished results are skipped
    assert server.count == sent and summary.jobs == 0 and summary.already_done == 96
    kept_before = bench_project.scalar("SELECT max(id) FROM superseded_results") or 0
    summary, usage = run(bench_project, server, BenchConfig(benchmarks=JUDGED, redo=True))
    assert server.count == sent                              # --redo: every answer is cached
    assert usage.cache_hits == sent and usage.calls == 0 and summary.written == {"detection": 48, "fuzzing": 48}
    after = _rows(bench_project)
    assert [(r["label_id"], r["value"], r["details"]["examples"]) for r in after] == \
           [(r["label_id"], r["value"], r["details"]["examples"]) for r in before]
    # --redo supersedes: one live result per (label, benchmark, control); each replaced row kept whole
    assert len(after) == len({(r["label_id"], r["benchmark"], r["control"]) for r in after})
    kept = {json.loads(r["row"])["id"]: (r["tbl"], r["label_id"], json.loads(r["row"]))
            for r in bench_project.query("SELECT * FROM superseded_results WHERE id > ?", [kept_before])}
    redone = [r for r in before if r["benchmark"] in JUDGED]
    assert len(kept) == len(redone) == 96
    for r in redone:
        tbl, label_id, row = kept[r["id"]]
        assert tbl == "bench_scores" and label_id == r["label_id"]
        assert {**row, "details": loads(row["details"])} == r


def test_seed_reproduces_exactly(tmp_path, llm_server):
    """Same data + same seed: the same examples, controls, prompts and scores; another seed differs."""
    from saegold.store.db import open_project

    server = llm_server(chat_handler=coin_judge)
    out, prompts = [], []
    for name, seed in (("a", 11), ("b", 11), ("c", 12)):
        with open_project(tmp_path / f"{name}.db", create=True) as p:
            build_project(p, n_features=6)
            start = server.count
            run(p, server, BenchConfig(benchmarks=JUDGED, seed=seed))
            prompts.append(sorted(json.dumps(b["messages"]) for b in server.chat_bodies()[start:]))
            out.append([(r["label_id"], r["benchmark"], r["control"], r["scored_label_id"], r["value"],
                         json.dumps(r["details"]["examples"])) for r in _rows(p)])
            assert {r["seed"] for r in _rows(p)} == {seed}
    assert out[0] == out[1] and prompts[0] == prompts[1]
    assert out[0] != out[2] and prompts[0] != prompts[2]


def test_failed_requests_store_nothing_and_rerun_completes(bench_project, llm_server):
    server = llm_server(chat_handler=oracle_judge)
    server.inject(Fault(status=500))            # no retries: one request fails for good
    summary, _ = run(bench_project, server, BenchConfig(benchmarks=("detection",)), max_retries=0)
    assert summary.failed == 1 and "500" in summary.first_error
    assert len(_rows(bench_project)) == 47
    summary, _ = run(bench_project, server, BenchConfig(benchmarks=("detection",)))
    assert summary.failed == 0 and summary.written == {"detection": 1}
    assert all(r["value"] == 1.0 for r in _rows(bench_project))


def test_interrupt_keeps_finished_results(bench_project, llm_server):
    server = llm_server(chat_handler=oracle_judge)
    seen = []

    def progress(stage, done, total):
        seen.append(done)
        if done >= 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(bench_project, server, BenchConfig(benchmarks=("detection",), workers=1), progress=progress)
    kept = _rows(bench_project)
    assert len(kept) == 5 and all(r["value"] == 1.0 for r in kept)
    summary, _ = run(bench_project, server, BenchConfig(benchmarks=("detection",)))
    assert summary.already_done == 5 and summary.written == {"detection": 43}


def test_dry_run_sends_and_stores_nothing(bench_project, llm_server):
    server = llm_server(chat_handler=oracle_judge)
    summary, usage = run(bench_project, server, BenchConfig(benchmarks=JUDGED, dry_run=True))
    assert server.count == 0 and _rows(bench_project) == []
    assert summary.jobs == 96 and usage.est_calls == 96 * 8 and usage.est_prompt_tokens > 0


def test_no_control_without_other_labels(project, llm_server):
    build_project(project, n_features=3, methods=("m_true",))
    with project.write() as db:
        from saegold.store.labels import add_label
        fid = project.scalar("SELECT id FROM features WHERE idx = 0")
        add_label(db, fid, "lonely", "a method with one label", origin="test")
    summary, _ = run(project, llm_server(chat_handler=oracle_judge), BenchConfig(benchmarks=("detection",)))
    assert summary.no_control == 1
    assert project.scalar("SELECT count(*) FROM bench_scores b JOIN labels l ON l.id = b.label_id "
                          "WHERE l.method = 'lonely'") == 1


def test_unscored_features_and_missing_negatives(project, llm_server):
    """Features without taxonomy scores report as 'unscored'; features without negatives are
    skipped (nothing stored) unless negatives come from other features."""
    build_project(project, n_features=4, categories=False, n_neg=0)
    server = llm_server(chat_handler=lambda req: demo_judge_answer(req) or "?")
    summary, _ = run(project, server, BenchConfig(benchmarks=("detection",)))
    assert summary.no_examples == 16 and not summary.written and server.count == 0
    summary, _ = run(project, server, BenchConfig(benchmarks=("detection",), negatives="other-features"))
    assert summary.written == {"detection": 16}
    report = build_report(project)
    assert {r["category"] for r in report["by_category"]} == {"unscored"}
    assert {r["method"]: r["mean"] for r in report["overall"]} == {"m_true": 1.0, "m_vague": 0.5}
    neg = [e for r in _rows(project) for e in r["details"]["examples"] if e["truth"] == 0]
    assert neg and all(e["kind"] == "top" for e in neg)


def test_results_record_their_sampler_and_never_mix(bench_project, llm_server):
    server = llm_server(chat_handler=oracle_judge)
    fids = [bench_project.scalar("SELECT id FROM features WHERE idx = ?", [i]) for i in (0, 1)]
    run(bench_project, server, BenchConfig(benchmarks=("detection",), sampler="top", feature_ids=fids))
    rows = _rows(bench_project)
    assert len(rows) == 8 and {r["details"]["selection"]["sampler"] for r in rows} == {"top"}
    assert all({e["kind"] for e in r["details"]["examples"] if e["truth"]} == {"top"} for r in rows)
    report = build_report(bench_project)
    assert {r["sampler"] for r in report["overall"]} == {"top"}
    # The default sampler does not keep the top-sampled results: it makes them again.
    summary, _ = run(bench_project, server, BenchConfig(benchmarks=("detection",), feature_ids=fids))
    assert summary.already_done == 0 and summary.written["detection"] == 8
    rows = _rows(bench_project)
    assert {r["details"]["selection"]["sampler"] for r in rows} == {"quantiles"}
    assert all({e["kind"] for e in r["details"]["examples"] if e["truth"]} == {"quantile"} for r in rows)
    summary, _ = run(bench_project, server, BenchConfig(benchmarks=("detection",), feature_ids=fids))
    assert summary.already_done == 8
    # Rows from before samplers existed read as 'top' and are reported apart.
    with bench_project.write() as db:
        db.execute("UPDATE bench_scores SET details = json_remove(details, '$.selection.sampler') "
                   "WHERE id = (SELECT MIN(id) FROM bench_scores)")
    assert sorted({r["sampler"] for r in build_report(bench_project)["overall"]}) == ["quantiles", "top"]


def test_other_feature_negatives_without_a_model_are_marked_unverified(bench_project, llm_server):
    server = llm_server(chat_handler=oracle_judge)
    fids = [bench_project.scalar("SELECT id FROM features WHERE idx = ?", [i]) for i in (0, 1, 2)]
    run(bench_project, server, BenchConfig(benchmarks=("detection",), negatives="other-features", feature_ids=fids))
    rows = _rows(bench_project)
    assert rows and all(r["details"]["negatives_verified"] is False for r in rows)
    assert {n for r in build_report(bench_project)["overall"] for n in r["negatives"]} == \
        {"other-features (unverified)"}
    assert sum(r["unverified"] for r in build_report(bench_project)["overall"]) == 6   # 3 features x 2 labels
    # Results from before the flag existed, on other-features negatives: unverified too
    with bench_project.write() as db:
        db.execute("UPDATE bench_scores SET details = json_remove(details, '$.negatives_verified')")
    assert sum(r["unverified"] for r in build_report(bench_project)["overall"]) == 6
    from saegold.store.export import records
    exported = list(records(bench_project, "bench"))
    assert exported and {r["negatives_verified"] for r in exported} == {0}
