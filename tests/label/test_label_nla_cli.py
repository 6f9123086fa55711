"""NLA sources (HTTP service, JSONL file) and the ``saegold label`` command."""
from __future__ import annotations

import asyncio
import json

import pytest
from label_builders import SOURCE, add_feature, word_examples

from saegold.engine.labeling import inputs
from saegold.engine.labeling.nla import NLAService, import_jsonl
from saegold.engine.llm.client import LLMClient
from saegold.engine.llm.demo_responder import demo_label_answer, demo_nla_explanation
from saegold.engine.llm.standin_server import CHAT_PATH, NLA_PATH, Fault
from saegold.store.errors import BadInput
from saegold.tui.cli import main


def examples_of(project, idx):
    row = next(r for r in inputs.feature_rows(project) if r["idx"] == idx)
    return inputs.load(project, row, None).examples


def test_nla_service_shape_retries_and_cache(project, llm_server):
    add_feature(project, 0, examples=word_examples("dog", n=2))
    server = llm_server(nla_handler=lambda text, pos, req: f"Final token: explanation of {text!r} at {pos}")
    server.inject(Fault(status=503, route=NLA_PATH), Fault(body=b'{"results": []}', route=NLA_PATH))
    exs = examples_of(project, 0)

    async def fetch():
        client = LLMClient(project, base_url=server.nla_url, model="nla:tiny/src", api_key_env=None,
                           backoff_base=0.01, extra_headers={"x-api-key": "np-key"})
        service = NLAService(client, model_id="tiny-model", nla_source_id="src")
        stored = await service.fill(project, exs)
        await client.aclose()
        return stored, client, service

    stored, client, service = asyncio.run(fetch())
    assert stored == 2 and client.usage.retries == 2 and service.token_mismatches == 0
    bodies = {json.dumps(b, sort_keys=True) for b in server.bodies(NLA_PATH)}
    assert bodies == {json.dumps({"modelId": "tiny-model", "nlaSourceId": "src", "text": t, "positions": [4]},
                                 sort_keys=True) for t in ("I saw a dog", "We saw a dog")}
    rows = project.query("SELECT example_id, token_index, text FROM nla_explanations ORDER BY example_id")
    assert [(r["example_id"], r["token_index"]) for r in rows] == [(e.id, e.max_idx) for e in exs]
    assert rows[0]["text"] == "Final token: explanation of 'I saw a dog' at 4"
    assert rows[1]["text"] == "Final token: explanation of 'We saw a dog' at 4"
    sent = server.count
    assert asyncio.run(fetch())[0] == 2 and server.count == sent, "NLA answers are cached"


def write_jsonl(path, records):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n")
    return path


def test_jsonl_import_and_baez_from_it(project, llm_server, tmp_path):
    add_feature(project, 3, category="input", examples=word_examples("dog", n=2))
    recs = [{"source": SOURCE, "feature": 3, "rank": r, "token_index": 4,
             "explanation": f"About dogs.\nFinal token: dog #{r}"} for r in range(2)]
    recs.append({"source": SOURCE, "feature": 99, "rank": 0, "token_index": 1, "explanation": "elsewhere"})
    result = import_jsonl(project, write_jsonl(tmp_path / "nla.jsonl", recs), nla_source="kitft-l41")
    assert (result.records, result.stored, result.unmatched, result.off_max) == (3, 2, 1, 0)
    assert result.sources == ("kitft-l41",)
    server = llm_server(demo_label_answer)
    rc = main(["--db", str(project.path), "label", "--methods", "baez_last", "--base-url", server.base_url,
               "--model", "m"])
    assert rc == 0
    user = server.chat_bodies()[0]["messages"][-1]["content"]
    assert user == ("Explanation 1 (activation score 10):\nFinal token: dog #0\n\n"
                    "Explanation 2 (activation score 9):\nFinal token: dog #1\n")


@pytest.mark.parametrize("bad, field, problem", [
    ('{"source": "a/b", "feature": 1, "rank": 0, "token_index": 2}', "explanation", "missing"),
    ('{"source": "a/b", "feature": -1, "rank": 0, "token_index": 2, "explanation": "x"}', "feature",
     "must be a non-negative integer"),
    ('{"source": "ab", "feature": 1, "rank": 0, "token_index": 2, "explanation": "x"}', "source",
     'must be "MODEL/SOURCE"'),
    ("{not json", None, "not valid JSON"),
])
def test_jsonl_bad_record_names_line_and_field_and_writes_nothing(project, tmp_path, bad, field, problem):
    add_feature(project, 3, examples=word_examples("dog", n=1))
    good = {"source": SOURCE, "feature": 3, "rank": 0, "token_index": 4, "explanation": "fine"}
    path = write_jsonl(tmp_path / "x.jsonl", [good, bad])
    with pytest.raises(BadInput) as info:
        import_jsonl(project, path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: record line 2") and problem in msg
    assert (f"field {field!r}" in msg) if field else "field" not in msg
    assert project.scalar("SELECT COUNT(*) FROM nla_explanations") == 0


def test_jsonl_token_index_past_the_example(project, tmp_path):
    add_feature(project, 3, examples=word_examples("dog", n=1))
    rec = {"source": SOURCE, "feature": 3, "rank": 0, "token_index": 80, "explanation": "x"}
    with pytest.raises(BadInput, match="line 1: field 'token_index': 80 is past the example's 8 tokens"):
        import_jsonl(project, write_jsonl(tmp_path / "y.jsonl", [rec]))


def test_cli_by_tier_report_and_key_never_stored(project, llm_server, monkeypatch, capsys):
    secret = "sk-cli-SECRET-0b8e4d2f91"
    monkeypatch.setenv("LABEL_KEY", secret)
    add_feature(project, 0, category="input", examples=word_examples("dog"))
    add_feature(project, 1, category="output", examples=word_examples("cat"), promoted=[(" meow", 1.0)])
    add_feature(project, 2, category="obscure", examples=word_examples("zzz"))
    server = llm_server(demo_label_answer, nla_handler=demo_nla_explanation)
    args = ["--db", str(project.path), "label", "--by-tier", "--base-url", server.base_url, "--model", "m",
            "--api-key-env", "LABEL_KEY", "--nla-url", server.nla_url, "--nla-source", "demo-nla"]
    assert main(args + ["--dry-run"]) == 0
    dry = capsys.readouterr().out
    assert server.count == 0 and "dry run, nothing sent" in dry
    assert "4 (feature, method) pairs to label" in dry
    assert "this plan:                       4 label calls + 10 NLA calls" in dry
    assert "every method on every feature:   10 label calls + 15 NLA calls" in dry

    assert main(args) == 0
    out = capsys.readouterr().out
    assert "4 pairs planned, 4 labeled, 0 failed" in out
    assert "NLA explanations (demo-nla): 10 fetched, 0 failed" in out
    lines = {ln.split()[0]: ln.split() for ln in out.splitlines() if ln.startswith("  ") and ln.split()[0]
             in ("input", "output", "total")}
    assert lines["input"][1] == "7" and lines["output"][1] == "7" and lines["total"][1] == "14"
    assert all(r.auth == f"Bearer {secret}" for r in server.requests if r.path == CHAT_PATH)
    project.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for p in project.path.parent.iterdir():
        if p.name.startswith(project.path.name):
            assert secret.encode() not in p.read_bytes(), p

    assert main(args) == 0
    assert server.count == 14 and "0 pairs planned" in capsys.readouterr().out


def test_cli_errors_are_one_line(project, capsys, monkeypatch):
    add_feature(project, 0, examples=word_examples("dog"))
    db = str(project.path)
    assert main(["--db", db, "label"]) == 2
    assert capsys.readouterr().err.strip() == "saegold: error: say which labels to make: --methods M1,M2 or --by-tier"
    assert main(["--db", db, "label", "--methods", "eleuther_acts_top5,nope"]) == 2
    assert "unknown label method 'nope'" in capsys.readouterr().err
    assert main(["--db", db, "label", "--methods", "baez", "--features", "0,5-6"]) == 2
    assert ("--features: 2 of the 3 requested indices are not stored in this project: 5, 6"
            in capsys.readouterr().err)
    monkeypatch.delenv("UNSET_KEY_VAR", raising=False)
    assert main(["--db", db, "label", "--methods", "eleuther_acts_top5", "--base-url", "https://llm.invalid/v1",
                 "--api-key-env", "UNSET_KEY_VAR"]) == 2
    err = capsys.readouterr().err
    assert "$UNSET_KEY_VAR is not set" in err and err.count("\n") == 1
    assert project.scalar("SELECT COUNT(*) FROM labels") == 0


def test_cli_nla_jsonl(project, llm_server, tmp_path, capsys):
    add_feature(project, 3, category="input", examples=word_examples("dog", n=2))
    good = [{"source": SOURCE, "feature": 3, "rank": r, "token_index": 4, "explanation": f"dogs {r}",
             "nla_source": "file-nla"} for r in range(2)]
    server = llm_server(demo_label_answer)
    db = str(project.path)
    bad = write_jsonl(tmp_path / "bad.jsonl", good + ['{"source": "x/y", "feature": 3, "rank": 0}'])
    assert main(["--db", db, "label", "--methods", "baez", "--base-url", server.base_url,
                 "--nla-jsonl", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err == f"saegold: error: {bad}: record line 3: field 'token_index': missing\n"
    assert project.scalar("SELECT COUNT(*) FROM nla_explanations") == 0 and server.count == 0
    ok = write_jsonl(tmp_path / "ok.jsonl", good)
    assert main(["--db", db, "label", "--methods", "baez", "--base-url", server.base_url,
                 "--nla-jsonl", str(ok)]) == 0
    out = capsys.readouterr().out
    assert "NLA explanations: 2 of 2 records stored (file-nla)" in out and "1 labeled" in out
    assert [r["method"] for r in project.query("SELECT method FROM labels WHERE status = 'ok'")] == ["baez"]


def test_jsonl_not_utf8(project, tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"source": "a/b", "feature": 1, "rank": 0, "token_index": 0, "explanation": "x"}\n'
                     b'{"explanation": "caf\xe9"}\n')
    with pytest.raises(BadInput, match=r"latin1.jsonl: record line 2: not UTF-8 text"):
        import_jsonl(project, path)
    with pytest.raises(BadInput, match="cannot read"):
        import_jsonl(project, tmp_path / "missing.jsonl")


def test_an_oversize_nla_answer_is_not_stored_nor_cached_whole(project, llm_server):
    """A 5 MB NLA answer (a huge description, padded with other positions' results) is one
    failed explanation: nothing stored, and the cache keeps only the asked result, cut."""
    from saegold.engine.llm.client import MAX_REPLY_CHARS

    add_feature(project, 0, examples=word_examples("dog", n=2))
    exs = examples_of(project, 0)
    server = llm_server(nla_handler=lambda text, pos, req: ("x" * 5_000_000) if "I saw" in text else "fine")
    failed = []

    async def fetch():
        client = LLMClient(project, base_url=server.nla_url, model="nla:tiny/src", api_key_env=None,
                           backoff_base=0.01)
        service = NLAService(client, model_id="tiny-model", nla_source_id="src")
        stored = await service.fill(project, exs, on_error=lambda ex, exc: failed.append((ex.id, str(exc))))
        await client.aclose()
        return stored

    assert asyncio.run(fetch()) == 1
    assert [i for i, _ in failed] == [exs[0].id]
    assert "5,000,000 characters long, over the limit of 32,000; not stored" in failed[0][1]
    assert project.query("SELECT example_id FROM nla_explanations") == [{"example_id": exs[1].id}]
    sizes = [len(r["response"]) for r in project.query("SELECT response FROM llm_cache")]
    assert len(sizes) == 2 and max(sizes) < MAX_REPLY_CHARS + 1000
    sent = server.count
    failed.clear()
    assert asyncio.run(fetch()) == 1 and server.count == sent and len(failed) == 1    # cached: same outcome
