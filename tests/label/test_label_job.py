"""The label job against a local OpenAI-compatible server (real SDK, real HTTP, real DB)."""
from __future__ import annotations

import asyncio
import json

import pytest
from label_builders import add_feature, word_examples

from saegold.engine.labeling.job import LabelOptions, run_label_job
from saegold.engine.labeling.nla import NLAService
from saegold.engine.llm.client import LLMClient
from saegold.engine.llm.demo_responder import demo_label_answer, demo_nla_explanation
from saegold.engine.llm.errors import LLMError
from saegold.engine.llm.standin_server import CHAT_PATH, NLA_PATH, Fault
from saegold.store import settings


def make_client(project, server, **kw) -> LLMClient:
    kw.setdefault("backoff_base", 0.01)
    kw.setdefault("timeout", 5.0)
    return LLMClient(project, base_url=server.base_url, model="label-model", **kw)


def label(project, server, opts: LabelOptions, *, nla: bool = False, **client_kw):
    client = make_client(project, server, **client_kw)
    nla_client = service = None
    if nla:
        nla_client = LLMClient(project, base_url=server.nla_url, model="nla:tiny/test-nla", api_key_env=None,
                               backoff_base=0.01, dry_run=client.dry_run)
        service = NLAService(nla_client, model_id="tiny-model", nla_source_id="test-nla")

    async def go():
        try:
            return await run_label_job(project, client, opts, nla=service, nla_client=nla_client)
        finally:
            await client.aclose()
            if nla_client:
                await nla_client.aclose()

    return asyncio.run(go()), client


def four_features(project):
    """input, output, cross, obscure features, each with examples; output/cross with logits."""
    add_feature(project, 0, category="input", examples=word_examples("dog"))
    add_feature(project, 1, category="output", examples=word_examples("cat"),
                promoted=[(" meow", 3.0)], amplified=[(" meow", 0.5)], continuation=" meow")
    add_feature(project, 2, category="cross", examples=word_examples("tree"), promoted=[(" leaf", 2.0)])
    add_feature(project, 3, category="obscure", examples=word_examples("zzz"))


def labels(project, status="ok"):
    return project.query("SELECT l.*, f.idx FROM labels l JOIN features f ON f.id = l.feature_id "
                         "WHERE status = ? ORDER BY f.idx, method, l.id", [status])


def test_by_tier_routing_labels_and_rerun_sends_nothing(project, llm_server):
    four_features(project)
    server = llm_server(demo_label_answer, nla_handler=demo_nla_explanation)
    report, client = label(project, server, LabelOptions(by_tier=True), nla=True)
    got = {(r["idx"], r["method"]) for r in labels(project)}
    assert got == {(0, "eleuther_acts_top5"), (0, "baez"), (1, "output_logits"), (1, "baez"),
                   (2, "eleuther_acts_top5"), (2, "baez"), (2, "baez_last"), (2, "output_logits")}
    assert report.labeled == report.planned == 8 and report.failed == 0
    # NLA: 5 examples each for features 0, 1, 2 (feature 3 is obscure: not labeled).
    assert project.scalar("SELECT COUNT(*) FROM nla_explanations WHERE nla_source = 'test-nla'") == 15
    row = labels(project)[0]
    assert row["origin"] == "saegold" and row["model"] == "label-model" and row["prompt_hash"]
    assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0 and row["raw_response"]
    sent = server.count
    assert sent == len(server.bodies(CHAT_PATH)) + len(server.bodies(NLA_PATH))

    again, _ = label(project, server, LabelOptions(by_tier=True), nla=True)
    assert server.count == sent, "a re-run of a finished job sends zero requests"
    assert again.planned == 0 and again.already_done == 8
    redo, redo_client = label(project, server, LabelOptions(by_tier=True, redo=True), nla=True)
    assert server.count == sent and redo.labeled == 8 and redo_client.usage.cache_hits == 8
    assert len(labels(project)) == 8, "a cached redo adds no duplicate labels"


def test_routing_table_setting_and_forced_methods(project, llm_server):
    four_features(project)
    add_feature(project, 4, examples=word_examples("unscored"))   # no category
    settings.set(project, "label_routing", {"input": ["output_logits"], "output": ["eleuther_acts_top5"],
                                            "cross": [], "obscure": ["eleuther_acts_top5"]})
    server = llm_server(demo_label_answer)
    report, _ = label(project, server, LabelOptions(by_tier=True))
    got = {(r["idx"], r["method"]) for r in labels(project)}
    assert got == {(1, "eleuther_acts_top5"), (3, "eleuther_acts_top5")}
    assert report.unscored == 1
    assert report.skipped == {"output_logits: no promoted tokens, amplified tokens or continuation": 1}
    forced, _ = label(project, server, LabelOptions(methods=["eleuther_acts_top5"]))
    assert {r["idx"] for r in labels(project)} == {0, 1, 2, 3, 4}
    assert forced.planned == 3 and forced.already_done == 2


def test_baez_without_nla_is_skipped_with_reason(project, llm_server):
    add_feature(project, 0, category="input", examples=word_examples("dog"))
    server = llm_server(demo_label_answer)
    report, _ = label(project, server, LabelOptions(methods=["baez"]))
    assert report.planned == 0 and server.count == 0
    assert list(report.skipped) == ["baez: NLA explanations for 0 of 5 examples (give --nla-url or --nla-jsonl)"]


def test_malformed_answers_become_failed_attempts_and_are_repaired(project, llm_server):
    add_feature(project, 0, examples=word_examples("dog"))
    add_feature(project, 1, examples=word_examples("cat"))
    answers = {"dog": iter(["I think it is dogs.", "", "[EXPLANATION]: Dogs"]),
               "cat": iter(["[EXPLANATION]: " + "very " * 50 + "long"] * 3)}

    def handler(req):
        evidence = req["messages"][-1]["content"] if len(req["messages"]) == 6 else req["messages"][5]["content"]
        return next(answers["dog" if "dog" in evidence else "cat"])

    server = llm_server(handler)
    report, _ = label(project, server, LabelOptions(methods=["eleuther_acts_top5"], attempts=3))
    ok = labels(project)
    assert [(r["idx"], r["text"]) for r in ok] == [(0, "Dogs")]
    failed = labels(project, "failed")
    assert [(r["idx"], r["error"]) for r in failed] == [
        (0, "no [EXPLANATION]: in the answer"), (0, "empty answer"),
        (1, "label has 51 words, the limit is 40"), (1, "label has 51 words, the limit is 40"),
        (1, "label has 51 words, the limit is 40")]
    assert {r["raw_response"] for r in failed if r["idx"] == 0} == {"", "I think it is dogs."}
    assert report.labeled == 1 and report.failed == 1 and report.failed_attempts == 5
    # The repair turn carries the bad answer and says what was wrong.
    third = [b for b in server.chat_bodies() if "dog" in b["messages"][5]["content"]][-1]["messages"]
    assert third[-4]["content"] == "I think it is dogs." and "no [EXPLANATION]:" in third[-3]["content"]
    assert third[-1]["content"].startswith("Your answer could not be used: empty answer")
    # Re-running replays the cached failures: zero requests, no duplicate failed rows.
    sent = server.count
    label(project, server, LabelOptions(methods=["eleuther_acts_top5"], attempts=3))
    assert server.count == sent and len(labels(project, "failed")) == 5


def test_retries_and_one_bad_feature_never_stops_the_batch(project, llm_server):
    for i, word in enumerate(["dog", "cat", "tree", "sun"]):
        add_feature(project, i, examples=word_examples(word))
    server = llm_server(demo_label_answer)
    server.inject(Fault(status=429, retry_after=0.01), Fault(status=500))
    report, client = label(project, server, LabelOptions(methods=["eleuther_acts_top5"]), concurrency=1)
    assert report.labeled == 4 and client.usage.retries == 2
    server.inject(Fault(status=400))  # the next request is refused for good
    report, client = label(project, server, LabelOptions(methods=["eleuther_acts_top5"], redo=True),
                           concurrency=1, read_cache=False)
    assert report.failed == 1 and report.labeled == 3
    bad = labels(project, "failed")
    assert len(bad) == 1 and "HTTP 400" in bad[0]["error"] and bad[0]["text"] is None


def test_hung_endpoint_hits_the_timeout(project, llm_server):
    add_feature(project, 0, examples=word_examples("dog"))
    add_feature(project, 1, examples=word_examples("cat"))
    server = llm_server(demo_label_answer)
    server.inject(Fault(delay=3.0))
    report, _ = label(project, server, LabelOptions(methods=["eleuther_acts_top5"]), timeout=0.4,
                      max_retries=0, concurrency=1)
    assert report.failed == 1 and report.labeled == 1
    assert "timed out" in labels(project, "failed")[0]["error"]


def test_fatal_error_stops_the_job(project, llm_server):
    add_feature(project, 0, examples=word_examples("dog"))
    server = llm_server(demo_label_answer)
    server.inject(Fault(status=401))
    with pytest.raises(LLMError, match="HTTP 401"):
        label(project, server, LabelOptions(methods=["eleuther_acts_top5"]))


def test_interrupt_keeps_finished_labels(project, llm_server):
    import threading
    words = ["dog", "cat", "tree", "sun", "car", "sky"]
    for i, w in enumerate(words):
        add_feature(project, i, examples=word_examples(w))
    gate = threading.Event()

    def handler(req):
        if "car" in req["messages"][-1]["content"] or "sky" in req["messages"][-1]["content"]:
            gate.wait(10)  # these two hang until the test ends
        return demo_label_answer(req)

    server = llm_server(handler)
    client = make_client(project, server, concurrency=6)

    async def go():
        task = asyncio.create_task(run_label_job(project, client, LabelOptions(methods=["eleuther_acts_top5"])))
        for _ in range(200):
            await asyncio.sleep(0.05)
            if project.scalar("SELECT COUNT(*) FROM labels") == 4:
                break
        task.cancel()  # what Ctrl+C does to asyncio.run's main task
        with pytest.raises(asyncio.CancelledError):
            await task
        await client.aclose()

    try:
        asyncio.run(go())
    finally:
        gate.set()
    kept = {r["idx"] for r in labels(project)}
    assert kept == {0, 1, 2, 3}


def test_dry_run_counts_without_sending(project, llm_server):
    four_features(project)
    server = llm_server(demo_label_answer, nla_handler=demo_nla_explanation)
    report, client = label(project, server, LabelOptions(by_tier=True), nla=True, dry_run=True)
    assert server.count == 0
    assert project.scalar("SELECT COUNT(*) FROM labels") == 0
    assert project.scalar("SELECT COUNT(*) FROM nla_explanations") == 0
    assert report.planned == 8 and client.usage.est_calls == 8
    total = report.total_spent
    assert total.est_calls == 8 + 15 and total.calls == 0
    assert report.spent["cross"].est_calls == 4 + 5 and report.spent["input"].est_calls == 2 + 5
    assert report.plan_estimate.calls == 8 and report.plan_estimate.nla_calls == 15
    assert report.all_methods_estimate.calls == 14 and report.all_methods_estimate.nla_calls == 20
    assert report.all_methods_estimate.tokens > report.plan_estimate.tokens > 0


def test_cost_accounting_matches_stored_tokens(project, llm_server):
    four_features(project)
    server = llm_server(demo_label_answer, nla_handler=demo_nla_explanation)
    server.inject(Fault(status=503, route=CHAT_PATH))
    report, client = label(project, server, LabelOptions(by_tier=True), nla=True, concurrency=1)
    per_cat = {}
    for r in labels(project):
        cat = json.loads(r["details"])["category"]
        c = per_cat.setdefault(cat, [0, 0, 0])
        c[0] += 1
        c[1] += r["prompt_tokens"]
        c[2] += r["completion_tokens"]
    for cat, (calls, pt, ct) in per_cat.items():
        u = client.usage.grouped(lambda t: t.split("/")[0])[cat]
        assert (u.calls, u.prompt_tokens, u.completion_tokens) == (calls, pt, ct), cat
    assert report.total_spent.retries == 1
    nla_calls = sum(u.calls for t, u in report.spent.items()) - sum(v[0] for v in per_cat.values())
    assert nla_calls == len(server.bodies(NLA_PATH)) - 0
    assert report.total_spent.requests == server.count


def test_redo_without_cache_keeps_a_fresh_answer(project, llm_server):
    add_feature(project, 0, examples=word_examples("dog"))
    answers = iter(["[EXPLANATION]: Dogs", "[EXPLANATION]: Canines"])
    server = llm_server(lambda req: next(answers))
    label(project, server, LabelOptions(methods=["eleuther_acts_top5"]))
    label(project, server, LabelOptions(methods=["eleuther_acts_top5"], redo=True), read_cache=False)
    assert [r["text"] for r in labels(project)] == ["Dogs", "Canines"] and server.count == 2
    label(project, server, LabelOptions(methods=["eleuther_acts_top5"], redo=True))  # cached: Canines again
    assert len(labels(project)) == 2 and server.count == 2


def test_job_refuses_unstored_indices_in_the_cli_wording(project, llm_server):
    """The job checks its own selection (callers other than the CLI) with --features' one wording."""
    from label_builders import SOURCE

    from saegold.store.feature_spec import FeatureSpecError

    four_features(project)
    server = llm_server(demo_label_answer)
    with pytest.raises(FeatureSpecError) as exc:
        label(project, server, LabelOptions(methods=["eleuther_acts_top5"], source=SOURCE, features=[2, 3, 4, 9]))
    assert str(exc.value) == f"--features: 2 of the 4 requested indices are not stored for source {SOURCE}: 4, 9"
    assert server.count == 0 and labels(project) == []
