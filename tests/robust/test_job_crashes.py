"""kill -9 of the score job and the label job mid-run: a re-run finishes the work without
redoing what was finished or duplicating anything.

The score job runs on the SCORING engineer's planted model and SAE (built in code); the
label job talks real HTTP to the LABELS engineer's local stand-in server.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from robust_harness import REPO

from saegold.store.db import open_project
from saegold.store.features import get_or_create_source, put_examples, upsert_feature
from saegold.store.labels import add_label

N_LABEL_FEATURES = 30


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OPENAI_API_KEY": "sk-test-not-a-key"}


def _cli(db: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "saegold.tui.cli", "--db", str(db), *args]


def _rows(db: Path, sql: str) -> list[dict]:
    with open_project(db) as p:
        return p.query(sql)


def _kill_when(cmd: list[str], db: Path, ready_sql: str, low: int, high: int,
               timeout: float = 300) -> tuple[bool, int]:
    """Start ``cmd``; SIGKILL it once ``ready_sql`` counts in [low, high).  Returns
    (killed mid-run, the count seen at the kill)."""
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    seen = 0
    try:
        while proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError("the job did not get going in time")
            try:
                with open_project(db, readonly=True) as p:
                    seen = p.scalar(ready_sql) or 0
            except Exception:  # noqa: BLE001 - the job may be migrating/creating the file
                seen = 0
            if low <= seen < high:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return True, seen
            time.sleep(0.003)
        out, err = proc.communicate()
        assert proc.returncode == 0, err[-3000:]
        return False, seen
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _run(cmd: list[str]) -> str:
    r = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


# -- label job ----------------------------------------------------------------------------------

def _label_project(path: Path) -> Path:
    with open_project(path, create=True) as p, p.write() as db:
        sid = get_or_create_source(db, "tiny", "0-res")
        for i in range(N_LABEL_FEATURES):
            fid = upsert_feature(db, sid, i, density=0.01, max_act=3.0)
            put_examples(db, fid, "top", [{"tokens": ["the", f"w{i}x", "ran"], "acts": [0.0, 3.0, 0.5]}
                                          for _ in range(5)], origin="scored")
    return path


def test_label_job_killed_mid_run_resumes_without_redoing(tmp_path, llm_server):
    asked: list[str] = []
    lock = threading.Lock()

    def answer(req: dict) -> str:
        text = " ".join(str(m.get("content")) for m in req["messages"])
        word = re.search(r"w\d+x", text).group(0)
        with lock:
            asked.append(word)
        time.sleep(0.05)  # a slow endpoint: the kill lands while requests are in flight
        return f"[EXPLANATION]: the word {word}"

    server = llm_server(chat_handler=answer)
    db = _label_project(tmp_path / "label.db")
    cmd = _cli(db, "label", "--methods", "eleuther_acts_top5", "--base-url", server.base_url,
               "--model", "standin", "--concurrency", "2")
    killed, seen = _kill_when(cmd, db, "SELECT count(*) FROM labels", 3, N_LABEL_FEATURES - 3)
    assert killed, "the label job finished before it could be killed"
    at_kill = {r["feature_id"]: r for r in _rows(db, "SELECT * FROM labels")}
    cached = {r["key"] for r in _rows(db, "SELECT key FROM llm_cache")}
    cached_unstored = cached - {r["prompt_hash"] for r in at_kill.values()}
    words_before = {f"w{r['feature_id'] - 1}x" for r in at_kill.values()}
    with lock:
        n_first = len(asked)

    out = _run(cmd)
    with lock:
        rerun = asked[n_first:]
    after = _rows(db, "SELECT * FROM labels")
    # Every feature labeled once, none twice, and what was finished before the kill is untouched.
    assert len(after) == N_LABEL_FEATURES
    assert len({r["feature_id"] for r in after}) == N_LABEL_FEATURES
    assert all(r["status"] == "ok" for r in after)
    for r in after:
        if r["feature_id"] in at_kill:
            assert r == at_kill[r["feature_id"]]
    # The re-run asked only for what was missing: nothing labeled before the kill, and not the
    # answers that were already cached when the process died.
    assert not set(rerun) & words_before
    assert len(rerun) == N_LABEL_FEATURES - len(at_kill) - len(cached_unstored)
    assert len(rerun) == len(set(rerun))
    assert f"{len(at_kill)} already labeled" in out


# -- bench job ----------------------------------------------------------------------------------

N_BENCH_FEATURES = 12


def _messages_key(obj) -> str | None:
    """Canonical JSON of the chat messages found anywhere in a request (server body or cache row)."""
    if isinstance(obj, list) and obj and all(isinstance(m, dict) and "role" in m for m in obj):
        return json.dumps(obj, sort_keys=True, ensure_ascii=False)
    if isinstance(obj, dict):
        for v in obj.values():
            found = _messages_key(v)
            if found:
                return found
    if isinstance(obj, list):
        for v in obj:
            found = _messages_key(v)
            if found:
                return found
    return None


def _bench_project(path: Path) -> Path:
    with open_project(path, create=True) as p, p.write() as db:
        sid = get_or_create_source(db, "tiny", "0-res")
        for i in range(N_BENCH_FEATURES):
            fid = upsert_feature(db, sid, i, density=0.01, max_act=3.0)
            put_examples(db, fid, "top", [{"tokens": ["the", f"w{i}x", f"r{r}"], "acts": [0.0, 3.0 - r / 10, 0.1]}
                                          for r in range(15)], origin="scored")
            put_examples(db, fid, "negative", [{"tokens": ["nothing", f"n{r}"], "acts": [0.0, 0.0]}
                                               for r in range(10)], origin="scored")
            add_label(db, fid, "m", f"the word w{i}x", origin="saegold")
    return path


def test_bench_job_killed_mid_run_resumes_without_redoing(tmp_path, llm_server):
    answered: list[str] = []  # requests, in order of arrival
    lock = threading.Lock()

    def judge(req: dict) -> str:
        n = int(re.search(r"exactly (\d+) numbers", req["messages"][-1]["content"]).group(1))
        with lock:  # recorded on arrival: what was in flight at the kill belongs to the first run
            answered.append(_messages_key(req["messages"]))
        time.sleep(0.03)
        return json.dumps([1] * n)

    server = llm_server(chat_handler=judge)
    db = _bench_project(tmp_path / "bench.db")
    cmd = _cli(db, "bench", "--benchmarks", "detection", "--sampler", "top", "--base-url", server.base_url,
               "--model", "judge", "--concurrency", "2")
    total = 2 * N_BENCH_FEATURES  # true + shuffled control per label
    killed, seen = _kill_when(cmd, db, "SELECT count(*) FROM bench_scores", 3, total - 3)
    assert killed, "the bench job finished before it could be killed"
    at_kill = {(r["label_id"], r["control"]): r for r in _rows(db, "SELECT * FROM bench_scores")}
    cached = {_messages_key(json.loads(r["request"])) for r in _rows(db, "SELECT request FROM llm_cache")}
    with lock:
        n_first = len(answered)
    _run(cmd)
    with lock:
        rerun = answered[n_first:]
    after = _rows(db, "SELECT * FROM bench_scores")
    assert len(after) == total
    assert len({(r["label_id"], r["benchmark"], r["control"]) for r in after}) == total
    for r in after:
        key = (r["label_id"], r["control"])
        if key in at_kill:
            assert r == at_kill[key]  # finished before the kill: not redone
    assert rerun, "the re-run had work left"
    assert not set(rerun) & cached  # nothing answered (and cached) before the kill was asked again
    assert len(rerun) == len(set(rerun))


# -- score job ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    from saegold.engine.planted import build_planted, demo_corpus_path

    d = tmp_path_factory.mktemp("planted")
    model_dir, sae_dir, expected = build_planted(d)
    return model_dir, sae_dir, demo_corpus_path(), len(expected)


def _score_state(db: Path) -> dict[int, dict]:
    rows = _rows(db, "SELECT f.idx, f.density, f.max_act, t.input_score, t.output_score, t.category, "
                     "t.details, t.created_at FROM features f JOIN taxonomy_scores t ON t.feature_id = f.id")
    return {r["idx"]: r for r in rows}


def _counts(db: Path) -> dict[str, int]:
    return {t: _rows(db, f"SELECT count(*) AS n FROM {t}")[0]["n"]
            for t in ("sources", "features", "examples", "logit_tokens", "taxonomy_scores")}


@pytest.mark.slow
def test_score_job_killed_mid_run_resumes_without_redoing(tmp_path, planted):
    model_dir, sae_dir, corpus, _ = planted
    db = tmp_path / "score.db"
    open_project(db, create=True).close()
    cmd = _cli(db, "score", "--model", str(model_dir), "--sae", str(sae_dir), "--corpus", str(corpus),
               "--feature-batch", "4", "--max-contexts", "300", "--top-k", "10", "--negatives", "5",
               "--quantile-examples", "8", "--ctx-len", "32", "--device", "cpu")
    d_sae = None

    # 1. Killed while writing output scores (one chunk of 4 features per transaction).
    killed, seen = _kill_when(cmd, db, "SELECT count(*) FROM taxonomy_scores WHERE output_score IS NOT NULL",
                              8, 10_000)
    assert killed, "the score job finished before it could be killed"
    d_sae = _rows(db, "SELECT d_sae FROM sources")[0]["d_sae"]
    assert seen < d_sae, "killed too late to test anything"
    first = _score_state(db)
    assert len(first) % 4 == 0  # whole chunks only: a chunk is one transaction

    # 2. Re-run; kill again if it is caught while writing input scores.
    killed2, _ = _kill_when(cmd, db, "SELECT count(*) FROM taxonomy_scores WHERE input_score IS NOT NULL",
                            1, d_sae)
    second = _score_state(db)
    for idx, row in first.items():  # output scores finished before the first kill: not redone
        assert second[idx]["output_score"] == row["output_score"]
        assert (_loads(second[idx]["details"])["output"] == _loads(row["details"])["output"])

    # 3. Finish (or confirm finished): nothing already done is computed again.
    out = _run(cmd)
    third = _score_state(db)
    assert len(third) == d_sae
    m = re.search(r"output scores:\s+(\d+) computed, (\d+) already done", out)
    assert m and int(m.group(1)) == 0 and int(m.group(2)) == d_sae, out
    m = re.search(r"input scores:\s+(\d+) computed, (\d+) already done", out)
    done_inputs = sum(r["input_score"] is not None for r in second.values())
    assert m and int(m.group(2)) == done_inputs and int(m.group(1)) == d_sae - done_inputs, out
    for idx, row in second.items():
        if row["input_score"] is not None:  # finished before the second kill: untouched since
            assert third[idx] == row
    # Nothing duplicated: one source, one row per feature, bounded example and token lists.
    counts = _counts(db)
    assert counts["sources"] == 1 and counts["features"] == d_sae == counts["taxonomy_scores"]
    per = _rows(db, "SELECT feature_id, kind, count(*) AS n, max(rank) AS top FROM examples "
                    "GROUP BY feature_id, kind")
    assert all(r["n"] == r["top"] + 1 for r in per)  # ranks 0..n-1, no leftovers
    # negatives: 5 from the scoring pass + up to 5 hard + 5 other-feature ones (verified by default)
    assert all(r["n"] <= {"top": 10, "negative": 15, "quantile": 8}[r["kind"]] for r in per)
    print(f"score job: first kill after {seen} output scores, second kill {'hit' if killed2 else 'missed'}")


def _loads(text):
    import json

    return json.loads(text) if text else {}
