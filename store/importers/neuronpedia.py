"""Neuronpedia import: feature JSON (API responses, trimmed variants) and bulk exports.

Accepted records, recognised by their keys (JSON documents, arrays of records, or JSON
Lines, plain or gzipped; directories are walked):

- a feature (``GET /api/feature/{modelId}/{source}/{index}``): ``modelId``, ``layer`` (the
  source id) or ``source``, ``index`` or ``feature_index``, optional ``hookName``,
  ``frac_nonzero``, ``maxActApprox``, ``activations[]``, ``explanations[]``,
  ``pos_str``/``pos_values``, ``neg_str``/``neg_values``;
- an activation (export ``activations/batch-N.jsonl.gz``): ``tokens``, ``values``,
  ``maxValue``, ``maxValueTokenIndex`` with ``modelId``/``layer``/``index``;
- an explanation (export ``explanations/`` or the explanations-only JSON array):
  ``description``, ``typeName``, ``explanationModelName``, ``scores``;
- export metadata files ``source.jsonl`` (source records fill hook name, d_sae, width)
  and ``model.jsonl``/``release.jsonl``/``sourceset.jsonl`` (read, nothing to store).

Token strings and descriptions are stored exactly as given.  Activations become ``top``
examples ranked by ``maxValue`` (descending), each distinct context once (Neuronpedia lists
a context again in its quantile bins); contexts where the feature never fires
(``maxValue <= 0``, from the lowest bin) become ``negative`` examples, the non-activating
contexts that benchmarks need.  Explanations become labels with
``method = typeName`` and a content UUID, so a re-import or a merge adds nothing twice.
Examples and logit-token lists that saegold computed itself are never overwritten.
"""
from __future__ import annotations

import contextlib
import math
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..sqlite_utils_lib import Database

from ..db import Project, dumps, now
from ..errors import BadInput
from ..examples import delete_examples, prune_contexts, put_examples
from ..examples import examples as stored_examples
from ..features import get_or_create_source, source_name
from ..labels import content_uuid
from .log import log_import
from .reading import (ProgressFn, Record, Rejections, expand_paths, file_digest, finite,
                      is_unicode, no_progress, nonneg_int, read_records, text)

ORIGIN = "neuronpedia"
DEFAULT_METHOD = "neuronpedia"     # method of an explanation without a typeName
MAX_TOKEN_CHARS = 1_000            # a real token is a few characters long
MAX_CONTEXT_TOKENS = 65_536
MAX_DESCRIPTION_CHARS = 20_000
MAX_NAME_CHARS = 300
IGNORED_METADATA = ("model", "release", "sourceset")
WRITING_STAGE = "writing features of the current file"
BUFFER_TOKENS = 5_000_000  # parsed tokens held before the write lock is taken early

_NUMBER_TYPES = {int, float}
_HOOK_LAYER = re.compile(r"(?:^|\.)(?:blocks|layers|layer|h)\.(\d+)(?=\.|$)")
_SOURCE_LAYER = re.compile(r"^(\d+)-")


# -- parsed data -------------------------------------------------------------------------

@dataclass
class SourceMeta:
    model_id: str
    sae_id: str
    hook_name: str | None = None
    layer: int | None = None
    d_sae: int | None = None
    width: int | None = None
    n_tokens: int | None = None  # tokens the dashboards (and density) were computed on

    @property
    def name(self) -> str:
        return source_name(self.model_id, self.sae_id)

    def fill(self, other: SourceMeta) -> None:
        for key in ("hook_name", "layer", "d_sae", "width", "n_tokens"):
            if getattr(self, key) is None:
                setattr(self, key, getattr(other, key))


@dataclass
class Example:
    tokens: list[str]
    acts: list[float]
    max_idx: int
    max_act: float

    def key(self) -> tuple:
        return tuple(self.tokens), tuple(self.acts)


@dataclass
class FeatureData:
    source: str
    idx: int
    density: float | None = None
    max_act: float | None = None
    examples: list[Example] | None = None
    promoted: list[tuple[str, float]] | None = None
    suppressed: list[tuple[str, float]] | None = None
    duplicates: int = 0  # contexts listed more than once (Neuronpedia's bins overlap)

    def absorb(self, other: FeatureData) -> None:
        for key in ("density", "promoted", "suppressed"):
            if getattr(other, key) is not None:
                setattr(self, key, getattr(other, key))
        if other.max_act is not None:
            self.max_act = other.max_act if self.max_act is None else max(self.max_act, other.max_act)
        if other.examples is not None:  # ranked and de-duplicated once, before writing
            self.examples = (self.examples or []) + other.examples

    def finish(self) -> None:
        """Rank the examples, keeping each distinct context once."""
        if self.examples is not None:
            merged = merge_examples([], self.examples)
            self.duplicates = len(self.examples) - len(merged)
            self.examples = merged


@dataclass
class LabelData:
    source: str
    idx: int
    uuid: str
    method: str
    model: str | None
    text: str
    details: dict | None
    created_at: str | None


@dataclass
class Parsed:
    """What one record contributes."""

    sources: list[SourceMeta] = field(default_factory=list)
    feature: FeatureData | None = None
    labels: list[LabelData] = field(default_factory=list)


@dataclass
class Batch:
    """What one file contributes, merged."""

    sources: dict[str, SourceMeta] = field(default_factory=dict)
    features: dict[tuple[str, int], FeatureData] = field(default_factory=dict)
    labels: dict[str, LabelData] = field(default_factory=dict)
    records: int = 0

    def absorb(self, parsed: Parsed) -> None:
        self.records += 1
        for meta in parsed.sources:
            if meta.name in self.sources:
                self.sources[meta.name].fill(meta)
            else:
                self.sources[meta.name] = meta
        f = parsed.feature
        if f is not None:
            key = (f.source, f.idx)
            if key in self.features:
                self.features[key].absorb(f)
            else:
                self.features[key] = f
        for label in parsed.labels:
            self.labels.setdefault(label.uuid, label)


def merge_examples(old: list[Example], new: list[Example]) -> list[Example]:
    """Union (an identical context counted once), ranked by max activation, stable."""
    seen: set[tuple] = set()
    merged = []
    for ex in [*old, *new]:
        k = ex.key()
        if k not in seen:
            seen.add(k)
            merged.append(ex)
    merged.sort(key=lambda e: -e.max_act)
    return merged


# -- parsing -----------------------------------------------------------------------------

def _layer_of(hook_name: str | None, sae_id: str) -> int | None:
    if hook_name:
        m = _HOOK_LAYER.search(hook_name)
        if m:
            return int(m.group(1))
    m = _SOURCE_LAYER.match(sae_id)
    return int(m.group(1)) if m else None


def _ids(rec: Record, obj: dict) -> tuple[str, str]:
    """(model id, source id) of a record; the source id is Neuronpedia's ``layer``."""
    model = text(rec, "modelId", obj.get("modelId"), max_chars=MAX_NAME_CHARS)
    src, key = obj.get("layer"), "layer"
    if src is None and isinstance(obj.get("source"), str):
        src, key = obj["source"], "source"
    if src is None and isinstance(obj.get("source"), dict) and "id" in obj["source"]:
        src, key = obj["source"]["id"], "source.id"
    if src is None:
        raise rec.bad("layer", "missing: the source id (Neuronpedia's 'layer', "
                               "e.g. \"20-gemmascope-res-16k\")")
    return model, text(rec, key, src, max_chars=MAX_NAME_CHARS)


def _index(rec: Record, obj: dict) -> int:
    for key in ("index", "feature_index"):
        if key in obj:
            return nonneg_int(rec, key, obj[key])
    raise rec.bad("index", "missing: the feature index")


def _opt_int(value: Any) -> int | None:
    """An optional positive count from source metadata; anything else counts as unknown."""
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**40
    return value if ok else None


def parse_source(rec: Record, obj: dict, prefix: str = "") -> SourceMeta:
    """A Neuronpedia source object (``source`` of an API response, or ``source.jsonl``)."""
    sae_id = text(rec, prefix + "id", obj.get("id"), max_chars=MAX_NAME_CHARS)
    model = text(rec, prefix + "modelId", obj.get("modelId"), max_chars=MAX_NAME_CHARS)
    meta = SourceMeta(model, sae_id)
    cfg = obj.get("saelensConfig")
    if isinstance(cfg, dict):
        hook = cfg.get("hook_name")
        meta.hook_name = hook if isinstance(hook, str) and hook and is_unicode(hook) else None
        meta.d_sae, meta.width = _opt_int(cfg.get("d_sae")), _opt_int(cfg.get("d_in"))
    prompts, per_prompt = _opt_int(obj.get("num_prompts")), _opt_int(obj.get("num_tokens_in_prompt"))
    if prompts and per_prompt:
        meta.n_tokens = prompts * per_prompt
    meta.layer = _layer_of(meta.hook_name, sae_id)
    return meta


def _values(rec: Record, fld: str, values: Any, n: int | None) -> list[float]:
    if not isinstance(values, list):
        raise rec.bad(fld, "expected an array of numbers")
    if n is not None and len(values) != n:
        raise rec.bad(fld, f"has {len(values)} values for {n} tokens")
    if set(map(type, values)) <= _NUMBER_TYPES:  # fast path; the loop below names the culprit
        try:
            out = list(map(float, values))
        except OverflowError:  # an integer too large for a float
            out = []
        if len(out) == len(values) and all(map(math.isfinite, out)):
            return out
    for i, v in enumerate(values):
        finite(rec, f"{fld}[{i}]", v)
    raise AssertionError("unreachable")  # pragma: no cover


def _strings(rec: Record, fld: str, items: Any, max_chars: int) -> list[str]:
    if not isinstance(items, list):
        raise rec.bad(fld, "expected an array of strings")
    if (set(map(type, items)) <= {str} and max(map(len, items), default=0) <= max_chars
            and is_unicode("".join(items))):
        return items
    for i, s in enumerate(items):
        text(rec, f"{fld}[{i}]", s, max_chars=max_chars, allow_empty=True)
    raise AssertionError("unreachable")  # pragma: no cover


def parse_activation(rec: Record, obj: Any, prefix: str) -> Example:
    if not isinstance(obj, dict):
        raise rec.bad(prefix.rstrip(".") or None, "expected an activation object")
    if "tokens" not in obj:
        raise rec.bad(prefix + "tokens", "missing")
    tokens = _strings(rec, prefix + "tokens", obj["tokens"], MAX_TOKEN_CHARS)
    if not tokens:
        raise rec.bad(prefix + "tokens", "is empty")
    if len(tokens) > MAX_CONTEXT_TOKENS:
        raise rec.bad(prefix + "tokens", f"has {len(tokens):,} tokens (limit {MAX_CONTEXT_TOKENS:,})")
    if "values" not in obj:
        raise rec.bad(prefix + "values", "missing")
    acts = _values(rec, prefix + "values", obj["values"], len(tokens))
    max_idx = obj.get("maxValueTokenIndex")
    if max_idx is None:
        max_idx = max(range(len(acts)), key=acts.__getitem__)
    else:
        max_idx = nonneg_int(rec, prefix + "maxValueTokenIndex", max_idx)
        if max_idx >= len(tokens):
            raise rec.bad(prefix + "maxValueTokenIndex", f"{max_idx} is past the last token ({len(tokens) - 1})")
    max_value = obj.get("maxValue")
    max_act = max(acts) if max_value is None else finite(rec, prefix + "maxValue", max_value)
    return Example(tokens, acts, max_idx, max_act)


def parse_explanation(rec: Record, obj: Any, prefix: str, source: str, idx: int) -> LabelData:
    if not isinstance(obj, dict):
        raise rec.bad(prefix.rstrip(".") or None, "expected an explanation object")
    description = text(rec, prefix + "description", obj.get("description"),
                       max_chars=MAX_DESCRIPTION_CHARS)
    method = obj.get("typeName")
    method = DEFAULT_METHOD if method is None else text(
        rec, prefix + "typeName", method, max_chars=MAX_NAME_CHARS)
    model = obj.get("explanationModelName")
    if model is not None:
        model = text(rec, prefix + "explanationModelName", model, max_chars=MAX_NAME_CHARS)
    details: dict[str, Any] = {}
    if isinstance(obj.get("id"), str):
        details["neuronpedia_id"] = obj["id"]
    scores = obj.get("scores")
    if scores not in (None, []):
        try:
            dumps(scores)
        except ValueError:
            raise rec.bad(prefix + "scores", "holds NaN or infinity") from None
        details["scores"] = scores
    for key in ("notes", "authorId"):
        if isinstance(obj.get(key), str) and obj[key]:
            details[key] = obj[key]
    for key, value in details.items():
        if not is_unicode(dumps(value)):
            raise rec.bad(prefix + ("id" if key == "neuronpedia_id" else key),
                          "holds a lone surrogate escape, which is not valid Unicode")
    created = obj.get("createdAt")
    return LabelData(
        source=source, idx=idx, uuid=content_uuid(source, idx, method, model, description),
        method=method, model=model, text=description, details=details or None,
        created_at=created if isinstance(created, str) and len(created) <= 40 and is_unicode(created) else None,
    )


def _logits(rec: Record, obj: dict, strings: str, values: str) -> list[tuple[str, float]] | None:
    if obj.get(strings) is None and obj.get(values) is None:
        return None
    toks = _strings(rec, strings, obj.get(strings), MAX_TOKEN_CHARS)
    vals = _values(rec, values, obj.get(values), None)
    if len(toks) != len(vals):
        raise rec.bad(values, f"has {len(vals)} values for {len(toks)} tokens in {strings!r}")
    return list(zip(toks, vals))


def parse_feature(rec: Record, obj: dict) -> Parsed:
    model, sae_id = _ids(rec, obj)
    idx = _index(rec, obj)
    meta = SourceMeta(model, sae_id)
    if isinstance(obj.get("source"), dict) and obj["source"].get("id") == sae_id:
        meta.fill(parse_source(rec, {**obj["source"], "modelId": model}, "source."))
    hook = obj.get("hookName")
    if hook is not None:
        meta.hook_name = text(rec, "hookName", hook, max_chars=MAX_NAME_CHARS)
    meta.layer = _layer_of(meta.hook_name, sae_id)
    feat = FeatureData(meta.name, idx)
    if obj.get("frac_nonzero") is not None:
        feat.density = finite(rec, "frac_nonzero", obj["frac_nonzero"])
        if not 0.0 <= feat.density <= 1.0:
            raise rec.bad("frac_nonzero", f"{feat.density} is not a fraction between 0 and 1")
    maxima = []
    if obj.get("maxActApprox") is not None:
        maxima.append(finite(rec, "maxActApprox", obj["maxActApprox"]))
    if obj.get("activations") is not None:
        acts = obj["activations"]
        if not isinstance(acts, list):
            raise rec.bad("activations", "expected an array")
        feat.examples = [parse_activation(rec, a, f"activations[{i}].") for i, a in enumerate(acts)]
        maxima += [e.max_act for e in feat.examples]
    feat.max_act = max(maxima) if maxima else None
    feat.promoted = _logits(rec, obj, "pos_str", "pos_values")
    feat.suppressed = _logits(rec, obj, "neg_str", "neg_values")
    labels = []
    if obj.get("explanations") is not None:
        if not isinstance(obj["explanations"], list):
            raise rec.bad("explanations", "expected an array")
        labels = [parse_explanation(rec, e, f"explanations[{i}].", meta.name, idx)
                  for i, e in enumerate(obj["explanations"])]
    return Parsed([meta], feat, labels)


def parse_record(rec: Record, file_kind: str = "records") -> Parsed:
    """Recognise and check one record; raise :class:`BadInput` naming the field."""
    obj = rec.value
    if not isinstance(obj, dict):
        raise rec.bad(None, f"expected a JSON object, got {'an array' if isinstance(obj, list) else type(obj).__name__}")
    if file_kind == "source":
        return Parsed(sources=[parse_source(rec, obj)])
    if file_kind == "ignored":
        return Parsed()
    if "description" in obj:
        model, sae_id = _ids(rec, obj)
        idx = _index(rec, obj)
        meta = SourceMeta(model, sae_id, layer=_layer_of(None, sae_id))
        return Parsed([meta], FeatureData(meta.name, idx),
                      [parse_explanation(rec, obj, "", meta.name, idx)])
    if "tokens" in obj and "activations" not in obj:
        model, sae_id = _ids(rec, obj)
        idx = _index(rec, obj)
        meta = SourceMeta(model, sae_id, layer=_layer_of(None, sae_id))
        example = parse_activation(rec, obj, "")
        return Parsed([meta], FeatureData(meta.name, idx, max_act=example.max_act, examples=[example]))
    return parse_feature(rec, obj)


def file_kind(path: Path) -> str:
    """Export metadata files are recognised by name; everything else holds records."""
    stem = path.name.lower().removesuffix(".gz")
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    if stem == "source":
        return "source"
    return "ignored" if stem in IGNORED_METADATA else "records"


# -- writing -----------------------------------------------------------------------------

@dataclass
class NeuronpediaReport:
    files: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    records: int = 0
    rejected: list[BadInput] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys((
        "sources_new", "features_new", "features_seen", "examples_written", "examples_duplicate",
        "examples_kept_scored", "logit_tokens_written", "logit_lists_kept_scored",
        "labels_new", "labels_existing"), 0))
    seconds: float = 0.0


class _Writer:
    """Writes batches into the open transaction; remembers what this run already wrote."""

    def __init__(self, db: Database, report: NeuronpediaReport, progress: ProgressFn):
        self.db, self.report, self.progress = db, report, progress
        self.source_ids: dict[str, int] = {}
        self.examples_written: set[tuple[int, str]] = set()
        self.replaced: set[int] = set()              # features whose examples were replaced
        self.replaced_sources: set[int] = set()

    def write(self, batch: Batch) -> None:
        db, c = self.db, self.report.counts
        for name, meta in batch.sources.items():
            existed = db.execute("SELECT 1 FROM sources WHERE name = ?", [name]).fetchone()
            self.source_ids[name] = get_or_create_source(
                db, meta.model_id, meta.sae_id, hook_name=meta.hook_name, layer=meta.layer,
                d_sae=meta.d_sae, width=meta.width)
            c["sources_new"] += existed is None
        n_tokens = {name: meta.n_tokens for name, meta in batch.sources.items()}
        before = db.execute("SELECT count(*) FROM features").fetchone()[0]
        db.conn.executemany(
            "INSERT INTO features(source_id, idx, density, max_act, n_tokens_seen) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(source_id, idx) DO UPDATE SET "
            "density = COALESCE(excluded.density, density), "
            "max_act = COALESCE(excluded.max_act, max_act), "
            "n_tokens_seen = COALESCE(excluded.n_tokens_seen, n_tokens_seen)",
            [(self.source_ids[f.source], f.idx, f.density, f.max_act,
              n_tokens.get(f.source) if f.density is not None else None)
             for f in batch.features.values()],
        )
        c["features_new"] += db.execute("SELECT count(*) FROM features").fetchone()[0] - before
        c["features_seen"] += len(batch.features)
        fids = self._feature_ids({f.source for f in batch.features.values()})
        total = len(batch.features)
        for i, f in enumerate(batch.features.values()):
            if i % 1000 == 0:
                self.progress(WRITING_STAGE, i, total)
            fid = fids[(f.source, f.idx)]
            f.finish()
            c["examples_duplicate"] += f.duplicates
            if f.examples is not None:  # a context where the feature never fires is a negative
                self._examples(fid, "top", [e for e in f.examples if e.max_act > 0])
                self._examples(fid, "negative", [e for e in f.examples if e.max_act <= 0])
            for kind, tokens in (("promoted", f.promoted), ("suppressed", f.suppressed)):
                if tokens is not None:
                    self._logits(fid, kind, tokens)
        self.progress(WRITING_STAGE, total, total)
        if self.replaced:                       # contexts that replaced examples held alone
            for fid in self.replaced:
                sid = db.execute("SELECT source_id FROM features WHERE id = ?", [fid]).fetchone()[0]
                self.replaced_sources.add(sid)
            for sid in self.replaced_sources:
                prune_contexts(db, sid)
            self.replaced.clear()
            self.replaced_sources.clear()
        changes = db.conn.total_changes
        db.conn.executemany(
            "INSERT OR IGNORE INTO labels(uuid, feature_id, method, text, status, model, origin, "
            "details, created_at) VALUES (?, ?, ?, ?, 'ok', ?, ?, ?, ?)",
            [(lb.uuid, fids[(lb.source, lb.idx)], lb.method, lb.text, lb.model, ORIGIN,
              dumps(lb.details) if lb.details else None, lb.created_at or now())
             for lb in batch.labels.values()],
        )
        new = db.conn.total_changes - changes
        c["labels_new"] += new
        c["labels_existing"] += len(batch.labels) - new

    def _feature_ids(self, sources: Iterable[str]) -> dict[tuple[str, int], int]:
        out = {}
        for name in sources:
            for fid, idx in self.db.execute(
                    "SELECT id, idx FROM features WHERE source_id = ?", [self.source_ids[name]]):
                out[(name, idx)] = fid
        return out

    def _examples(self, fid: int, kind: str, examples: list[Example]) -> None:
        db, c = self.db, self.report.counts
        existing = stored_examples(db, fid, kind)
        if not examples and not existing:
            return
        if any(r["origin"] != ORIGIN for r in existing):
            c["examples_kept_scored"] += bool(examples)
            return
        if (fid, kind) in self.examples_written:  # a second file of this run adds to the first
            examples = merge_examples(
                [Example(r["tokens"], r["acts"], r["max_idx"], r["max_act"]) for r in existing], examples)
        self.examples_written.add((fid, kind))
        rows = [{"tokens": list(ex.tokens), "acts": [float(a) for a in ex.acts], "max_idx": ex.max_idx,
                 "max_act": ex.max_act} for ex in examples]
        if [(r["tokens"], r["acts"], r["max_idx"], r["max_act"]) for r in existing] == \
                [(r["tokens"], r["acts"], r["max_idx"], r["max_act"]) for r in rows]:
            return
        if existing:
            self.replaced.add(fid)
        delete_examples(db, fid, kind)
        put_examples(db, fid, kind, rows, ORIGIN)
        c["examples_written"] += len(rows)

    def _logits(self, fid: int, kind: str, tokens: list[tuple[str, float]]) -> None:
        db, c = self.db, self.report.counts
        existing = db.execute(
            "SELECT rank, token, token_id, value FROM logit_tokens WHERE feature_id = ? AND kind = ? "
            "ORDER BY rank", [fid, kind]).fetchall()
        if any(row[2] is not None for row in existing):  # computed by saegold (token ids known)
            c["logit_lists_kept_scored"] += 1
            return
        rows = [(rank, tok, None, val) for rank, (tok, val) in enumerate(tokens)]
        if [tuple(r) for r in existing] == rows:
            return
        db.execute("DELETE FROM logit_tokens WHERE feature_id = ? AND kind = ?", [fid, kind])
        db.conn.executemany(
            "INSERT INTO logit_tokens(feature_id, kind, rank, token, token_id, value) VALUES (?, ?, ?, ?, ?, ?)",
            [(fid, kind, *r) for r in rows],
        )
        c["logit_tokens_written"] += len(rows)


@dataclass
class _Parsed:
    """One file read and checked, waiting to be written."""

    path: Path
    digest: str
    size: int
    batch: Batch
    rejected: int


def _weight(batch: Batch) -> int:
    """Rough memory cost of a parsed batch, in tokens (plus one per feature and label)."""
    tokens = sum(len(e.tokens) for f in batch.features.values() for e in (f.examples or ()))
    return tokens + len(batch.features) + len(batch.labels)


def import_neuronpedia(project: Project, paths: Iterable[str | Path], *, skip_bad: bool = False,
                       progress: ProgressFn = no_progress,
                       buffer_tokens: int = BUFFER_TOKENS) -> NeuronpediaReport:
    """Import Neuronpedia files and directories in ONE transaction.

    A bad record raises :class:`BadInput` and nothing is written, unless ``skip_bad``:
    then good records land and the report lists the rejected ones.  Files are read and
    checked before the write lock is taken, so annotators' saves wait only for the
    writing; past ``buffer_tokens`` parsed tokens the lock is taken early and the rest
    streams through it (memory stays bounded; it is still one transaction).
    """
    started = time.perf_counter()
    files, ignored = expand_paths(paths)
    report = NeuronpediaReport(files=[str(p) for p in files], ignored=[str(p) for p in ignored])
    if not files:
        raise BadInput(", ".join(str(p) for p in paths) or None, None, None,
                       "no importable files (*.json, *.jsonl, *.ndjson, optionally .gz)")
    rejections = Rejections(skip_bad)
    pending: list[_Parsed] = []
    buffered = 0
    with contextlib.ExitStack() as stack:
        writer: _Writer | None = None

        def flush(writer: _Writer) -> None:
            for item in pending:
                writer.write(item.batch)
                report.records += item.batch.records
                log_import(writer.db, "neuronpedia", item.path, item.digest, item.size,
                           item.batch.records, item.rejected)
            pending.clear()

        for i, path in enumerate(files):
            progress("importing files", i, len(files))
            digest, size = file_digest(path)
            kind = file_kind(path)
            batch = Batch()
            bad_before = len(rejections.items)
            for rec in read_records(path, rejections, progress):
                try:
                    parsed = parse_record(rec, kind)
                except BadInput as exc:
                    rejections.reject(exc)
                    continue
                batch.absorb(parsed)
            pending.append(_Parsed(path, digest, size, batch, len(rejections.items) - bad_before))
            buffered += _weight(batch)
            if writer is None and buffered > buffer_tokens:
                writer = _Writer(stack.enter_context(project.write()), report, progress)
            if writer is not None:
                flush(writer)
        if writer is None:
            writer = _Writer(stack.enter_context(project.write()), report, progress)
        flush(writer)
        progress("importing files", len(files), len(files))
    report.rejected = rejections.items
    report.seconds = time.perf_counter() - started
    return report
