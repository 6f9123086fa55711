"""Export features, taxonomy scores, labels and raw judgments as JSON Lines or CSV.

Scripts depend on the field names: every record carries ``source`` (``MODEL/SOURCE``) and
``feature`` (the index); scores carry ``input_score``, ``output_score``, ``category``;
labels carry ``method`` and ``text``; judgments come out in the shape that
``saegold import judgments`` reads.  Rows stream from the database in (source, feature)
order; a file is written to a temporary name and renamed, so a failed export leaves no
half-written file.
"""
from __future__ import annotations

import contextlib
import csv
import gzip
import io
import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from .benchmarks import negatives_verified_sql, sampler_sql
from .errors import StoreError
from .fingerprints import fingerprint_id
from .sqlite_errors import writable

if TYPE_CHECKING:
    from .db import Project

FORMATS = ("jsonl", "csv")
KINDS = ("features", "scores", "labels", "judgments", "bench")

FIELDS: dict[str, tuple[str, ...]] = {
    "features": ("source", "feature", "model_id", "sae_id", "hook_name", "layer", "d_sae",
                 "source_fingerprint", "density", "max_act", "n_tokens_seen", "n_examples", "n_labels", "category"),
    "scores": ("source", "feature", "input_score", "output_score", "category",
               "input_threshold", "output_threshold", "scorer_version", "device",
               "continuation", "created_at"),
    "labels": ("source", "feature", "method", "text", "model", "uuid", "origin", "status",
               "prompt_tokens", "completion_tokens", "error", "details", "created_at"),
    # the shape `saegold import judgments` reads back (method: the judged candidate's method)
    "judgments": ("source", "feature", "uuid", "annotator", "login", "kind", "value", "method",
                  "label_uuid", "confidence", "target_uuid", "seconds_spent", "created_at"),
    # one per (label, benchmark, control): the score with its own 95% interval and how it was made
    "bench": ("source", "feature", "method", "label_uuid", "benchmark", "control", "scored_label_uuid",
              "value", "ci_low", "ci_high", "n", "parse_failures", "sampler", "negatives",
              "negatives_verified", "judge_model", "seed", "created_at"),
}
JSON_COLUMNS = {"details"}  # stored as JSON text: an object in JSONL, JSON text in CSV

_SQL = {
    "features": """
        SELECT s.name AS source, f.idx AS feature, s.model_id, s.sae_id, s.hook_name, s.layer,
               s.d_sae, s.fingerprint AS source_fingerprint, f.density, f.max_act, f.n_tokens_seen,
               (SELECT count(*) FROM examples e WHERE e.feature_id = f.id AND e.kind = 'top') AS n_examples,
               (SELECT count(*) FROM labels l WHERE l.feature_id = f.id AND l.status = 'ok'
                AND l.superseded_at IS NULL) AS n_labels,
               t.category, f.id AS _fid
        FROM features f JOIN sources s ON s.id = f.source_id
        LEFT JOIN taxonomy_scores t ON t.feature_id = f.id
        {where} ORDER BY s.name, f.idx""",
    "scores": """
        SELECT s.name AS source, f.idx AS feature, t.input_score, t.output_score, t.category,
               t.input_threshold, t.output_threshold, t.scorer_version, t.device,
               t.continuation, t.created_at
        FROM taxonomy_scores t JOIN features f ON f.id = t.feature_id
        JOIN sources s ON s.id = f.source_id
        {where} ORDER BY s.name, f.idx""",
    "labels": """
        SELECT s.name AS source, f.idx AS feature, l.method, l.text, l.model, l.uuid, l.origin,
               l.status, l.prompt_tokens, l.completion_tokens, l.error, l.details, l.created_at
        FROM labels l JOIN features f ON f.id = l.feature_id
        JOIN sources s ON s.id = f.source_id
        {where} ORDER BY s.name, f.idx, l.method, l.created_at, l.id""",
    "judgments": """
        SELECT s.name AS source, f.idx AS feature, j.uuid, j.annotator, j.login, j.kind, j.value,
               l.method, j.label_uuid, j.confidence, j.target_uuid, j.seconds_spent, j.created_at
        FROM judgments j JOIN features f ON f.id = j.feature_id
        JOIN sources s ON s.id = f.source_id
        LEFT JOIN labels l ON l.uuid = j.label_uuid
        {where} ORDER BY j.seq""",
    "bench": """
        SELECT s.name AS source, f.idx AS feature, l.method, l.uuid AS label_uuid, b.benchmark, b.control,
               sl.uuid AS scored_label_uuid, b.value, json_extract(b.details, '$.ci[0]') AS ci_low,
               json_extract(b.details, '$.ci[1]') AS ci_high, b.n, b.parse_failures,
               {sampler} AS sampler,
               json_extract(b.details, '$.selection.negatives') AS negatives,
               {negatives_verified} AS negatives_verified, b.judge_model, b.seed, b.created_at
        FROM bench_scores b JOIN labels l ON l.id = b.label_id
        LEFT JOIN labels sl ON sl.id = b.scored_label_id
        JOIN features f ON f.id = l.feature_id JOIN sources s ON s.id = f.source_id
        {where} ORDER BY s.name, f.idx, l.method, l.id, b.benchmark, b.control""",
}


def records(project: Project, kind: str, *, source: str | None = None,
            method: str | None = None, include_failed: bool = False,
            with_examples: bool = False) -> Iterator[dict[str, Any]]:
    """Stream the records of ``kind`` (features | scores | labels) as dicts."""
    # (store.db is imported here, not at the top: `saegold export --help` lists KINDS and
    # FIELDS without the database layer)
    from .db import loads
    from .examples import examples as stored_examples

    if kind not in KINDS:
        raise StoreError(f"unknown export {kind!r} (choose {', '.join(KINDS)})")
    where, params = [], []
    if source is not None and not project.scalar("SELECT 1 FROM sources WHERE name = ?", [source]):
        known = [r["name"] for r in project.query("SELECT name FROM sources ORDER BY name")]
        raise StoreError(f"no source named {source!r} in this project (known: {', '.join(known) or 'none'})")
    if source is not None:
        where.append("s.name = ?")
        params.append(source)
    if kind == "labels":
        if method is not None and not project.scalar("SELECT 1 FROM labels WHERE method = ?", [method]):
            known = [r["method"] for r in project.query("SELECT DISTINCT method FROM labels ORDER BY method")]
            raise StoreError(f"no labels by method {method!r} in this project "
                             f"(methods: {', '.join(known) or 'none'})")
        if method is not None:
            where.append("l.method = ?")
            params.append(method)
        if not include_failed:
            where.append("l.status = 'ok'")
        where.append("l.superseded_at IS NULL")   # a redo replaced it (it stays in the project)
    sql = _SQL[kind].format(where=("WHERE " + " AND ".join(where)) if where else "", sampler=sampler_sql("b"),
                            negatives_verified=negatives_verified_sql("b"))
    examples_db = project.db if with_examples else None
    # A second cursor on the same connection reads examples while the main query streams.
    short: dict[str | None, str | None] = {}        # source fingerprint -> its short id
    for row in project.db.query(sql, params):
        fid = row.pop("_fid", None)
        if "source_fingerprint" in row:
            fp = row["source_fingerprint"]
            row["source_fingerprint"] = short[fp] if fp in short else short.setdefault(fp, fingerprint_id(fp))
        for col in JSON_COLUMNS & row.keys():
            row[col] = loads(row[col])
        if examples_db is not None and fid is not None:
            row["examples"] = [
                {k: r[k] for k in ("rank", "tokens", "acts", "max_idx", "max_act", "origin")}
                for r in stored_examples(examples_db, fid, "top")]
            for lk in ("promoted", "suppressed"):
                row[lk] = [{"token": r[0], "token_id": r[1], "value": r[2]}
                           for r in examples_db.execute(
                               "SELECT token, token_id, value FROM logit_tokens "
                               "WHERE feature_id = ? AND kind = ? ORDER BY rank", [fid, lk])]
        yield row


def write_records(rows: Iterator[dict[str, Any]], fields: tuple[str, ...], fmt: str,
                  out: TextIO) -> int:
    """Write ``rows`` to ``out`` as ``fmt``; return how many were written."""
    from .db import dumps

    n = 0
    if fmt == "jsonl":
        for row in rows:
            out.write(dumps(row))
            out.write("\n")
            n += 1
    elif fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=list(fields), lineterminator="\n",
                                extrasaction="raise")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (dumps(v) if isinstance(v, (dict, list)) else v) for k, v in row.items()})
            n += 1
    else:
        raise StoreError(f"unknown format {fmt!r} (choose {', '.join(FORMATS)})")
    return n


def _plain_mode(path: Path) -> int:
    """The mode of the file being replaced, else 0666 less the umask."""
    with contextlib.suppress(OSError):
        return stat.S_IMODE(path.stat().st_mode)
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def check_output_path(path: str | os.PathLike, flag: str = "--output", what: str = "") -> Path:
    """``path`` if a file can be written there, else a one-line :class:`StoreError`: a
    missing directory is never created (a typo would scatter files), a directory is not a
    file name, and a read-only directory is named."""
    path = Path(path)
    folder = path.parent
    if path.is_dir():
        raise StoreError(f"{path}: cannot write{' ' + what if what else ''} ({flag} names a directory; "
                         f"give a file name)")
    if not folder.is_dir():
        missing = next((p for p in [folder, *folder.parents] if p.exists()), None)
        what = "is not a directory" if missing is not None and missing == folder else "no such directory"
        raise StoreError(f"{flag} {path}: {folder} {what} (create it first)")
    if not writable(folder):
        raise StoreError(f"{flag} {path}: cannot write in {folder} (read-only for this user)")
    return path


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary file in ``path``'s folder to write; when the block ends without an error
    it replaces ``path`` (no half files, ever), else it is removed and ``path`` is left as it
    was.  Every file saegold writes for the user goes through this."""
    check_output_path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        os.chmod(tmp, _plain_mode(path))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _atomic_text(path: Path) -> Iterator[TextIO]:
    """A text file that appears at ``path`` only when fully written (gzipped for ``*.gz``)."""
    with atomic_path(path) as tmp:
        if path.name.endswith(".gz"):
            with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz, \
                    io.TextIOWrapper(gz, encoding="utf-8", newline="") as f:
                yield f
        else:
            with open(tmp, "w", encoding="utf-8", newline="") as f:
                yield f


def export(project: Project, kind: str, *, fmt: str, output: str | Path | None = None,
           source: str | None = None, method: str | None = None,
           include_failed: bool = False, with_examples: bool = False) -> int:
    """Export ``kind`` as ``fmt`` to ``output`` (None or ``-``: standard output)."""
    if fmt not in FORMATS:
        raise StoreError(f"unknown format {fmt!r} (choose {', '.join(FORMATS)})")
    if with_examples and (kind != "features" or fmt != "jsonl"):
        raise StoreError("--with-examples is for `export features --format jsonl`")
    fields = FIELDS[kind] + (("examples", "promoted", "suppressed") if with_examples else ())
    rows = records(project, kind, source=source, method=method,
                   include_failed=include_failed, with_examples=with_examples)
    if output in (None, "-"):
        return write_records(rows, fields, fmt, sys.stdout)
    try:
        with _atomic_text(Path(output)) as f:
            return write_records(rows, fields, fmt, f)
    except OSError as exc:
        raise StoreError(f"{output}: cannot write ({exc.strerror or exc})") from exc
