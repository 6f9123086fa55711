"""Corpus reading: text paragraphs, JSONL, directories, streamed datasets; packing into contexts."""
from __future__ import annotations

import sys
import types

import pytest

from saegold.engine.planted import build_tokenizer
from saegold.engine.scoring import corpus as corpus_mod
from saegold.engine.scoring.errors import CorpusError
from saegold.store.errors import BadInput


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


ONE_PER_LINE = ('"""Parse the config file and return a dict."""\n'
                "Licensed under the Apache License, Version 2.0.\n"
                "the ocean is warm .\n")


def test_one_document_per_line_is_detected_and_can_be_chosen(tmp_path, tok):
    path = tmp_path / "docs.txt"
    path.write_text(ONE_PER_LINE)
    auto = corpus_mod.resolve(str(path))
    assert list(corpus_mod.documents(auto)) == ONE_PER_LINE.splitlines()
    assert corpus_mod.reading(auto) == [f"{path}: one document per line: it has no blank lines "
                                        "(--doc-sep blank: read it as one document)"]
    # every line starts after a BOS: no context joins the docstring to the licence without one
    bos = tok.bos_token_id
    stream = [t for c in corpus_mod.contexts(auto, tok, 64, bos) for t in c[1:]]
    assert stream.count(bos) == 2
    blank = corpus_mod.resolve(str(path), doc_sep="blank")
    assert list(corpus_mod.documents(blank)) == [ONE_PER_LINE.rstrip("\n")]
    # a paragraph file stays paragraphs under auto; `line` splits it anyway
    para = tmp_path / "para.txt"
    para.write_text("the ocean is warm .\nthe storm came .\n\nmy doctor ate cheese .\n")
    assert list(corpus_mod.documents(corpus_mod.resolve(str(para)))) == [
        "the ocean is warm .\nthe storm came .", "my doctor ate cheese ."]
    assert list(corpus_mod.documents(corpus_mod.resolve(str(para), doc_sep="line"))) == [
        "the ocean is warm .", "the storm came .", "my doctor ate cheese ."]
    with pytest.raises(CorpusError, match="--doc-sep 'pages'"):
        corpus_mod.resolve(str(para), doc_sep="pages")


def test_json_lines_are_told_by_content_not_name(tmp_path):
    piece = tmp_path / "xaa"            # a piece made by `split`: no suffix
    piece.write_text('{"text": "we saw a lion", "id": 1}\n{"text": "two owl"}\n')
    spec = corpus_mod.resolve(str(piece))
    assert list(corpus_mod.documents(spec)) == ["we saw a lion", "two owl"]
    assert "JSON Lines" in corpus_mod.reading(spec)[0]
    # a text file that merely starts with a brace is text
    odd = tmp_path / "odd.txt"
    odd.write_text("{not json} at all\nsecond line\n")
    assert list(corpus_mod.documents(corpus_mod.resolve(str(odd)))) == ["{not json} at all", "second line"]


def test_score_prints_how_it_reads_the_corpus(tmp_path, tiny, capsys):
    from saegold.tui.cli import main

    model_dir, sae_dir = tiny
    path = tmp_path / "docs.txt"
    path.write_text("the ocean is warm\nthe storm came\nmy doctor ate cheese\n" * 3)
    db = str(tmp_path / "p.db")
    assert main(["--db", db, "init"]) == 0
    capsys.readouterr()
    assert main(["--db", db, "score", "--model", str(model_dir), "--sae", str(sae_dir), "--corpus", str(path),
                 "--features", "0-3", "--ctx-len", "8", "--device", "cpu"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        f"corpus {path}: one document per line: it has no blank lines (--doc-sep blank: read it as one document)")
