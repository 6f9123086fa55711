"""``saegold bench`` end to end: scoring, re-run, dry run, report (text and JSON), bad input."""
from __future__ import annotations

import json

import pytest

from saegold.engine.bench.demo_judge import demo_embed, demo_judge_answer
from saegold.store.labels import add_label
from saegold.tui.cli import main

from benchkit import build_project


@pytest.fixture
def cli(tmp_path, llm_server):
    from saegold.store.db import open_project

    db = tmp_path / "cli.db"
    with open_project(db, create=True) as p:
        build_project(p, n_features=8)
    server = llm_server(chat_handler=lambda req: demo_judge_answer(req) or "?", embed_handler=demo_embed)

    def call(*args: str) -> int:
        return main(["--db", str(db), "bench", *args])

    call.db, call.server = db, server
    call.endpoint = ["--base-url", server.base_url, "--model", "judge-x", "--api-key-env", "BENCH_TEST_NO_KEY"]
    return call


def test_score_rerun_and_report(cli, capsys):
    assert cli(*cli.endpoint, "--embedding-model", "emb-x") == 0
    out = capsys.readouterr().out
    assert "stored 96 results (detection 32, fuzzing 32, embedding 32) for 16 labels, seed 0" in out
    sent = cli.server.count
    assert sent > 0 and f"LLM: {sent} requests sent" in out

    assert cli(*cli.endpoint, "--embedding-model", "emb-x") == 0
    out = capsys.readouterr().out
    assert cli.server.count == sent and "96 results already stored were skipped" in out

    assert cli("--report") == 0
    out = capsys.readouterr().out
    assert "m_true" in out and "m_vague" in out and "fuzzing" in out and "obscure" in out
    assert "~0" in out                               # m_vague cannot beat its shuffled control
    assert "Paired method differences" in out

    assert cli("--report", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    rows = {(r["method"], r["benchmark"]): r for r in data["overall"]}
    assert len(rows) == 6 and rows[("m_true", "detection")]["mean"] == 1.0
    assert rows[("m_true", "detection")]["judges"] == ["judge-x"]
    assert rows[("m_true", "embedding")]["judges"] == ["emb-x"]
    assert {r["category"] for r in data["by_category"]} == {"input", "output", "cross", "obscure"}
    assert len(data["method_pairs"]) == 3


def test_default_benchmarks(cli, capsys):
    assert cli(*cli.endpoint, "--features", "0") == 0      # no --embedding-model: the judged two
    assert "stored 8 results (detection 4, fuzzing 4) for 2 labels" in capsys.readouterr().out


def test_dry_run_and_subsets(cli, capsys):
    assert cli(*cli.endpoint, "--benchmarks", "detection", "--dry-run") == 0
    out = capsys.readouterr().out
    # 20 positives (default) + 20 negatives = 40 examples: 8 batches of 5 per result
    assert "dry run: 32 results to score; would send 256 requests" in out and cli.server.count == 0
    assert cli(*cli.endpoint, "--benchmarks", "detection", "--methods", "m_true", "--features", "0-2,5",
               "--source", "tiny-model/tiny-sae", "--seed", "4") == 0
    out = capsys.readouterr().out
    assert "stored 8 results (detection 8) for 4 labels, seed 4" in out
    assert {b.get("temperature") for b in cli.server.chat_bodies()} == {0}
    assert cli(*cli.endpoint, "--benchmarks", "fuzzing", "--features", "0", "--temperature", "none") == 0
    assert "temperature" not in cli.server.chat_bodies()[-1]


def test_untrusted_method_names_stay_inert(cli, capsys):
    from saegold.store.db import open_project

    with open_project(cli.db) as p, p.write() as db:
        for idx in (0, 1):
            fid = p.scalar("SELECT id FROM features WHERE idx = ?", [idx])
            add_label(db, fid, "evil\x1b[31m[bold]x", f"the word zq{idx}word", origin="import")
    assert cli(*cli.endpoint, "--benchmarks", "detection", "--methods", "evil\x1b[31m[bold]x") == 0
    capsys.readouterr()
    assert cli("--report") == 0
    out = capsys.readouterr().out
    assert "evil" in out and "\x1b" not in out and "evil\\x1b[31m[bold]x" in out


@pytest.mark.parametrize("args, message", [
    (["--benchmarks", "detection,nope"], "--benchmarks: unknown nope"),
    (["--benchmarks", "embedding"], "needs --embedding-model"),
    (["--features", "99"], "--features: index 99 is not stored in this project"),
    (["--features", "5-9"], "--features: 2 of the 5 requested indices are not stored in this project: 8, 9"),
    (["--features", "a-b"], "--features: 'a-b' is not an index or a range like 40-49"),
    (["--source", "nope/sae"], "no such source"),
    (["--positive-ranks", "9-3"], "--positive-ranks"),
    (["--json"], "--json goes with --report"),
    (["--temperature", "hot"], "--temperature: 'hot'"),
])
def test_bad_input_is_one_line(cli, capsys, args, message):
    assert cli(*cli.endpoint, *args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    from saegold.store.db import open_project
    with open_project(cli.db) as p:
        assert p.scalar("SELECT count(*) FROM bench_scores") == 0
    assert cli.server.count == 0


def test_report_on_empty_project(cli, capsys):
    assert cli("--report") == 0
    assert "no benchmark results yet" in capsys.readouterr().out


def test_default_sampler_on_a_source_without_quantile_examples_says_so(tmp_path, llm_server, capsys):
    """An old project (scored before quantile examples existed): the default sampler has no
    positives there; one clear line says why and what to do, and nothing falls back to top."""
    from saegold.store.db import open_project

    db = tmp_path / "old.db"
    with open_project(db, create=True) as p:
        build_project(p, n_features=3, n_quantile=0)
    server = llm_server(chat_handler=lambda req: demo_judge_answer(req) or "?", embed_handler=demo_embed)
    endpoint = ["--base-url", server.base_url, "--model", "judge-x", "--api-key-env", "BENCH_TEST_NO_KEY"]
    assert main(["--db", str(db), "bench", *endpoint, "--benchmarks", "detection"]) == 0
    out = capsys.readouterr().out
    lines = [x for x in out.splitlines() if "quantile examples" in x]
    assert lines == ["  12 results skipped: their feature has no quantile examples for --sampler quantiles "
                     "(scored before they existed, or imported): re-score (`saegold score --redo`, or "
                     "`saegold score --from-stored` for imports) or use --sampler top"], out
    assert "stored 0 results" in out and server.count == 0 and "lack held-out" not in out
    assert main(["--db", str(db), "bench", *endpoint, "--benchmarks", "detection", "--sampler", "top"]) == 0
    assert "stored 12 results (detection 12)" in capsys.readouterr().out
