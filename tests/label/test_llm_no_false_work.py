"""The LLM client never reports work it did not do (issue 12.8): null content, huge answers,
an impossible URL, silent outages, and a cache keyed on the endpoint's address."""
from __future__ import annotations

import asyncio
import hashlib
import json
import time

import pytest
from label_builders import add_feature, word_examples

from saegold.engine.labeling.job import LabelOptions, run_label_job
from saegold.engine.llm.cache import request_key
from saegold.engine.llm.client import MAX_REPLY_CHARS, LLMClient
from saegold.engine.llm.errors import LLMError
from saegold.engine.llm.standin_server import CHAT_PATH, Fault

MSG = [{"role": "user", "content": "name this feature"}]


def client_for(project, base_url, **kw) -> LLMClient:
    kw.setdefault("backoff_base", 0.01)
    kw.setdefault("timeout", 5.0)
    return LLMClient(project, base_url=base_url, model="m", **kw)


def run_label(project, client, **opts):
    async def go():
        try:
            return await run_label_job(project, client, LabelOptions(methods=["eleuther_acts_top5"], **opts))
        finally:
            await client.aclose()
    return asyncio.run(go())


def test_null_content_is_an_unusable_answer_never_cached(project, llm_server):
    for i in range(3):
        add_feature(project, i, category="input", examples=word_examples(f"w{i}"))
    nulls = {"left": 3}  # the first three answers have no content

    def answer(req):
        if nulls["left"] > 0:
            nulls["left"] -= 1
            return None
        return "[EXPLANATION]: a word"

    server = llm_server(answer)
    report = run_label(project, client_for(project, server.base_url, concurrency=1))
    failed = project.query("SELECT * FROM labels WHERE status = 'failed'")
    ok = project.query("SELECT * FROM labels WHERE status = 'ok'")
    # 3 null answers: stored as failed attempts, asked again; every feature ends labeled.
    assert len(failed) == 3 and all("no text" in r["error"] for r in failed)
    assert report.failed_attempts == 3 and report.labeled == 3 and len(ok) == 3
    assert server.count == 6
    # Nothing null was cached: each cached answer has text.
    for row in project.query("SELECT response FROM llm_cache"):
        assert json.loads(row["response"])["choices"][0]["message"]["content"]


def test_only_null_answers_leave_the_pair_failed_and_a_rerun_asks_again(project, llm_server):
    add_feature(project, 0, category="input", examples=word_examples("dog"))
    server = llm_server(lambda req: None)
    report = run_label(project, client_for(project, server.base_url), attempts=2)
    assert report.labeled == 0 and report.failed == 1 and report.unfinished == 1
    assert project.scalar("SELECT count(*) FROM labels WHERE status = 'ok'") == 0
    assert project.scalar("SELECT count(*) FROM llm_cache") == 0
    server.chat_handler = lambda req: "[EXPLANATION]: dogs"
    again = run_label(project, client_for(project, server.base_url), attempts=2)
    assert again.labeled == 1 and server.count == 3


def test_a_huge_answer_is_cut_refused_and_never_echoed_whole(project, llm_server):
    add_feature(project, 0, category="input", examples=word_examples("dog"))
    huge = "blah " * 1_000_000  # 5 MB without the tag
    replies = iter([huge, "[EXPLANATION]: dogs"])
    server = llm_server(lambda req: next(replies))
    report = run_label(project, client_for(project, server.base_url))
    assert report.labeled == 1 and report.failed_attempts == 1
    bad = project.query("SELECT * FROM labels WHERE status = 'failed'")[0]
    assert len(bad["raw_response"]) == MAX_REPLY_CHARS and "over the limit" in bad["error"]
    repair = server.chat_bodies()[1]
    assert len(json.dumps(repair)) < 10_000, "the repair request must not carry the huge answer"
    assert all(b["max_tokens"] == 1024 for b in server.chat_bodies())
    assert project.scalar("SELECT max(length(response)) FROM llm_cache") < 10_000
    assert project.path.stat().st_size < 2_000_000


@pytest.mark.parametrize("url", ["http://127.0.0.1:180132/v1", "http://127.0.0.1:0/v1", "http://:80/v1"])
def test_an_impossible_url_is_one_error(project, url):
    with pytest.raises(LLMError, match="port|host"):
        LLMClient(project, base_url=url, model="m")


def test_an_impossible_url_on_the_command_line(tmp_path, capsys):
    from saegold.tui.cli import main

    db = tmp_path / "p.db"
    assert main(["--db", str(db), "init"]) == 0
    capsys.readouterr()
    for cmd in (["label", "--methods", "eleuther_acts_top5"], ["bench"]):
        rc = main(["--db", str(db), *cmd, "--base-url", "http://127.0.0.1:180132/v1", "--model", "m"])
        out, err = capsys.readouterr()
        assert rc == 2, err
        assert err.count("\n") == 1 and "port is not a number" in err and "Traceback" not in err


def test_waiting_out_a_backoff_is_told_and_frees_the_slot(project, llm_server):
    """One request waits 1.5 s on a Retry-After; with one slot, the other two go on meanwhile."""
    server = llm_server(lambda req: "[EXPLANATION]: ok")
    server.inject(Fault(status=429, retry_after=1.5))
    notes: list[str] = []
    client = client_for(project, server.base_url, concurrency=1, notify=notes.append)

    async def go():
        try:
            return await asyncio.gather(*(client.chat([{"role": "user", "content": f"q{i}"}])
                                          for i in range(3)))
        finally:
            await client.aclose()

    asyncio.run(go())
    assert server.count == 4
    # The two other requests were answered while the first waited (slot released).
    at = [r.at for r in server.requests]
    assert at[1] - at[0] < 1.0 and at[2] - at[0] < 1.0
    waits = [n for n in notes if "HTTP 429" in n]
    assert len(waits) == 1 and "retrying in 1.5 s" in waits[0]


def test_backoff_lines_reach_stderr_when_not_a_terminal(tmp_path, llm_server, capsys):
    from label_builders import add_feature as add

    from saegold.store.db import open_project
    from saegold.tui.cli import main

    db = tmp_path / "p.db"
    with open_project(db, create=True) as p:
        add(p, 0, category="input", examples=word_examples("dog"))
    server = llm_server(lambda req: "[EXPLANATION]: dogs")
    server.inject(Fault(status=429, retry_after=0.2))
    rc = main(["--db", str(db), "label", "--methods", "eleuther_acts_top5", "--base-url", server.base_url,
               "--model", "m", "--api-key-env", "SAEGOLD_NO_SUCH_KEY"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    lines = err.strip().splitlines()
    assert any("$SAEGOLD_NO_SUCH_KEY is not set" in ln and "without an API key" in ln for ln in lines)
    assert any("HTTP 429" in ln and "retrying in 0.2 s" in ln for ln in lines)
    assert "HTTP 429" not in out


def test_cache_is_keyed_on_the_request_not_the_address(project, llm_server):
    server = llm_server(lambda req: "[EXPLANATION]: x")
    asyncio.run(_chat(client_for(project, server.base_url), temperature=0.0))
    for base in (f"http://localhost:{server.port}/v1", f"http://127.0.0.1:{server.port}/v1/"):
        hit = asyncio.run(_chat(client_for(project, base), temperature=0.0))
        assert hit.cached
    assert server.count == 1
    row = project.query("SELECT endpoint FROM llm_cache")[0]
    assert row["endpoint"] == server.base_url  # the endpoint stays as provenance
    # What determines the answer still tells requests apart.
    asyncio.run(_chat(client_for(project, server.base_url), temperature=0.7))
    other = LLMClient(project, base_url=server.base_url, model="another")
    asyncio.run(_chat(other, temperature=0.0))
    assert server.count == 3


def test_a_length_limit_is_checked_on_a_hit_not_keyed(project, llm_server):
    server = llm_server(lambda req: "[EXPLANATION]: short")
    asyncio.run(_chat(client_for(project, server.base_url)))                   # no limit sent
    assert asyncio.run(_chat(client_for(project, server.base_url), max_tokens=100)).cached
    # An answer longer than the new limit is not what this request would get: asked again.
    assert not asyncio.run(_chat(client_for(project, server.base_url), max_tokens=1)).cached
    assert server.count == 2


def test_old_cache_rows_are_re_keyed_by_the_migration(tmp_path):
    """A project made before the re-keying: its rows (keyed with the endpoint) are found under
    the new key, and two endpoints' copies of one request become one row (the newest)."""
    import sqlite3

    from saegold.store.db import open_project

    path = tmp_path / "old.db"
    open_project(path, create=True).close()
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM _sqlite_migrations WHERE name = 'm004_llm_cache_keys'")

    def old_key(endpoint, model, kind, payload, params):
        canon = json.dumps({"endpoint": endpoint, "model": model, "kind": kind, "payload": payload,
                            "params": params}, sort_keys=True, ensure_ascii=False,
                           separators=(",", ":"), default=str)
        return hashlib.sha256(canon.encode()).hexdigest()

    def answer(text):
        return json.dumps({"choices": [{"message": {"content": text}, "finish_reason": "stop"}]})

    rows = [("http://127.0.0.1:1/v1", "chat", {"messages": MSG, "params": {"temperature": 0.0}},
             MSG, {"temperature": 0.0}, answer("old"), "2026-01-01"),
            ("http://localhost:2/v1", "chat", {"messages": MSG, "params": {"temperature": 0.0}},
             MSG, {"temperature": 0.0}, answer("newer"), "2026-02-01"),
            ("http://127.0.0.1:1/v1", "embedding", {"input": "dogs"}, "dogs", {},
             json.dumps({"embedding": [1.0, 0.0]}), "2026-01-01")]
    for endpoint, kind, request, payload, params, response, at in rows:
        conn.execute("INSERT INTO llm_cache VALUES (?, ?, ?, ?, ?, 1, 1, ?)",
                     [old_key(endpoint, "m", kind, payload, params), endpoint, "m", json.dumps(request),
                      response, at])
    conn.commit()
    conn.close()
    with open_project(path) as p:
        keys = {r["key"]: r for r in p.query("SELECT * FROM llm_cache")}
        assert len(keys) == 2
        chat = keys[request_key("m", "chat", MSG, {"temperature": 0.0, "max_tokens": 50})]
        assert json.loads(chat["response"])["choices"][0]["message"]["content"] == "newer"
        assert request_key("m", "embedding", "dogs", {}) in keys


def test_an_unreachable_endpoint_is_one_line_on_stderr_and_writes_nothing(tmp_path, capsys):
    import socket

    from label_builders import add_feature as add

    from saegold.store.db import open_project
    from saegold.tui.cli import main

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = tmp_path / "p.db"
    with open_project(db, create=True) as p:
        for i in range(5):
            add(p, i, category="input", examples=word_examples(f"w{i}"))
        before = p.scalar("SELECT count(*) FROM labels"), p.scalar("SELECT count(*) FROM llm_cache")
    started = time.monotonic()
    rc = main(["--db", str(db), "label", "--methods", "eleuther_acts_top5", "--base-url",
               f"http://127.0.0.1:{port}/v1", "--model", "m", "--max-retries", "1"])
    out, err = capsys.readouterr()
    assert rc == 2, err
    errors = [ln for ln in err.splitlines() if ln.startswith("saegold: error: ")]
    assert len(errors) == 1 and err.splitlines()[-1] == errors[0]
    assert f"cannot reach http://127.0.0.1:{port}/v1" in errors[0]
    assert "error" not in out
    with open_project(db) as p:
        assert (p.scalar("SELECT count(*) FROM labels"), p.scalar("SELECT count(*) FROM llm_cache")) == before
    assert time.monotonic() - started < 60


async def _chat(client, **params):
    try:
        return await client.chat(MSG, **params)
    finally:
        await client.aclose()


def test_a_null_answer_cached_by_an_older_version_is_not_a_label(project, llm_server):
    """Old versions cached `content: null` as an answer, so every run 'labeled' it again."""
    add_feature(project, 0, category="input", examples=word_examples("dog"))
    server = llm_server(lambda req: "[EXPLANATION]: dogs")
    client = client_for(project, server.base_url)
    dry = run_label(project, client_for(project, server.base_url, dry_run=True))
    assert dry.planned == 1 and server.count == 0
    # Find the request the job sends, and plant a null answer for it in the cache.
    run_label(project, client)
    row = project.query("SELECT key, request FROM llm_cache")[0]
    with project.write() as db:
        db.execute("DELETE FROM labels")
    null = {"choices": [{"index": 0, "message": {"role": "assistant", "content": None},
                         "finish_reason": "stop"}]}
    client.cache.put(row["key"], endpoint=server.base_url, model="m", request=json.loads(row["request"]),
                     response=null, prompt_tokens=1, completion_tokens=0)
    sent = server.count
    report = run_label(project, client_for(project, server.base_url))
    assert server.count == sent + 1, "the null cached answer must be asked again"
    assert report.labeled == 1
    assert project.scalar("SELECT text FROM labels WHERE status = 'ok'") == "dogs"
