"""A corpus read as documents and cut into fixed-length token contexts.

A corpus is a plain text file, a JSONL file (one JSON object per line with a ``text``
field), a directory of such files (``*.txt``, ``*.jsonl``, sorted), or a Hugging Face
dataset ``hf:NAME[:SPLIT]`` (streamed with ``datasets``; a bare ``owner/name`` that is not a
local path works too).  Documents are tokenized, joined into one stream with BOS between
them, and cut into contexts of ``ctx_len`` tokens that each start with BOS, as sae-lens and
Neuronpedia do.

How a text file splits into documents is its ``doc_sep``: ``blank`` (paragraphs separated by
blank lines), ``line`` (every non-empty line is a document), or ``auto`` (the default): a file
whose first non-empty line is a JSON object with the text field is read as JSON Lines whatever
its name; otherwise a file with a blank line in its first MiB is read by paragraphs, and one
with several lines and no blank line as one document per line.  :func:`reading` says what was
chosen for each file, so the command line can show it.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from saegold.store.errors import BadInput

from .errors import CorpusError

TEXT_SUFFIXES = (".txt", ".text", ".md")
JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
DOC_SEPS = ("auto", "blank", "line")
SNIFF_BYTES = 1 << 20      # auto: how much of a text file is looked at


@dataclass(frozen=True)
class CorpusSpec:
    """Where the documents come from (build with :func:`resolve`)."""

    spec: str
    """The corpus argument as given."""
    files: tuple[Path, ...] = ()
    """Local files read, in order (a directory's ``*.txt`` / ``*.jsonl``, sorted); empty for a dataset."""
    dataset: str | None = None
    """Hugging Face dataset name (``hf:NAME[:SPLIT]``, streamed); None: local files."""
    split: str = "train"
    """The dataset's split."""
    text_field: str = "text"
    """The JSON field holding a document's text (JSONL files and datasets)."""
    doc_sep: str = "auto"
    """How a text file splits into documents: ``auto`` | ``blank`` | ``line`` (module docstring)."""

    @property
    def description(self) -> str:
        return f"hf:{self.dataset}:{self.split}" if self.dataset else self.spec


def resolve(spec: str, text_field: str = "text", doc_sep: str = "auto") -> CorpusSpec:
    """Resolve a corpus argument; a missing file is a one-line error."""
    if doc_sep not in DOC_SEPS:
        raise CorpusError(f"--doc-sep {doc_sep!r}: choose one of {', '.join(DOC_SEPS)}")
    spec_ = _resolve(spec, text_field)
    return CorpusSpec(spec_.spec, spec_.files, spec_.dataset, spec_.split, spec_.text_field, doc_sep)


def _resolve(spec: str, text_field: str) -> CorpusSpec:
    if spec.startswith("hf:"):
        name, _, split = spec[3:].partition(":")
        if not name:
            raise CorpusError(f"{spec}: give a dataset name after hf:")
        return CorpusSpec(spec, dataset=name, split=split or "train", text_field=text_field)
    path = Path(spec).expanduser()
    if path.is_dir():
        files = tuple(sorted(p for p in path.iterdir()
                             if p.is_file() and p.suffix in TEXT_SUFFIXES + JSONL_SUFFIXES))
        if not files:
            raise CorpusError(f"{spec}: no .txt or .jsonl files in this directory")
        return CorpusSpec(spec, files=files, text_field=text_field)
    if path.is_file():
        return CorpusSpec(spec, files=(path,), text_field=text_field)
    if spec.startswith((".", "/", "~")) or path.suffix in TEXT_SUFFIXES + JSONL_SUFFIXES or len(path.parts) > 2:
        raise CorpusError(f"{spec}: no such corpus file or directory")
    return CorpusSpec(spec, dataset=spec, text_field=text_field)


def _looks_jsonl(path: Path, text_field: str) -> bool:
    """Is the first non-empty line a JSON object holding ``text_field``?"""
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.strip():
                    try:
                        first = json.loads(line)
                    except ValueError:
                        return False
                    return isinstance(first, dict) and text_field in first
    except OSError:
        return False      # documents() reports the file
    return False


def _has_blank_line(path: Path) -> tuple[bool, int]:
    """(a blank line between non-empty lines in the first SNIFF_BYTES, non-empty lines seen)."""
    seen = blank_pending = 0
    with path.open(encoding="utf-8", errors="replace") as fh:
        read = 0
        for line in fh:
            read += len(line)
            if line.strip():
                if blank_pending and seen:
                    return True, seen
                seen += 1
                blank_pending = 0
            else:
                blank_pending = 1
            if read >= SNIFF_BYTES:
                break
    return False, seen


def file_mode(path: Path, corpus: CorpusSpec) -> tuple[str, str]:
    """How ``path`` is read: (``jsonl`` | ``blank`` | ``line``, why in words)."""
    if path.suffix in JSONL_SUFFIXES:
        return "jsonl", f"JSON Lines, field {corpus.text_field!r}"
    if corpus.doc_sep != "auto":
        return corpus.doc_sep, ("paragraphs separated by blank lines" if corpus.doc_sep == "blank"
                                else "one document per line") + " (--doc-sep)"
    if _looks_jsonl(path, corpus.text_field):
        return "jsonl", f"JSON Lines (its lines are JSON objects with {corpus.text_field!r}), field " \
                        f"{corpus.text_field!r}"
    try:
        blank, lines = _has_blank_line(path)
    except OSError:
        return "blank", "paragraphs separated by blank lines"
    if blank or lines < 2:
        return "blank", "paragraphs separated by blank lines (--doc-sep line: one document per line)"
    return "line", "one document per line: it has no blank lines (--doc-sep blank: read it as one document)"


def reading(corpus: CorpusSpec) -> list[str]:
    """One line per local file: how it is split into documents."""
    return [f"{path}: {file_mode(path, corpus)[1]}" for path in corpus.files]


def _jsonl_docs(path: Path, text_field: str) -> Iterator[str]:
    with path.open(encoding="utf-8", errors="strict") as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BadInput(str(path), f"line {line_no}", None, f"not valid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise BadInput(str(path), f"line {line_no}", None, "expected a JSON object")
            text = obj.get(text_field)
            if not isinstance(text, str):
                problem = "missing" if text is None else f"expected a string, got {type(text).__name__}"
                raise BadInput(str(path), f"line {line_no}", text_field, problem)
            if text.strip():
                yield text


def _line_docs(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8", errors="strict") as fh:
        for line in fh:
            if line.strip():
                yield line.rstrip("\r\n")


def _text_docs(path: Path) -> Iterator[str]:
    para: list[str] = []
    with path.open(encoding="utf-8", errors="strict") as fh:
        for line in fh:
            if line.strip():
                para.append(line.rstrip("\n"))
            elif para:
                yield "\n".join(para)
                para = []
    if para:
        yield "\n".join(para)


def documents(corpus: CorpusSpec) -> Iterator[str]:
    """The corpus's documents, in order (streamed)."""
    if corpus.dataset:
        yield from _dataset_docs(corpus)
        return
    for path in corpus.files:
        mode = file_mode(path, corpus)[0]
        try:
            yield from (_jsonl_docs(path, corpus.text_field) if mode == "jsonl"
                        else _line_docs(path) if mode == "line" else _text_docs(path))
        except UnicodeDecodeError as exc:
            raise BadInput(str(path), f"byte {exc.start}", None, "not UTF-8 text") from None
        except OSError as exc:
            raise CorpusError(f"{path}: cannot read ({exc.strerror})") from exc


def _dataset_docs(corpus: CorpusSpec) -> Iterator[str]:
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - datasets ships with sae-lens
        raise CorpusError("reading a Hugging Face dataset needs the `datasets` package") from exc
    from .models import _quiet_hub

    try:
        with _quiet_hub():  # the hub client's retry warnings: a failure is one line
            ds = datasets.load_dataset(corpus.dataset, split=corpus.split, streaming=True)
    except Exception as exc:  # noqa: BLE001 - datasets raises many types; one line for the user
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CorpusError(f"cannot open dataset {corpus.dataset!r} (split {corpus.split!r}): {first}") from exc
    for i, row in enumerate(ds):
        text = row.get(corpus.text_field)
        if not isinstance(text, str):
            raise BadInput(f"hf:{corpus.dataset}", i, corpus.text_field, "missing or not a string")
        if text.strip():
            yield text


def validate(corpus: CorpusSpec) -> int:
    """Read local files once before anything is written: a malformed record is a one-line
    error.  Returns the number of documents (datasets: only the first is checked)."""
    n = 0
    for _ in documents(corpus):
        n += 1
        if corpus.dataset:
            break
    if n == 0:
        raise CorpusError(f"{corpus.description}: the corpus holds no text")
    return n


def contexts(corpus: CorpusSpec, tokenizer: Any, ctx_len: int, bos_id: int, *,
             max_contexts: int | None = None, max_tokens: int | None = None,
             doc_batch: int = 64) -> Iterator[list[int]]:
    """Token-id contexts of exactly ``ctx_len`` tokens ``[BOS, ...]`` (the last may be
    shorter), packed from the document stream with BOS between documents."""
    if ctx_len < 2:
        raise CorpusError(f"--ctx-len {ctx_len}: a context needs at least 2 tokens")
    body = ctx_len - 1
    buf: list[int] = []
    n_ctx = n_tok = 0

    def budget_left() -> bool:
        return (max_contexts is None or n_ctx < max_contexts) and (max_tokens is None or n_tok < max_tokens)

    pending: list[str] = []

    def tokenized(docs: list[str]) -> Iterator[list[int]]:
        yield from tokenizer(docs, add_special_tokens=False)["input_ids"]

    def stream() -> Iterator[list[int]]:
        for doc in documents(corpus):
            pending.append(doc)
            if len(pending) >= doc_batch:
                yield from tokenized(pending)
                pending.clear()
        if pending:
            yield from tokenized(pending)

    first = True
    for ids in stream():
        if not first:
            buf.append(bos_id)
        buf.extend(ids)
        first = False
        pos = 0
        while len(buf) - pos >= body and budget_left():
            ctx = [bos_id, *buf[pos:pos + body]]
            pos += body
            n_ctx += 1
            n_tok += len(ctx)
            yield ctx
        del buf[:pos]
        if not budget_left():
            return
    if buf and budget_left():
        yield [bos_id, *buf]
