"""Reading import files: JSON documents, JSON arrays and JSON Lines, plain or gzipped.

JSON Lines are told from one JSON document by content, not by the file's name: a file named
``*.jsonl`` / ``*.ndjson`` is read line by line; any other (``.json``, ``.txt``, a piece made
by ``split``, standard input) is read as JSON Lines when its first non-empty line is a
complete JSON value and another non-empty line follows, else as one JSON document.

Records come out with their place in the file (``line 12`` for JSON Lines, ``[17]`` for
the 17th element of a top-level array, 0-based, ``None`` for a single-object document),
so any error can name file, record and field in one line (:class:`store.errors.BadInput`).
Strict UTF-8; NaN/inf are parsed and then refused by the field checks of the importers.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BadInput

ProgressFn = Callable[[str, int, "int | None"], None]

JSON_SUFFIXES = (".json",)
JSONL_SUFFIXES = (".jsonl", ".ndjson")
REPORT_EVERY = 2000  # records between progress reports
MAX_INT = 2**63 - 1  # SQLite's INTEGER
READING_STAGE = "reading the current file"  # records of an array, or bytes of a JSON Lines file


def no_progress(stage: str, done: int, total: int | None) -> None:
    """Ignore progress reports."""


@dataclass
class Record:
    """One JSON value read from a file, with where it was."""

    file: str
    where: str | None
    value: Any

    def bad(self, fld: str | None, problem: str) -> BadInput:
        return BadInput(self.file, self.where, fld, problem)


@dataclass
class Rejections:
    """Collects bad records with ``skip_bad``; raises the first one otherwise."""

    skip_bad: bool
    items: list[BadInput] = field(default_factory=list)

    def reject(self, error: BadInput) -> None:
        if not self.skip_bad:
            raise error
        self.items.append(error)


def _base_suffix(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    return os.path.splitext(name)[1]


def is_importable(path: Path) -> bool:
    return _base_suffix(path) in JSON_SUFFIXES + JSONL_SUFFIXES


def expand_paths(paths: Iterable[str | os.PathLike]) -> tuple[list[Path], list[Path]]:
    """Files to import (directories are walked, sorted) and files found there but ignored.

    A path named explicitly is always imported; inside a directory only ``*.json``,
    ``*.jsonl``, ``*.ndjson`` (optionally ``.gz``) are, and hidden entries are skipped.
    """
    files: list[Path] = []
    ignored: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for sub in sorted(path.rglob("*")):
                rel = sub.relative_to(path).parts
                if not sub.is_file() or any(p.startswith(".") for p in rel):
                    continue
                (files if is_importable(sub) else ignored).append(sub)
        elif path.is_file():
            files.append(path)
        elif path.exists():
            raise BadInput(str(path), None, None, "not a regular file")
        else:
            raise BadInput(str(path), None, None, "no such file or directory")
    return files, ignored


def file_digest(path: Path) -> tuple[str, int]:
    """SHA-256 and size of the file's bytes (as stored, compressed or not)."""
    h = hashlib.sha256()
    size = 0
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
                size += len(chunk)
    except OSError as exc:
        raise BadInput(str(path), None, None, f"cannot read: {exc.strerror or exc}") from exc
    return h.hexdigest(), size


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def read_records(path: Path, rejections: Rejections,
                 progress: ProgressFn = no_progress, *, name: str | None = None) -> Iterator[Record]:
    """Yield the file's records; unreadable ones go to ``rejections``.  ``name``: how errors
    name the file (default: its path)."""
    name = name or str(path)
    try:
        gz = _is_gzip(path)
    except OSError as exc:
        rejections.reject(BadInput(name, None, None, f"cannot read: {exc.strerror or exc}"))
        return
    try:
        lines = _base_suffix(path) in JSONL_SUFFIXES or _looks_like_lines(path, gz)
    except (OSError, EOFError, zlib.error):
        lines = False       # unreadable or a damaged gzip stream: the document reader says which
    if lines:
        yield from _read_lines(path, gz, rejections, progress, name)
    else:
        yield from _read_document(path, gz, rejections, progress, name)


def _looks_like_lines(path: Path, gz: bool) -> bool:
    """JSON Lines by content: the first non-empty line is a complete JSON value and another
    non-empty line follows.  (A pretty-printed document's first line, ``{`` or ``[``, is not
    complete; a one-line document has no second line.)"""
    with (gzip.open(path, "rb") if gz else open(path, "rb")) as f:
        first = b""
        for line in f:
            if line.strip():
                first = line
                break
        if not first or not any(line.strip() for line in f):
            return False
    try:
        json.loads(first.decode("utf-8-sig"))
    except (ValueError, RecursionError):
        return False
    return True


def _utf8_problem(exc: UnicodeDecodeError) -> str:
    return f"not valid UTF-8 (byte 0x{exc.object[exc.start]:02x} at byte offset {exc.start})"


def _json_problem(exc: json.JSONDecodeError, text: str) -> str:
    body = text.strip()
    closer = {"{": "}", "[": "]"}.get(body[:1])
    truncated = exc.pos >= len(text.rstrip()) or (closer is not None and not body.endswith(closer))
    return (f"invalid JSON at column {exc.colno}: {exc.msg}"
            + (" (the file looks truncated)" if truncated else ""))


def _read_document(path: Path, gz: bool, rejections: Rejections,
                   progress: ProgressFn, name: str) -> Iterator[Record]:
    try:
        if gz:
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        rejections.reject(BadInput(name, None, None, f"gzip data is corrupt or truncated ({exc})"))
        return
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        rejections.reject(BadInput(name, f"line {line}", None, _utf8_problem(exc)))
        return
    del data
    if not text.strip():
        rejections.reject(BadInput(name, None, None, "is empty (no JSON in it)"))
        return
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        rejections.reject(BadInput(name, f"line {exc.lineno}", None, _json_problem(exc, text)))
        return
    except RecursionError:
        rejections.reject(BadInput(name, None, None, "JSON nested too deeply"))
        return
    del text
    if isinstance(value, list):
        stage = READING_STAGE
        total = len(value)
        for i, item in enumerate(value):
            yield Record(name, f"[{i}]", item)
            if i % REPORT_EVERY == 0:
                progress(stage, i, total)
        progress(stage, total, total)
    else:
        yield Record(name, None, value)


def _read_lines(path: Path, gz: bool, rejections: Rejections,
                progress: ProgressFn, name: str) -> Iterator[Record]:
    stage = READING_STAGE
    size = path.stat().st_size
    lineno = 0
    with open(path, "rb") as raw:
        stream = gzip.GzipFile(fileobj=raw, mode="rb") if gz else raw
        try:
            for line in stream:
                lineno += 1
                if lineno % REPORT_EVERY == 0:
                    progress(stage, raw.tell(), size)
                if not line.strip():
                    continue
                where = f"line {lineno}"
                try:
                    text = line.decode("utf-8-sig" if lineno == 1 else "utf-8")
                except UnicodeDecodeError as exc:
                    rejections.reject(BadInput(name, where, None, _utf8_problem(exc)))
                    continue
                try:
                    value = json.loads(text)
                except json.JSONDecodeError as exc:
                    rejections.reject(BadInput(name, where, None, _json_problem(exc, text)))
                    continue
                except RecursionError:
                    rejections.reject(BadInput(name, where, None, "JSON nested too deeply"))
                    continue
                yield Record(name, where, value)
        except (OSError, EOFError, zlib.error) as exc:
            rejections.reject(BadInput(
                name, f"line {lineno + 1}", None,
                f"gzip data is corrupt or truncated ({exc}); the rest of the file is unreadable",
            ))
    progress(stage, size, size)


# -- field checks shared by the importers ------------------------------------------------

def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def finite(rec: Record, fld: str, value: Any) -> float:
    """A finite JSON number, else a BadInput naming ``fld``."""
    if not is_number(value):
        raise rec.bad(fld, f"expected a number, got {_type(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise rec.bad(fld, "is an integer too large to be a finite number") from None
    if not math.isfinite(number):
        raise rec.bad(fld, f"{value!r} is not a finite number")
    return number


def nonneg_int(rec: Record, fld: str, value: Any) -> int:
    """A non-negative integer, given as a JSON integer or a string of digits."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        if len(value.strip()) > 19:
            raise rec.bad(fld, f"{value.strip()[:22]}... is too large for an index")
        value = int(value.strip())
    elif isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise rec.bad(fld, f"expected a non-negative integer, got {_type(value)}")
    if value < 0:
        raise rec.bad(fld, f"{value} is negative" if value > -MAX_INT else "is negative")
    if value > MAX_INT:
        raise rec.bad(fld, "is too large for an index")
    return value


def text(rec: Record, fld: str, value: Any, *, max_chars: int, allow_empty: bool = False) -> str:
    if value is None:
        raise rec.bad(fld, "missing")
    if not isinstance(value, str):
        raise rec.bad(fld, f"expected a string, got {_type(value)}")
    if not allow_empty and not value.strip():
        raise rec.bad(fld, "is empty")
    if len(value) > max_chars:
        raise rec.bad(fld, f"is {len(value):,} characters long (limit {max_chars:,})")
    if not is_unicode(value):
        raise rec.bad(fld, "holds a lone surrogate escape (e.g. \\ud800), which is not valid Unicode")
    return value


def is_unicode(value: str) -> bool:
    """False for strings holding lone surrogates (JSON allows "\\ud800"; SQLite cannot store it)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        shown = value if len(value) <= 30 else value[:27] + "..."
        return f"the string {shown!r}"
    return {dict: "an object", list: "an array", int: "an integer", float: "a number"}.get(
        type(value), type(value).__name__)
