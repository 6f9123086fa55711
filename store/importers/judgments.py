"""Import judgments made elsewhere (another server, another tool) from JSON Lines.

One JSON object per line (optionally gzipped; a JSON array works too; JSON Lines are told
from one document by content, whatever the file's name; ``-`` reads standard input)::

    {"uuid": "...", "annotator": "alice", "source": "gemma-2-2b/20-gemmascope-res-16k",
     "feature": 12, "kind": "tier", "value": "input", "confidence": 2,
     "created_at": "2026-11-26T10:00:00Z"}
    {"uuid": "...", "annotator": "alice", "source": "...", "feature": 12,
     "kind": "verdict", "method": "baez", "value": "correct", "created_at": "..."}

Candidates are named by ``method`` (the feature's one usable label of that method) or
directly by ``label_uuid``.  Events go through :func:`store.judgments.append_many`, so the
identity rules hold (retractions by their author or a lead, adjudications by a lead), and
an event whose UUID is already here is skipped: re-importing a file adds nothing.

``created_at`` may not lie in the future: a time more than :data:`CLOCK_SKEW` past this
machine's clock (allowing for clocks a little apart) is refused with the record named.
"""
from __future__ import annotations

import datetime as _dt
import shutil
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ..db import Project
from ..errors import BadInput, StoreError
from ..judgments import (KINDS, RETRACT, TIERS, VERDICTS, append_many, base_kind, ensure_annotator,
                         is_adjudication)
from ..labels import content_uuid
from .log import log_import
from .reading import (ProgressFn, Record, Rejections, expand_paths, file_digest, finite,
                      no_progress, nonneg_int, read_records, text)

MAX_TEXT_CHARS = 20_000
MAX_NAME_CHARS = 200
KNOWN_FIELDS = {"uuid", "annotator", "login", "source", "feature", "kind", "value", "method",
                "label_uuid", "confidence", "target_uuid", "seconds_spent", "created_at"}
COMPARED = ("annotator", "feature_id", "kind", "label_uuid", "value", "confidence",
            "target_uuid", "created_at")
CLOCK_SKEW = _dt.timedelta(minutes=5)   # how far past this machine's clock a created_at may lie
STDIN = "-"                              # the path that means standard input
STDIN_NAME = "<stdin>"                   # how errors and the import log name it


@dataclass
class JudgmentsReport:
    files: list[str] = field(default_factory=list)
    records: int = 0
    new: int = 0
    existing: int = 0
    annotators_new: list[str] = field(default_factory=list)
    rejected: list[BadInput] = field(default_factory=list)
    seconds: float = 0.0


def normalize_time(rec: Record, value: Any, *, latest: _dt.datetime | None = None) -> str:
    """ISO 8601 in, saegold's UTC form out (``2026-11-26T10:00:00.000000Z``).

    A time without a zone is taken as UTC.  A time after ``latest`` (an aware datetime; by
    default this machine's clock plus :data:`CLOCK_SKEW`) is refused: a judgment cannot have
    been made in the future, and one dated there would sort after everything made later."""
    raw = text(rec, "created_at", value, max_chars=64)
    try:
        moment = _dt.datetime.fromisoformat(raw.strip())
    except ValueError:
        raise rec.bad("created_at", f"{raw!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.UTC)
    latest = latest or _dt.datetime.now(_dt.UTC) + CLOCK_SKEW
    if moment > latest:
        clock = (latest - CLOCK_SKEW).strftime("%Y-%m-%d %H:%M:%S UTC")
        raise rec.bad("created_at", f"{raw!r} is in the future (this machine's clock says {clock}; "
                                    f"{int(CLOCK_SKEW.total_seconds() // 60)} minutes of clock skew are allowed)")
    return moment.astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Resolver:
    """Looks up features, labels and earlier events in the open transaction."""

    def __init__(self, project: Project):
        self.project = project
        self.features: dict[tuple[str, int], int | None] = {}

    def feature_id(self, rec: Record, obj: dict) -> int:
        source = text(rec, "source", obj.get("source"), max_chars=MAX_NAME_CHARS)
        if "/" not in source:
            raise rec.bad("source", f"{source!r} is not named MODEL/SOURCE")
        if "feature" not in obj:
            raise rec.bad("feature", "missing: the feature index")
        given = obj["feature"]
        if not isinstance(given, int) or isinstance(given, bool):
            # Judgments are saegold's own format: an index is a JSON integer, never "6" or 6.0
            # (a quoted or float index is a sign the file was produced by something else).
            shown = repr(given) if isinstance(given, (str, float)) else type(given).__name__
            raise rec.bad("feature", f"expected a JSON integer feature index, got {shown}")
        idx = nonneg_int(rec, "feature", given)
        key = (source, idx)
        if key not in self.features:
            self.features[key] = self.project.scalar(
                "SELECT f.id FROM features f JOIN sources s ON s.id = f.source_id "
                "WHERE s.name = ? AND f.idx = ?", [source, idx])
        fid = self.features[key]
        if fid is None:
            known = self.project.scalar("SELECT 1 FROM sources WHERE name = ?", [source])
            raise rec.bad("feature" if known else "source",
                          f"{source} feature {idx} is not in this project"
                          + ("" if known else " (unknown source)") + "; import or score it first")
        return fid

    def label(self, rec: Record, obj: dict, fid: int) -> str:
        """The candidate named by ``label_uuid`` or by ``method``."""
        method = obj.get("method")
        if method is not None:
            method = text(rec, "method", method, max_chars=MAX_NAME_CHARS)
        if obj.get("label_uuid") is not None:
            uuid = text(rec, "label_uuid", obj["label_uuid"], max_chars=MAX_NAME_CHARS)
            row = self.project.query("SELECT feature_id, method, status FROM labels WHERE uuid = ?", [uuid])
            if not row or row[0]["feature_id"] != fid:
                raise rec.bad("label_uuid", f"{uuid} is not a label of this feature in this project")
            if row[0]["status"] != "ok":
                raise rec.bad("label_uuid", f"{uuid} is a failed labelling attempt, not a candidate")
            if method is not None and row[0]["method"] != method:
                raise rec.bad("method", f"label {uuid} is a {row[0]['method']!r} label, not {method!r}")
            return uuid
        if method is None:
            raise rec.bad("method", "missing: name the candidate by its method (or give label_uuid)")
        uuids = [r["uuid"] for r in self.project.query(
            "SELECT uuid FROM labels WHERE feature_id = ? AND method = ? AND status = 'ok' "
            "AND superseded_at IS NULL "
            "ORDER BY created_at, id", [fid, method])]
        if not uuids:
            raise rec.bad("method", f"this feature has no usable {method!r} label")
        if len(uuids) > 1:
            raise rec.bad("method", f"this feature has {len(uuids)} {method!r} labels; "
                                    f"name one by label_uuid")
        return uuids[0]

    def target(self, rec: Record, obj: dict) -> tuple[str, int]:
        uuid = text(rec, "target_uuid", obj.get("target_uuid"), max_chars=MAX_NAME_CHARS)
        fid = self.project.scalar("SELECT feature_id FROM judgments WHERE uuid = ?", [uuid])
        if fid is None:
            raise rec.bad("target_uuid", f"{uuid} names no judgment in this project")
        return uuid, fid


def parse_judgment(rec: Record, resolver: _Resolver) -> dict[str, Any]:
    """Check one record and turn it into an event for :func:`store.judgments.append_many`."""
    obj = rec.value
    if not isinstance(obj, dict):
        raise rec.bad(None, "expected a JSON object")
    unknown = sorted(set(obj) - KNOWN_FIELDS)
    if unknown:
        raise rec.bad(unknown[0], f"unknown field (known: {', '.join(sorted(KNOWN_FIELDS))})")
    kind = obj.get("kind")
    if kind not in KINDS:
        raise rec.bad("kind", f"{kind!r} is not one of {', '.join(KINDS)}")
    annotator = text(rec, "annotator", obj.get("annotator"), max_chars=MAX_NAME_CHARS)
    if annotator != annotator.strip():
        raise rec.bad("annotator", "has leading or trailing whitespace")
    created_at = normalize_time(rec, obj.get("created_at"))
    event: dict[str, Any] = {"annotator": annotator, "kind": kind, "created_at": created_at,
                             "label_uuid": None, "value": None, "confidence": None,
                             "target_uuid": None, "seconds_spent": None, "login": None}
    value, base = obj.get("value"), base_kind(kind)
    if kind == RETRACT:
        event["target_uuid"], target_fid = resolver.target(rec, obj)
        event["feature_id"] = resolver.feature_id(rec, obj) if "source" in obj else target_fid
        if event["feature_id"] != target_fid:
            raise rec.bad("target_uuid", "names a judgment of another feature")
    else:
        event["feature_id"] = resolver.feature_id(rec, obj)
    fid = event["feature_id"]
    if base == "tier":
        if value not in TIERS:
            raise rec.bad("value", f"tier {value!r} is not one of {', '.join(TIERS)}")
        event["value"] = value
    elif base == "verdict":
        if value not in VERDICTS:
            raise rec.bad("value", f"verdict {value!r} is not one of {', '.join(VERDICTS)}")
        event["value"] = value
        event["label_uuid"] = resolver.label(rec, obj, fid)
    elif kind == "preference":
        if value is not None:
            event["value"] = text(rec, "value", value, max_chars=MAX_NAME_CHARS)
        if value != "neither":
            if value is not None and obj.get("method") is None and obj.get("label_uuid") is None:
                obj = {**obj, "method": value}  # {"value": "baez"} names the method too
            event["label_uuid"] = resolver.label(rec, obj, fid)
    elif base in ("gold_label", "note"):
        event["value"] = text(rec, "value", value, max_chars=MAX_TEXT_CHARS)
    elif kind == "flag":
        if value is not None:
            event["value"] = text(rec, "value", value, max_chars=MAX_TEXT_CHARS, allow_empty=True)
    elif value is not None and kind == "skip":
        event["value"] = text(rec, "value", value, max_chars=MAX_TEXT_CHARS, allow_empty=True)
    conf = obj.get("confidence")
    if conf is not None:
        if base != "tier":
            raise rec.bad("confidence", f"only a tier carries a confidence, not a {kind}")
        if not isinstance(conf, int) or isinstance(conf, bool) or not 1 <= conf <= 3:
            raise rec.bad("confidence", f"{conf!r} is not 1, 2 or 3")
        event["confidence"] = conf
    if obj.get("seconds_spent") is not None:
        seconds = finite(rec, "seconds_spent", obj["seconds_spent"])
        if seconds < 0:
            raise rec.bad("seconds_spent", f"{seconds} is negative")
        event["seconds_spent"] = seconds
    if obj.get("login") is not None:
        event["login"] = text(rec, "login", obj["login"], max_chars=MAX_NAME_CHARS)
    if obj.get("uuid") is not None:
        event["uuid"] = text(rec, "uuid", obj["uuid"], max_chars=MAX_NAME_CHARS)
    else:  # no client UUID: derive one from the content, so a re-import is still idempotent
        event["uuid"] = content_uuid("judgment", *(event[k] for k in COMPARED))
    return event


def _check_same(project: Project, rec: Record, event: dict[str, Any],
                seen: dict[str, Record]) -> bool:
    """True when the UUID is already here with the same content; BadInput if it differs,
    naming the earlier record of this import when that is where the UUID came from."""
    rows = project.query(f"SELECT {', '.join(COMPARED)} FROM judgments WHERE uuid = ?", [event["uuid"]])
    if not rows:
        return False
    differs = [k for k in COMPARED if rows[0][k] != event[k]]
    if differs:
        what = differs[0].removesuffix("_id")
        first = seen.get(event["uuid"])
        if first is not None:
            where = f"record {first.where}" + ("" if first.file == rec.file else f" of {first.file}")
            raise rec.bad("uuid", f"{event['uuid']} is also the uuid of {where} in this import, "
                                  f"with a different {what}; each judgment needs its own uuid")
        raise rec.bad("uuid", f"{event['uuid']} is already recorded with a different {what} "
                              f"(by an earlier import or the app)")
    return True


def _import_one(project: Project, rec: Record, resolver: _Resolver, known: set[str],
                report: JudgmentsReport, seen: dict[str, Record]) -> str | None:
    """Append one record's event; return the annotator's name when newly registered."""
    event = parse_judgment(rec, resolver)
    if _check_same(project, rec, event, seen):
        report.existing += 1
        return None
    seen[event["uuid"]] = rec
    added = None
    if event["annotator"] not in known and not is_adjudication(event["kind"]):
        ensure_annotator(project, event["annotator"])
        added = event["annotator"]
    try:
        new = append_many(project, [event])
    except StoreError as exc:
        raise rec.bad("target_uuid" if event["kind"] == RETRACT else "annotator", str(exc)) from None
    except ValueError as exc:
        raise rec.bad(None, str(exc)) from None
    report.new += new
    return added


def import_judgments(project: Project, paths: Iterable[str | Path], *, skip_bad: bool = False,
                     progress: ProgressFn = no_progress, stdin: BinaryIO | None = None) -> JudgmentsReport:
    """Import judgment files in ONE transaction (see the module docstring for the shape).

    A path ``-`` reads ``stdin`` (a binary stream), spooled to a temporary file first."""
    paths = list(paths)
    if STDIN not in map(str, paths):
        return _import_files(project, paths, skip_bad=skip_bad, progress=progress)
    if stdin is None:
        raise BadInput(STDIN_NAME, None, None, "standard input is not available here")
    with tempfile.TemporaryDirectory(prefix="saegold-stdin-") as tmp:
        spooled = Path(tmp) / "stdin"
        with spooled.open("wb") as out:
            shutil.copyfileobj(stdin, out, 1 << 20)
        paths = [spooled if str(p) == STDIN else p for p in paths]
        return _import_files(project, paths, skip_bad=skip_bad, progress=progress,
                             names={spooled: STDIN_NAME})


def _import_files(project: Project, paths: list[str | Path], *, skip_bad: bool, progress: ProgressFn,
                  names: dict[Path, str] | None = None) -> JudgmentsReport:
    names = names or {}
    started = time.perf_counter()
    files, _ignored = expand_paths(paths)
    if not files:
        raise BadInput(", ".join(str(p) for p in paths) or None, None, None, "no files to import")
    report = JudgmentsReport(files=[names.get(p, str(p)) for p in files])
    rejections = Rejections(skip_bad)
    resolver = _Resolver(project)
    known = {r["name"] for r in project.query("SELECT name FROM annotators")}
    seen: dict[str, Record] = {}   # uuid -> the record of this import that added it
    with project.write() as db:
        for i, path in enumerate(files):
            progress("importing files", i, len(files))
            digest, size = file_digest(path)
            accepted, bad_before = 0, len(rejections.items)
            for rec in read_records(path, rejections, progress, name=names.get(path)):
                try:
                    with project.write():  # a savepoint: a rejected record leaves no trace
                        added = _import_one(project, rec, resolver, known, report, seen)
                except BadInput as exc:
                    rejections.reject(exc)
                    continue
                if added:
                    known.add(added)
                    report.annotators_new.append(added)
                accepted += 1
            if accepted == 0 and len(rejections.items) == bad_before:
                # Nothing in it: not an import (no import_log row for nothing), but an error.
                raise BadInput(str(path), None, None, "holds no judgment records (an empty file?); "
                                                      "nothing was imported")
            report.records += accepted
            log_import(db, "judgments", names.get(path, path), digest, size, accepted,
                       len(rejections.items) - bad_before)
        progress("importing files", len(files), len(files))
    report.rejected = rejections.items
    report.seconds = time.perf_counter() - started
    return report
