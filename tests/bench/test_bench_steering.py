"""The steering benchmark (engine.bench.steering) against local judges over real HTTP: a judge
that follows the label, a coin, a garbage answerer, the planted model end to end, dry runs."""
from __future__ import annotations

import hashlib
import re

import pytest

from saegold.engine.bench.job import BenchConfig
from saegold.engine.bench.report import build_report
from saegold.engine.bench.steering import LABEL_PREFIX, SET_PREFIX, STEERING_SYSTEM, parse_choice
from saegold.store.db import loads
from saegold.store.features import get_or_create_source, upsert_feature
from saegold.store.labels import add_label
from saegold.store.steering import SteeredRow, replace_feature

from benchkit import garbage_judge, run

TARGETS = (0.25, 0.5)
STEER = BenchConfig(benchmarks=("steering",))


def _sets(request: dict) -> tuple[str, list[str]]:
    """(label, the text of each set) of a steering judge request."""
    assert request["messages"][0]["content"] == STEERING_SYSTEM
    user = request["messages"][-1]["content"]
    label = next(ln[len(LABEL_PREFIX):] for ln in user.splitlines() if ln.startswith(LABEL_PREFIX))
    sets: list[str] = []
    for ln in user.splitlines():
        if ln.startswith(SET_PREFIX):
            sets.append("")
        elif ln.startswith("- ") and sets:
            sets[-1] += ln + "\n"
    return label, sets


def word_judge(request: dict) -> str:
    """Picks the set that says the label's quoted word most often (set 1 on a tie)."""
    label, sets = _sets(request)
    m = re.search(r'"([^"]+)"', label)
    word = m.group(1) if m else label.split()[-1]
    counts = [len(re.findall(r"\b" + re.escape(word) + r"\b", s)) for s in sets]
    return str(1 + max(range(len(counts)), key=lambda i: (counts[i], -i)))


def coin_judge(request: dict) -> str:
    key = request["messages"][-1]["content"].encode()
    return str(1 + hashlib.sha256(key).digest()[0] % 3)


def _steered_project(project, n: int = 45) -> None:
    """``n`` features; feature f's steered continuations say ``zq{f}word`` (every third feature's
    do not: it is not steerable, its sets look like anyone's).  m_true labels name the word."""
    with project.write() as db:
        sid = get_or_create_source(db, "tiny-model", "tiny-sae")
        for f in range(n):
            fid = upsert_feature(db, sid, f)
            said = f"zq{f}word" if f % 3 else "the"
            rows = [SteeredRow(fid, t, 1.0 + f, t, True,
                               [{"prompt": p, "text": f" {said} and {said} again", "token_ids": [1, 2]}
                                for p in ("I think", "We")], {}) for t in TARGETS]
            replace_feature(db, fid, rows)
            add_label(db, fid, "m_true", f'the word "zq{f}word"', origin="test")


def _rows(project, **where):
    sql = "SELECT * FROM bench_scores WHERE benchmark = 'steering'"
    for k in where:
        sql += f" AND {k} = ?"
    rows = project.query(sql + " ORDER BY label_id, control", list(where.values()))
    for r in rows:
        r["details"] = loads(r["details"])
    return rows


def test_parse_choice_is_strict():
    for ok, want in (("2", 2), (" 3.", 3), ("[1]", 1), ("Set 2", 2), ("```\n3\n```", 3), ("thinking...\n2", 2)):
        assert parse_choice(ok) == want, ok
    for bad in ("", None, "4", "0", "1 or 2", "the second set", "2, 3", "set two"):
        assert parse_choice(bad) is None, bad


def test_a_judge_that_follows_the_label_finds_the_feature_and_the_control_is_chance(project, llm_server):
    _steered_project(project)
    server = llm_server(chat_handler=word_judge)
    summary, usage = run(project, server, STEER)
    assert summary.written["steering"] == 45 * 2 and summary.no_steering == 0
    # One request per (label, control, target); identical ones (unsteerable features' sets all
    # read alike) are answered from the cache.
    assert usage.total.calls == server.count and server.count + usage.total.cache_hits == 45 * 2 * 2
    truth_pos = []
    for r in _rows(project, control="true"):
        ex = r["details"]["examples"]
        assert [e["target_kl"] for e in ex] == list(TARGETS) and r["n"] == 2 and r["parse_failures"] == 0
        f = project.scalar("SELECT f.idx FROM labels l JOIN features f ON f.id = l.feature_id WHERE l.id = ?",
                           [r["label_id"]])
        own = project.scalar("SELECT feature_id FROM labels WHERE id = ?", [r["label_id"]])
        for e in ex:
            assert len(set(e["feature_ids"])) == 3 and e["feature_ids"][e["truth"] - 1] == own
            truth_pos.append(e["truth"])
        if f % 3:
            assert r["value"] == 1.0
        # The shuffled control judges another feature's label on the same triples.
        sh = _rows(project, control="shuffled", label_id=r["label_id"])[0]
        assert [e["feature_ids"] for e in sh["details"]["examples"]] == [e["feature_ids"] for e in ex]
        ctrl_feature = project.scalar("SELECT feature_id FROM labels WHERE id = ?", [sh["scored_label_id"]])
        assert ctrl_feature != own and all(ctrl_feature not in e["feature_ids"] for e in ex)
    # The feature's own set is shown in every position (seeded order).
    assert {1, 2, 3} <= set(truth_pos) and max(truth_pos.count(i) for i in (1, 2, 3)) < 0.6 * len(truth_pos)
    rep = build_report(project, n_resamples=999)
    row = next(r for r in rep["overall"] if r["benchmark"] == "steering")
    assert row["chance"] == pytest.approx(1 / 3)
    assert row["mean"] > 0.7 and row["gap_ci_low"] > 0
    assert row["shuffled_ci_low"] <= 1 / 3 <= row["shuffled_ci_high"]
    # A re-run sends nothing and stores nothing new.
    before = server.count
    summary, _ = run(project, server, STEER)
    assert summary.already_done == 90 and server.count == before


def test_a_coin_judge_is_chance_with_a_gap_whose_ci_contains_zero(project, llm_server):
    _steered_project(project, n=60)
    run(project, llm_server(chat_handler=coin_judge), STEER)
    row = next(r for r in build_report(project, n_resamples=1999)["overall"] if r["benchmark"] == "steering")
    assert row["n"] == 60
    assert row["ci_low"] <= 1 / 3 <= row["ci_high"]
    assert row["gap_ci_low"] <= 0 <= row["gap_ci_high"]


def test_a_garbage_judge_gives_parse_failures_never_wrong_answers(project, llm_server):
    _steered_project(project, n=6)
    summary, _ = run(project, llm_server(chat_handler=garbage_judge), STEER)
    rows = _rows(project)
    assert len(rows) == 12 and summary.parse_failures == 12 * 2
    assert all(r["value"] is None and r["n"] == 0 and r["parse_failures"] == 2 for r in rows)
    assert all(e["status"] == "unparseable" and e["prediction"] is None for r in rows for e in r["details"]["examples"])
    row = next(r for r in build_report(project, n_resamples=99)["overall"] if r["benchmark"] == "steering")
    assert row["parse_failure_rate"] == 1.0 and row["mean"] is None


def test_dry_run_counts_requests_and_stores_nothing(project, llm_server):
    _steered_project(project, n=6)
    server = llm_server(chat_handler=coin_judge)
    summary, usage = run(project, server, BenchConfig(benchmarks=("steering",), dry_run=True))
    assert server.count == 0 and not _rows(project)
    assert usage.total.est_calls == 6 * 2 * 2 and usage.total.est_prompt_tokens > 0


def test_features_without_steering_are_counted_not_judged(project, llm_server):
    _steered_project(project, n=6)
    with project.write() as db:
        fid = upsert_feature(db, get_or_create_source(db, "tiny-model", "tiny-sae"), 99)
        add_label(db, fid, "m_true", 'the word "zq99word"', origin="test")
    summary, _ = run(project, llm_server(chat_handler=coin_judge), STEER)
    assert summary.no_steering == 2 and summary.written["steering"] == 12


def test_planted_output_features_are_found_and_input_ones_are_chance(tmp_path, llm_server):
    """The planted model steered by the real score job; labels name each planted word."""
    from saegold.engine.planted import CROSS_WORDS, INPUT_WORDS, OUTPUT_WORDS, STEERING_PROMPTS, STEERING_TARGETS, \
        build_planted
    from saegold.engine.scoring.job import score
    from saegold.store import settings
    from saegold.store.db import open_project

    model_dir, sae_dir, expected = build_planted(tmp_path / "planted")
    words = dict(zip(range(0, 6), CROSS_WORDS)) | dict(zip(range(6, 12), INPUT_WORDS)) \
        | dict(zip(range(12, 18), OUTPUT_WORDS))
    with open_project(tmp_path / "p.db", create=True) as project:
        settings.set(project, "steering_targets", STEERING_TARGETS)
        settings.set(project, "steering_prompts", STEERING_PROMPTS)
        score(project, model=str(model_dir), sae=str(sae_dir), features="0-17", device="cpu",
              continuation_tokens=0)
        with project.write() as db:
            for j, w in words.items():
                fid = db.execute("SELECT id FROM features WHERE idx = ?", [j]).fetchone()[0]
                add_label(db, fid, "m_true", f'the word "{w}"', origin="test")
        run(project, llm_server(chat_handler=word_judge), STEER)
        got = {r["idx"]: r["value"] for r in project.query(
            "SELECT f.idx, b.value FROM bench_scores b JOIN labels l ON l.id = b.label_id "
            "JOIN features f ON f.id = l.feature_id WHERE b.control = 'true'")}
    out = [got[j] for j in words if expected[j] in ("output", "cross")]
    inp = [got[j] for j in words if expected[j] == "input"]
    assert sum(out) / len(out) >= 0.9, out
    # 6 features x 2 targets: a chance rate of 1/3 gives 12 Bernoulli(1/3) picks, so a mean at or
    # below 0.75 (9 of 12) holds with probability > 0.999; an informative judge would be near 1.
    assert sum(inp) / len(inp) <= 0.75, inp
