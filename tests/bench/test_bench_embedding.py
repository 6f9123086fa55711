"""The embedding benchmark over a local /v1/embeddings endpoint (real openai SDK, real HTTP)."""
from __future__ import annotations

import asyncio
import re

import numpy as np
import pytest

from saegold.engine.bench.demo_judge import demo_embed
from saegold.engine.bench.embedders import ApiEmbedder, FunctionEmbedder, make_embedder
from saegold.engine.bench.job import BenchConfig, run_bench
from saegold.engine.bench.metrics import auroc, cosine
from saegold.engine.bench.report import build_report
from saegold.engine.llm.client import LLMClient
from saegold.store.db import loads
from saegold.store.errors import SaegoldError

DIM = 16


def separable(texts: list[str]) -> list[list[float]]:
    """One axis per feature word (zq{f}word), one shared axis for text without any."""
    out = []
    for t in texts:
        v = [0.0] * DIM
        m = re.search(r"zq(\d+)word", t)
        v[int(m.group(1)) % (DIM - 1) if m else DIM - 1] = 1.0
        out.append(v)
    return out


def identical(texts: list[str]) -> list[list[float]]:
    return [[0.6, 0.8, 0.0] for _ in texts]


def _embedding_run(project, server, **config):
    holder = {}

    async def go():
        client = LLMClient(project, base_url=server.base_url, model="judge", backoff_base=0.01)
        try:
            summary = await run_bench(project, BenchConfig(benchmarks=("embedding",), **config),
                                      embedder=ApiEmbedder(client, "emb-small"))
            holder["usage"] = client.usage
            return summary
        finally:
            await client.aclose()

    return asyncio.run(go()), holder["usage"]


def _values(project, control):
    return [r["value"] for r in project.query(
        "SELECT value FROM bench_scores WHERE benchmark = 'embedding' AND control = ? ORDER BY label_id", [control])]


def test_separable_embeddings_give_auroc_one(bench_project, llm_server):
    server = llm_server(embed_handler=separable)
    summary, usage = _embedding_run(bench_project, server)
    assert summary.written == {"embedding": 48}
    rows = bench_project.query("SELECT b.*, l.method FROM bench_scores b JOIN labels l ON l.id = b.label_id "
                               "WHERE b.control = 'true'")
    true_vals = {r["method"]: set() for r in rows}
    for r in rows:
        true_vals[r["method"]].add(r["value"])
        assert r["judge_model"] == "emb-small" and r["n"] == 40 and r["parse_failures"] == 0
    assert true_vals["m_true"] == {1.0}
    assert true_vals["m_vague"] == {0.0}          # its vector lies on the negatives' axis: inverted
    row = next(r for r in build_report(bench_project)["overall"]
               if r["method"] == "m_true" and r["benchmark"] == "embedding")
    assert row["mean"] == 1.0 and row["shuffled_mean"] == 0.5 and row["gap_ci_low"] == 0.5
    # Every example text is embedded once (cached per text); re-running sends nothing.
    sent = server.count
    assert usage.calls == sent > 0
    summary, _ = _embedding_run(bench_project, server, redo=True)
    assert server.count == sent and summary.written == {"embedding": 48}


def test_identical_embeddings_give_auroc_half(bench_project, llm_server):
    server = llm_server(embed_handler=identical)
    _embedding_run(bench_project, server)
    assert set(_values(bench_project, "true")) == {0.5}
    assert set(_values(bench_project, "shuffled")) == {0.5}


def test_embedding_details_hold_similarities(bench_project, llm_server):
    server = llm_server(embed_handler=separable)
    _embedding_run(bench_project, server)
    d = loads(bench_project.scalar("SELECT details FROM bench_scores WHERE benchmark = 'embedding' LIMIT 1"))
    assert d["embedding_model"] == "emb-small" and len(d["examples"]) == 40
    assert {e["similarity"] for e in d["examples"] if e["truth"] == 1} in ({1.0}, {0.0})


def test_function_embedder_with_demo_vectors(bench_project):
    summary = asyncio.run(run_bench(bench_project, BenchConfig(benchmarks=("embedding",)),
                                    embedder=FunctionEmbedder(demo_embed, "demo-hash")))
    assert summary.written == {"embedding": 48}
    assert set(_values(bench_project, "true")) >= {1.0}


def test_metrics_edge_cases():
    assert auroc([1, 1, 0, 0], [0.9, 0.8, 0.1, 0.2]) == 1.0
    assert auroc([1, 1, 0, 0], [0.1, 0.2, 0.9, 0.8]) == 0.0
    assert auroc([1, 1], [0.3, 0.4]) is None
    sims = cosine(np.array([[1.0, 0.0], [0.0, 0.0], [-2.0, 0.0]]), np.array([3.0, 0.0]))
    assert sims.tolist() == [1.0, 0.0, -1.0]


def test_local_model_directory_needs_the_extra(tmp_path):
    try:
        import sentence_transformers  # noqa: F401
    except ImportError:
        with pytest.raises(SaegoldError, match=r"sentence-transformers.*\[embeddings\]"):
            make_embedder(str(tmp_path), None)
    else:
        with pytest.raises(SaegoldError, match="cannot load"):
            make_embedder(str(tmp_path), None)   # an empty directory is no model
    with pytest.raises(SaegoldError, match="no endpoint"):
        make_embedder("text-embedding-3-small", None)


def _tiny_sentence_transformer(path, vocab: list[str]) -> str:
    """A tiny random BERT + mean pooling saved as a sentence-transformers model directory."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path.mkdir()
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *dict.fromkeys(vocab)]
    torch.manual_seed(0)
    hf = path / "hf"
    BertModel(BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=64)).save_pretrained(hf)
    BertTokenizerFast(vocab={w: i for i, w in enumerate(words)}, do_lower_case=True).save_pretrained(hf)
    st = SentenceTransformer(modules=[models.Transformer(str(hf)), models.Pooling(16, pooling_mode="mean")],
                             device="cpu")
    st.save(str(path / "st"))
    return str(path / "st")


def test_local_sentence_transformers_directory(bench_project, tmp_path, capsys):
    pytest.importorskip("sentence_transformers", reason="optional extra 'embeddings' not installed")
    from benchkit import FILL, word
    from saegold.tui.cli import main

    model_dir = _tiny_sentence_transformer(tmp_path / "model", FILL + [word(f) for f in range(12)] + ["vague"])
    emb = make_embedder(model_dir, None)
    assert emb.name == "local:st"
    vecs = asyncio.run(emb.embed(["the zq1word", "the zq1word", "of and"]))
    assert vecs.shape == (3, 16) and np.allclose(vecs[0], vecs[1]) and not np.allclose(vecs[0], vecs[2])

    db = str(bench_project.path)
    assert main(["--db", db, "bench", "--benchmarks", "embedding", "--embedding-model", model_dir]) == 0
    assert "stored 48 results (embedding 48)" in capsys.readouterr().out
    rows = bench_project.query("SELECT value, judge_model FROM bench_scores ORDER BY id")
    assert len(rows) == 48 and {r["judge_model"] for r in rows} == {"local:st"}
    assert all(0.0 <= r["value"] <= 1.0 for r in rows)
    assert main(["--db", db, "bench", "--benchmarks", "embedding", "--embedding-model", model_dir, "--redo"]) == 0
    again = bench_project.query("SELECT value FROM bench_scores ORDER BY id")
    assert [r["value"] for r in again] == pytest.approx([r["value"] for r in rows])
