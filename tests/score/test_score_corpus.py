"""Corpus reading: text paragraphs, JSONL, directories, streamed datasets; packing into contexts."""
from __future__ import annotations

import sys
import types

import pytest

from engine.planted import build_tokenizer
from engine.scoring import corpus as corpus_mod
from engine.scoring.errors import CorpusError
from store.errors import BadInput


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


def test_contexts_pack_documents_with_bos_between(tmp_path, tok):
    (tmp_path / "a.txt").write_text("the ocean is warm .\nthe storm came .\n\n\nmy doctor ate cheese .\n")
    (tmp_path / "b.jsonl").write_text('{"text": "we saw a lion"}\n\n{"text": "", "x": 1}\n{"text": "two owl"}\n')
    spec = corpus_mod.resolve(str(tmp_path))
    docs = list(corpus_mod.documents(spec))
    assert docs == ["the ocean is warm .\nthe storm came .", "my doctor ate cheese .", "we saw a lion", "two owl"]
    bos = tok.bos_token_id
    ctxs = list(corpus_mod.contexts(spec, tok, 6, bos))
    assert all(c[0] == bos for c in ctxs) and all(len(c) == 6 for c in ctxs[:-1]) and 1 < len(ctxs[-1]) <= 6
    stream = [t for c in ctxs for t in c[1:]]
    expected = []
    for i, d in enumerate(docs):
        expected += ([bos] if i else []) + tok(d, add_special_tokens=False)["input_ids"]
    assert stream == expected
    assert len(list(corpus_mod.contexts(spec, tok, 6, bos, max_contexts=2))) == 2
    limited = list(corpus_mod.contexts(spec, tok, 6, bos, max_tokens=7))
    assert len(limited) == 2 and sum(map(len, limited)) == 12


def test_huggingface_dataset_is_streamed(monkeypatch, tok):
    calls = {}

    def load_dataset(name, split, streaming):
        calls.update(name=name, split=split, streaming=streaming)
        return iter([{"text": "the ocean"}, {"text": "  "}, {"text": "a storm"}])

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    spec = corpus_mod.resolve("hf:someone/corpus:validation")
    assert list(corpus_mod.documents(spec)) == ["the ocean", "a storm"]
    assert calls == {"name": "someone/corpus", "split": "validation", "streaming": True}
    assert corpus_mod.resolve("someone/corpus").dataset == "someone/corpus"

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(
        load_dataset=lambda name, split, streaming: iter([{"text": "ok"}, {"body": "no text"}])))
    with pytest.raises(BadInput, match=r"hf:someone/corpus: record 1: field 'text'"):
        list(corpus_mod.documents(corpus_mod.resolve("hf:someone/corpus")))

    def unreachable(name, split, streaming):
        raise ConnectionError("Couldn't reach the Hub\nmore detail")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=unreachable))
    with pytest.raises(CorpusError, match=r"^cannot open dataset 'someone/corpus' \(split 'train'\): "
                                          r"Couldn't reach the Hub$"):
        list(corpus_mod.documents(corpus_mod.resolve("hf:someone/corpus")))


def test_short_ctx_len_is_refused(tmp_path, tok):
    (tmp_path / "a.txt").write_text("the ocean\n")
    with pytest.raises(CorpusError, match="at least 2 tokens"):
        list(corpus_mod.contexts(corpus_mod.resolve(str(tmp_path / "a.txt")), tok, 1, tok.bos_token_id))
