"""The shared LLM client against a real local HTTP server through the real openai SDK."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest

from saegold.engine.llm.client import LLMClient
from saegold.engine.llm.errors import LLMError, LLMRequestFailed
from saegold.engine.llm.standin_server import CHAT_PATH, Fault

MSG = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "name this feature"}]


def client_for(project, server, **kw) -> LLMClient:
    kw.setdefault("backoff_base", 0.01)
    kw.setdefault("timeout", 5.0)
    return LLMClient(project, base_url=server.base_url, model="test-model", **kw)


async def one_chat(client, messages=MSG, **params):
    try:
        return await client.chat(messages, **params)
    finally:
        await client.aclose()


def test_chat_round_trip_and_cache(project, llm_server, arun):
    server = llm_server(lambda req: f"[EXPLANATION]: echo {req['messages'][-1]['content']}")
    first = arun(one_chat(client_for(project, server), tag="input/baez", temperature=0.0))
    assert first.text == "[EXPLANATION]: echo name this feature"
    assert not first.cached and first.prompt_tokens > 0 and first.completion_tokens > 0
    sent = server.chat_bodies()
    assert len(sent) == 1 and sent[0]["model"] == "test-model" and sent[0]["temperature"] == 0.0
    assert sent[0]["messages"] == MSG

    again = client_for(project, server)
    second = arun(one_chat(again, tag="input/baez", temperature=0.0))
    assert server.count == 1, "a re-run must send zero requests"
    assert second.cached and second.text == first.text and second.request_key == first.request_key
    assert again.usage.cache_hits == 1 and again.usage.calls == 0 and again.usage.requests == 0
    # Different parameters are a different request.
    arun(one_chat(client_for(project, server), temperature=0.5))
    assert server.count == 2
    row = project.query("SELECT * FROM llm_cache WHERE key = ?", [first.request_key])[0]
    assert row["model"] == "test-model" and row["endpoint"] == server.base_url
    assert "name this feature" in row["request"] and "echo" in row["response"]


def test_retry_on_429_honours_retry_after_and_on_500(project, llm_server, arun):
    server = llm_server(lambda req: "[EXPLANATION]: ok")
    server.inject(Fault(status=429, retry_after=0.3), Fault(status=500), Fault(status=503))
    client = client_for(project, server, backoff_base=0.001)
    result = arun(one_chat(client, tag="t"))
    assert result.text == "[EXPLANATION]: ok"
    assert server.count == 4
    assert client.usage.retries == 3 and client.usage.requests == 4 and client.usage.calls == 1
    gap = server.requests[1].at - server.requests[0].at
    assert gap >= 0.28, f"Retry-After 0.3 s not honoured (waited {gap:.3f} s)"


def test_retries_run_out(project, llm_server, arun):
    server = llm_server()
    server.inject(*[Fault(status=500) for _ in range(3)])
    client = client_for(project, server, max_retries=2)
    with pytest.raises(LLMRequestFailed, match="HTTP 500.*after 3 attempts"):
        arun(one_chat(client, tag="x"))
    assert server.count == 3 and client.usage.failures == 1 and client.usage.retries == 2
    assert project.scalar("SELECT COUNT(*) FROM llm_cache") == 0, "failures are never cached"


def test_timeout_and_malformed_body_are_retried(project, llm_server, arun):
    server = llm_server(lambda req: "[EXPLANATION]: fine")
    server.inject(Fault(delay=1.5), Fault(body=b'{"choices": [tru'), Fault(body=b'{"choices": []}'))
    client = client_for(project, server, timeout=0.5)
    started = time.monotonic()
    result = arun(one_chat(client, tag="x"))
    assert result.text == "[EXPLANATION]: fine"
    assert server.count == 4 and client.usage.retries == 3
    assert time.monotonic() - started < 4.0, "the hung request must hit the 0.5 s timeout"


def test_auth_failure_stops_and_bad_request_fails_one(project, llm_server, arun):
    server = llm_server()
    server.inject(Fault(status=401))
    with pytest.raises(LLMError, match="HTTP 401"):
        arun(one_chat(client_for(project, server)))
    server.inject(Fault(status=400))
    with pytest.raises(LLMRequestFailed, match="HTTP 400") as info:
        arun(one_chat(client_for(project, server)))
    assert info.value.attempts == 1 and server.count == 2, "a 400 is not retried"


def test_key_from_named_variable_never_stored(project, llm_server, arun, monkeypatch):
    secret = "sk-test-SECRET-4f9a0c1e77"
    monkeypatch.setenv("MY_LLM_KEY", secret)
    server = llm_server(lambda req: "[EXPLANATION]: x")
    arun(one_chat(client_for(project, server, api_key_env="MY_LLM_KEY")))
    assert server.requests[0].auth == f"Bearer {secret}"
    project.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for suffix in ("", "-wal"):
        path = project.path.with_name(project.path.name + suffix)
        if path.exists():
            assert secret.encode() not in path.read_bytes()


def test_missing_key_is_one_line_error_except_on_localhost(project, llm_server, arun, monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    remote = LLMClient(project, base_url="https://llm.invalid/v1", model="m", api_key_env="NO_SUCH_KEY_VAR")
    with pytest.raises(LLMError, match=r"\$NO_SUCH_KEY_VAR is not set") as info:
        arun(one_chat(remote))
    assert "\n" not in str(info.value)
    server = llm_server(lambda req: "[EXPLANATION]: local")
    result = arun(one_chat(client_for(project, server, api_key_env="NO_SUCH_KEY_VAR")))
    assert result.text == "[EXPLANATION]: local"


def test_dry_run_sends_nothing_and_estimates(project, llm_server, arun):
    server = llm_server(lambda req: "[EXPLANATION]: real")
    arun(one_chat(client_for(project, server), tag="a"))  # cache one request
    dry = client_for(project, server, dry_run=True)

    async def go():
        hit = await dry.chat(MSG, tag="a")
        miss = await dry.chat([{"role": "user", "content": "x" * 400}], tag="b", max_tokens=30)
        await dry.aclose()
        return hit, miss

    hit, miss = arun(go())
    assert server.count == 1, "dry run must not send"
    assert hit.cached and hit.text == "[EXPLANATION]: real"
    assert miss.text is None and not miss.cached
    assert miss.prompt_tokens == 100 + 4 and miss.completion_tokens == 30
    assert dry.usage.by_tag["b"].est_calls == 1 and dry.usage.by_tag["a"].cache_hits == 1
    assert dry.usage.est_prompt_tokens == 104 and dry.usage.calls == 0


def test_concurrency_limit_and_identical_requests_sent_once(project, llm_server, arun):
    live, peak, lock = [0], [0], threading.Lock()

    def slow(req):
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        time.sleep(0.15)
        with lock:
            live[0] -= 1
        return "[EXPLANATION]: " + req["messages"][0]["content"]

    server = llm_server(slow)
    client = client_for(project, server, concurrency=2)

    async def go():
        msgs = [[{"role": "user", "content": f"q{i}"}] for i in range(6)]
        results = await asyncio.gather(*(client.chat(m) for m in msgs + msgs[:2]))
        await client.aclose()
        return results

    results = arun(go())
    assert peak[0] == 2, f"concurrency limit 2 not kept (peak {peak[0]})"
    assert server.count == 6, "identical requests in flight together are sent once"
    assert [r.text for r in results] == [f"[EXPLANATION]: q{i}" for i in list(range(6)) + [0, 1]]
    assert sum(r.cached for r in results) == 2


def test_embeddings_cached_per_text(project, llm_server, arun):
    server = llm_server(embed_handler=lambda texts: [[float(len(t)), 1.0, 0.5] for t in texts])
    client = client_for(project, server)

    async def go():
        a = await client.embed(["alpha", "be"], model="emb", tag="embedding")
        b = await client.embed(["be", "gamma", "alpha"], model="emb", tag="embedding")
        await client.aclose()
        return a, b

    a, b = arun(go())
    assert a == [[5.0, 1.0, 0.5], [2.0, 1.0, 0.5]]
    assert b == [[2.0, 1.0, 0.5], [5.0, 1.0, 0.5], [5.0, 1.0, 0.5]]
    assert [body["input"] for body in server.bodies()] == [["alpha", "be"], ["gamma"]]
    assert client.usage.cache_hits == 2 and client.usage.calls == 2


def test_usage_grouped_by_category(project, llm_server, arun):
    server = llm_server(lambda req: "[EXPLANATION]: " + "y" * 40)
    client = client_for(project, server)

    async def go():
        for i, tag in enumerate(["input/baez", "input/eleuther_acts_top5", "output/baez"]):
            await client.chat([{"role": "user", "content": f"prompt {i}"}], tag=tag)
        await client.aclose()

    arun(go())
    groups = client.usage.grouped(lambda t: t.split("/")[0])
    assert groups["input"].calls == 2 and groups["output"].calls == 1
    assert groups["input"].completion_tokens == 2 * groups["output"].completion_tokens
    assert client.usage.total_tokens == sum(g.total_tokens for g in groups.values())
    assert server.count == 3 and len(server.bodies(CHAT_PATH)) == 3


def test_client_reused_across_event_loops(project, llm_server):
    server = llm_server(lambda req: "[EXPLANATION]: " + req["messages"][-1]["content"])
    client = client_for(project, server)
    first = asyncio.run(client.chat([{"role": "user", "content": "one"}]))
    second = asyncio.run(client.chat([{"role": "user", "content": "two"}]))  # no aclose in between
    asyncio.run(client.aclose())
    assert (first.text, second.text) == ("[EXPLANATION]: one", "[EXPLANATION]: two")
    assert server.count == 2 and client.usage.calls == 2
