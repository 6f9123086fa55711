"""Folding another project database into this one (``saegold merge OTHER.db``).

Annotators who worked on a copy, or on another server, bring their work back with a merge.
Rows are matched by what identifies them across databases, never by row id:

* sources by name (``MODEL/SOURCE``), features by (source name, index);
* judgments and labels by their UUID; bench scores by (label UUID, benchmark, control);
* examples and logit tokens as whole per-feature lists (taken when this project has none);
* NLA explanations by (example, NLA source, token index); annotators by name;
  assignments by (feature, annotator); LLM cache entries by key.

Nothing stored here is overwritten: where both databases hold a different value for the
same thing, this project's value is kept and the difference is reported as a
:class:`Conflict` (settings included).  Empty fields (NULL metadata) are filled in.
Annotator roles are the union: a lead in either database is a lead after the merge (and
reported).  The whole merge is one transaction, and merging the same file twice changes
nothing.  Merged retractions and adjudications pass the same identity rule as
:func:`store.judgments.append`, or the merge is refused as a whole.  So is a damaged OTHER
(dangling references, rows that break this project's CHECK rules, unreadable pages): one
line naming OTHER, the table and the row, and this project is left as it was.
"""
from __future__ import annotations

import json

import os
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .sqlite_utils_lib import Database

from . import settings as _settings
from .db import Project, connect_read_only, dumps, loads, now
from .errors import BadInput, SchemaTooNew, StoreError
from .features import categorize
from .fingerprints import fingerprint_differences, fingerprint_id
from .judgments import COLUMNS as JUDGMENT_COLUMNS
from .judgments import IdentityError, check_identity
from .examples import Vocab, all_examples, example_row, put_example_rows
from .examples import examples as stored_examples
from .labels import LIVE, SUPERSEDING_ORIGIN
from .schema import known_migrations
from .sqlite_errors import is_damaged, translate

ProgressFn = Callable[[str, int, "int | None"], None]

TABLES = ("sources", "features", "examples", "nla_explanations", "logit_tokens",
          "taxonomy_scores", "labels", "bench_scores", "annotators", "assignments",
          "judgments", "llm_cache", "settings")
# Tables merged when OTHER has them (projects of an older saegold may not).
OPTIONAL_TABLES = ("steering", "steering_clean", "superseded_results", "intruder_scores", "active_draws")


@dataclass
class Conflict:
    """A thing both databases hold with different values; ``ours`` was kept."""

    table: str
    key: str
    ours: Any
    theirs: Any
    resolution: str = "kept ours"

    def line(self) -> str:
        return f"{self.table} {self.key}: here {self.ours!r}, other {self.theirs!r} ({self.resolution})"


@dataclass
class MergeReport:
    """What a merge added, found already present, and could not reconcile."""

    other: str
    added: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    present: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    filled: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    conflicts: list[Conflict] = field(default_factory=list)
    nla_skipped: int = 0  # NLA explanations of examples that differ here (they explain other text)
    dry_run: bool = False

    @property
    def changed(self) -> bool:
        return any(self.added.values()) or any(self.filled.values())

    def conflict(self, table: str, key: str, ours: Any, theirs: Any, resolution: str = "kept ours") -> None:
        self.conflicts.append(Conflict(table, key, ours, theirs, resolution))


class _DryRun(Exception):
    """Raised inside the transaction to roll a dry run back."""


def merge(project: Project, other: str | os.PathLike, *, dry_run: bool = False,
          progress: ProgressFn | None = None) -> MergeReport:
    """Fold the project database at ``other`` into ``project`` in one transaction."""
    other_path = Path(other)
    _refuse_self(project.path, other_path)
    src = _open_other(other_path)
    report = MergeReport(other=str(other_path), dry_run=dry_run)
    say = progress or (lambda stage, done, total: None)
    try:
        src.execute("BEGIN")  # one consistent snapshot of OTHER, even while it is written
        try:
            with project.write() as db:
                _Merger(db, src, report, say, other_path).run()
                if dry_run:
                    raise _DryRun
        except _DryRun:
            pass
        except sqlite3.DatabaseError as exc:  # a damaged OTHER (the transaction is rolled back)
            raise StoreError(f"{other_path}: merge failed ({exc}); nothing was merged") from exc
    finally:
        src.close()
    return report


def _refuse_self(ours: Path, other: Path) -> None:
    if not other.exists():
        raise StoreError(f"{other}: no such project database")
    if other.is_dir():
        raise StoreError(f"{other}: is a directory, not a project database")
    try:
        same = ours.exists() and os.path.samefile(ours, other)
    except OSError:
        same = False
    if same:
        raise StoreError(f"{other}: is this project's own database; nothing to merge")


def _open_other(path: Path) -> sqlite3.Connection:
    """A read-only connection to OTHER, refused when OTHER is newer or not a project."""
    try:
        conn, _ = connect_read_only(path, timeout=30, isolation_level=None)
        conn.row_factory = sqlite3.Row
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        err = None if is_damaged(exc) else translate(path, exc)
        raise err or StoreError(f"{path}: not a usable SQLite database ({exc})") from exc
    if "_sqlite_migrations" not in tables:
        conn.close()
        raise StoreError(f"{path}: not a saegold project database (no schema record)")
    applied = [r[0] for r in conn.execute(
        "SELECT name FROM _sqlite_migrations WHERE migration_set = 'saegold'")]
    known = known_migrations()
    unknown = [name for name in applied if name not in known]
    if unknown:
        conn.close()
        raise SchemaTooNew(
            f"{path}: written by a newer saegold (schema step {unknown[-1]!r} is unknown here); "
            f"upgrade saegold before merging it"
        )
    missing = [t for t in TABLES if t not in tables]
    if missing:
        conn.close()
        raise StoreError(f"{path}: not a complete saegold project (missing table {missing[0]!r})")
    return conn


class _Merger:
    """One merge: reads OTHER table by table and folds each into ``db``."""

    def __init__(self, db: Database, src: sqlite3.Connection, report: MergeReport,
                 say: ProgressFn, other_path: Path):
        self.db, self.src, self.report, self.say, self.other_path = db, src, report, say, other_path
        self.source_ids: dict[int, int] = {}     # OTHER source id -> ours
        self.feature_ids: dict[int, int] = {}    # OTHER feature id -> ours
        self.feature_keys: dict[int, str] = {}   # OTHER feature id -> "source#idx" for reports
        self.example_ids: dict[int, int] = {}    # OTHER example id -> ours (same content only)
        self.label_ids: dict[int, int] = {}      # OTHER label id -> ours
        self.label_uuids: dict[int, str] = {}    # OTHER label id -> uuid
        self._columns: dict[str, list[str]] = {}

    # -- helpers -----------------------------------------------------------------------
    def columns(self, table: str) -> list[str]:
        """Columns present in both databases (an older OTHER may lack newer ones)."""
        if table not in self._columns:
            ours = [r[1] for r in self.db.execute(f"PRAGMA table_info({table})").fetchall()]
            theirs = {r[1] for r in self.src.execute(f"PRAGMA table_info({table})").fetchall()}
            self._columns[table] = [c for c in ours if c in theirs]
        return self._columns[table]

    def rows(self, table: str, order: str) -> list[dict[str, Any]]:
        try:
            return [dict(r) for r in self.src.execute(f"SELECT * FROM {table} ORDER BY {order}")]
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.other_path}: cannot read table {table} ({exc}); nothing was merged") from exc

    def insert(self, table: str, row: dict[str, Any], skip: Iterable[str] = ("id",)) -> int:
        cols = [c for c in self.columns(table) if c not in skip and c in row]
        try:
            cur = self.db.execute(
                f"INSERT INTO {table}({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
                [row[c] for c in cols],
            )
        except sqlite3.IntegrityError as exc:
            raise BadInput(str(self.other_path), f"{table} {_row_name(row)}", None,
                           f"breaks a rule of this project's schema ({exc}); nothing was merged") from exc
        self.report.added[table] += 1
        assert cur.lastrowid is not None   # an INSERT's cursor always has it
        return cur.lastrowid

    def ref(self, mapping: dict[int, int], row: dict[str, Any], table: str, fld: str) -> int:
        """Our id for the OTHER id in ``row[fld]``; a dangling reference is bad input."""
        try:
            return mapping[row[fld]]
        except KeyError:
            raise BadInput(str(self.other_path), f"{table} {_row_name(row)}", fld,
                           f"{row[fld]!r} names no row of OTHER; nothing was merged") from None

    def one(self, sql: str, params: list[Any]) -> dict[str, Any] | None:
        cur = self.db.execute(sql, params)
        row = cur.fetchone()
        return None if row is None else dict(zip([d[0] for d in cur.description], row))

    def step(self, table: str, done: int, total: int) -> None:
        if done % 500 == 0 or done == total:
            self.say(f"merge {table}", done, total)

    # -- the merge ---------------------------------------------------------------------
    def run(self) -> None:
        self.sources()
        self.features()
        self.examples()
        self.nla_explanations()
        self.logit_tokens()
        self.taxonomy_scores()
        self.steering()
        self.steering_clean()
        self.labels()
        self.bench_scores()
        self.intruder_scores()
        self.superseded_results()
        self.annotators()
        self.assignments()
        self.active_draws()
        self.judgments()
        self.llm_cache()
        self.settings()

    def sources(self) -> None:
        rows = self.rows("sources", "id")
        for n, r in enumerate(rows, 1):
            ours = self.one("SELECT * FROM sources WHERE name = ?", [r["name"]])
            if ours is None:
                self.source_ids[r["id"]] = self.insert("sources", r)
            else:
                self.source_ids[r["id"]] = ours["id"]
                self.report.present["sources"] += 1
                self._fill("sources", ours, r, ("hook_name", "layer", "d_sae", "width"), f"{r['name']!r}")
                self._fingerprint(ours, r)
            self.step("sources", n, len(rows))

    def _fingerprint(self, ours: dict, theirs: dict) -> None:
        """A source is what produced it: two fingerprints that differ (another model, SAE or
        settings under one name) are a conflict; theirs adds the parts ours lacks.  An unknown
        fingerprint of ours stays unknown (only a score run records one: ours may hold scores
        of something else)."""
        mine, other = loads(ours.get("fingerprint")), loads(theirs.get("fingerprint"))
        if not other or not mine:
            return
        diffs = fingerprint_differences(mine, other)
        if diffs:
            self.report.conflict("sources", f"{ours['name']!r} fingerprint ({'; '.join(diffs)})",
                                 fingerprint_id(mine), fingerprint_id(other))
        elif {**other, **mine} != mine:          # their parts ours lacks
            self.db.execute("UPDATE sources SET fingerprint = ? WHERE id = ?", [dumps({**other, **mine}), ours["id"]])
            self.report.filled["sources"] += 1

    def _fill(self, table: str, ours: dict, theirs: dict, fields: Iterable[str], key: str) -> None:
        """Fill our NULL fields from theirs; report fields where both differ."""
        for f in fields:
            if f not in ours or f not in theirs or theirs[f] is None:
                continue
            if ours[f] is None:
                self.db.execute(f"UPDATE {table} SET {f} = ? WHERE id = ?", [theirs[f], ours["id"]])
                self.report.filled[table] += 1
            elif ours[f] != theirs[f]:
                self.report.conflict(table, f"{key} {f}", ours[f], theirs[f])

    def features(self) -> None:
        names = {r["id"]: r["name"] for r in self.src.execute("SELECT id, name FROM sources")}
        rows = self.rows("features", "id")
        for n, r in enumerate(rows, 1):
            sid = self.ref(self.source_ids, r, "features", "source_id")
            key = f"{names.get(r['source_id'])}#{r['idx']}"
            self.feature_keys[r["id"]] = key
            ours = self.one("SELECT * FROM features WHERE source_id = ? AND idx = ?", [sid, r["idx"]])
            if ours is None:
                self.feature_ids[r["id"]] = self.insert("features", {**r, "source_id": sid})
            else:
                self.feature_ids[r["id"]] = ours["id"]
                self.report.present["features"] += 1
                self._fill("features", ours, r, ("density", "max_act", "n_tokens_seen"), key)
            self.step("features", n, len(rows))

    def _groups(self, table: str, order: str) -> dict[tuple[int, str], list[dict[str, Any]]]:
        groups: dict[tuple[int, str], list[dict[str, Any]]] = defaultdict(list)
        for r in self.rows(table, order):
            groups[(r["feature_id"], r["kind"])].append(r)
        return groups

    def examples(self) -> None:
        """Per (feature, kind) the examples are one ranked list: taken whole or not at all.

        OTHER's examples are read through :func:`store.examples.all_examples`, whatever its
        layout (an OTHER from before schema step m007 keeps JSON lists per row)."""
        try:
            groups: dict[tuple[int, str], list[dict[str, Any]]] = defaultdict(list)
            for r in all_examples(self.src):
                groups[(r["feature_id"], r["kind"])].append(r)
        except (sqlite3.DatabaseError, ValueError) as exc:
            raise StoreError(f"{self.other_path}: cannot read table examples ({exc}); nothing was merged") from exc
        content = ("rank", "tokens", "acts", "max_idx")
        vocabs: dict[int, Vocab] = {}
        for n, ((ofid, kind), theirs) in enumerate(groups.items(), 1):
            fid = self.ref(self.feature_ids, theirs[0], "examples", "feature_id")
            ours = stored_examples(self.db, fid, kind)
            if not ours:
                sid = self.db.execute("SELECT source_id FROM features WHERE id = ?", [fid]).fetchone()[0]
                vocab = vocabs.setdefault(sid, Vocab(self.db, sid))
                rows = []
                for r in theirs:
                    ex = {"tokens": r["tokens"], "token_ids": r["token_ids"], "acts": r["acts"],
                          "max_idx": r["max_idx"], "max_act": r["max_act"]}
                    try:
                        cid, blob, max_idx, max_act = example_row(self.db, sid, ex, vocab)
                    except ValueError as exc:
                        raise BadInput(str(self.other_path), f"examples {_row_name(r)}", None,
                                       f"{exc}; nothing was merged") from None
                    rows.append((fid, kind, r["rank"], r["bin"], cid, blob, max_idx, max_act, r["origin"]))
                try:
                    put_example_rows(self.db, rows)
                except sqlite3.IntegrityError as exc:
                    raise BadInput(str(self.other_path), f"examples {_row_name(theirs[0])}", None,
                                   f"breaks a rule of this project's schema ({exc}); nothing was merged") from exc
                new_ids = {rank: eid for eid, rank in self.db.execute(
                    "SELECT id, rank FROM examples WHERE feature_id = ? AND kind = ?", [fid, kind]).fetchall()}
                for r in theirs:
                    self.example_ids[r["id"]] = new_ids[r["rank"]]
                self.report.added["examples"] += len(theirs)
            else:
                by_rank = {o["rank"]: o for o in ours}
                same = len(ours) == len(theirs) and all(
                    r["rank"] in by_rank and all(by_rank[r["rank"]][c] == r[c] for c in content)
                    for r in theirs)
                if same:
                    self.report.present["examples"] += len(theirs)
                    for r in theirs:
                        self.example_ids[r["id"]] = by_rank[r["rank"]]["id"]
                else:
                    self.report.conflict("examples", f"{self.feature_keys[ofid]} {kind} (count)",
                                         len(ours), len(theirs), "the lists differ: kept ours")
            self.step("examples", n, len(groups))

    def nla_explanations(self) -> None:
        rows = self.rows("nla_explanations", "id")
        for n, r in enumerate(rows, 1):
            eid = self.example_ids.get(r["example_id"])
            if eid is None:  # its example was not taken (ours differ): it would explain other text
                self.report.nla_skipped += 1
                continue
            ours = self.one("SELECT * FROM nla_explanations WHERE example_id = ? AND nla_source = ? "
                            "AND token_index = ?", [eid, r["nla_source"], r["token_index"]])
            if ours is None:
                self.insert("nla_explanations", {**r, "example_id": eid})
            elif ours["text"] != r["text"]:
                self.report.conflict("nla_explanations", f"example {eid} {r['nla_source']} "
                                     f"token {r['token_index']}", ours["text"], r["text"])
            else:
                self.report.present["nla_explanations"] += 1
            self.step("nla_explanations", n, len(rows))

    def logit_tokens(self) -> None:
        groups = self._groups("logit_tokens", "feature_id, kind, rank")
        for n, ((ofid, kind), theirs) in enumerate(groups.items(), 1):
            fid = self.ref(self.feature_ids, theirs[0], "logit_tokens", "feature_id")
            ours = self.db.execute("SELECT rank, token, token_id, value FROM logit_tokens "
                                   "WHERE feature_id = ? AND kind = ? ORDER BY rank", [fid, kind]).fetchall()
            if not ours:
                for r in theirs:
                    self.insert("logit_tokens", {**r, "feature_id": fid}, skip=())
            elif [tuple(o) for o in ours] == [(r["rank"], r["token"], r["token_id"], r["value"]) for r in theirs]:
                self.report.present["logit_tokens"] += len(theirs)
            else:
                self.report.conflict("logit_tokens", f"{self.feature_keys[ofid]} {kind} (first tokens)",
                                     [o[1] for o in ours][:5], [r["token"] for r in theirs][:5],
                                     "the lists differ: kept ours")
            self.step("logit_tokens", n, len(groups))

    def thresholds(self) -> tuple[float, float]:
        """This project's (input, output) thresholds."""
        cfg = _settings.parse({k: loads(v) for k, v in self.db.execute(
            "SELECT key, value FROM settings").fetchall()}, where="this project")
        return cfg.input_threshold, cfg.output_threshold

    def taxonomy_scores(self) -> None:
        rows = self.rows("taxonomy_scores", "feature_id")
        for n, r in enumerate(rows, 1):
            fid = self.ref(self.feature_ids, r, "taxonomy_scores", "feature_id")
            ours = self.one("SELECT * FROM taxonomy_scores WHERE feature_id = ?", [fid])
            if ours is None:
                # The category follows this project's thresholds, as every other one here
                # (OTHER may have fitted and stored its own).
                t_in, t_out = self.thresholds()
                self.insert("taxonomy_scores", {
                    **r, "feature_id": fid, "input_threshold": t_in, "output_threshold": t_out,
                    "category": categorize(r["input_score"], r["output_score"], t_in, t_out)}, skip=())
            else:
                self.report.present["taxonomy_scores"] += 1
                mine = (ours["input_score"], ours["output_score"], ours["category"])
                theirs = (r["input_score"], r["output_score"], r["category"])
                if mine != theirs:
                    self.report.conflict("taxonomy_scores", self.feature_keys[r["feature_id"]], mine, theirs)
            self.step("taxonomy_scores", n, len(rows))

    def _has(self, table: str) -> bool:
        """Whether OTHER has the table (an older saegold's project may lack newer ones)."""
        return self.src.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                                [table]).fetchone() is not None

    def steering(self) -> None:
        """A feature's steered continuations come whole: OTHER's when we have none for it,
        else ours are kept (a conflict when the two differ)."""
        if not self._has("steering"):
            return
        groups: dict[int, list[dict[str, Any]]] = {}
        for r in self.rows("steering", "feature_id, target_kl"):
            groups.setdefault(r["feature_id"], []).append(r)
        for n, theirs in enumerate(groups.values(), 1):
            fid = self.ref(self.feature_ids, theirs[0], "steering", "feature_id")
            ours = self.db.execute("SELECT target_kl, alpha, kl, continuations FROM steering WHERE feature_id = ? "
                                   "ORDER BY target_kl", [fid]).fetchall()
            if not ours:
                for r in theirs:
                    self.insert("steering", {**r, "feature_id": fid}, skip=())
            else:
                self.report.present["steering"] += len(theirs)
                mine = [tuple(x) for x in ours]
                other = [(r["target_kl"], r["alpha"], r["kl"], r["continuations"]) for r in theirs]
                if mine != other:
                    self.report.conflict("steering", self.feature_keys[theirs[0]["feature_id"]],
                                         [(t, a, k) for t, a, k, _ in mine], [(t, a, k) for t, a, k, _ in other])
            self.step("steering", n, len(groups))

    def steering_clean(self) -> None:
        if not self._has("steering_clean"):
            return
        rows = self.rows("steering_clean", "source_id, prompt")
        for n, r in enumerate(rows, 1):
            sid = self.ref(self.source_ids, r, "steering_clean", "source_id")
            ours = self.one("SELECT text FROM steering_clean WHERE source_id = ? AND prompt = ?", [sid, r["prompt"]])
            if ours is None:
                self.insert("steering_clean", {**r, "source_id": sid}, skip=())
            else:
                self.report.present["steering_clean"] += 1
            self.step("steering_clean", n, len(rows))

    def labels(self) -> None:
        rows = self.rows("labels", "id")
        for n, r in enumerate(rows, 1):
            fid = self.ref(self.feature_ids, r, "labels", "feature_id")
            self.label_uuids[r["id"]] = r["uuid"]
            ours = self.one("SELECT id, feature_id, method, text FROM labels WHERE uuid = ?", [r["uuid"]])
            if ours is None:
                r = self.one_live_label({**r, "feature_id": fid})
                self.label_ids[r["id"]] = self.insert("labels", r)
            else:
                self.label_ids[r["id"]] = ours["id"]
                self.report.present["labels"] += 1
                if (ours["feature_id"], ours["method"], ours["text"]) != (fid, r["method"], r["text"]):
                    self.report.conflict("labels", f"uuid {r['uuid']}", (ours["method"], ours["text"]),
                                         (r["method"], r["text"]))
            self.step("labels", n, len(rows))

    def one_live_label(self, r: dict[str, Any]) -> dict[str, Any]:
        """Each feature keeps one live label per method (store.labels): when both databases
        made one (two redos, or one each), the newer stays live and the older is marked
        superseded by it, whichever database it came from."""
        live = r.get("status") == "ok" and not r.get("superseded_at") and r.get("origin") == SUPERSEDING_ORIGIN
        if not live:
            return r
        ours = self.one(f"SELECT uuid, created_at, id FROM labels WHERE feature_id = ? AND method = ? "
                        f"AND origin = ? AND {LIVE}", [r["feature_id"], r["method"], SUPERSEDING_ORIGIN])
        if ours is None:
            return r
        stamp = now()
        if (r["created_at"] or "") > (ours["created_at"] or ""):
            self.db.execute("UPDATE labels SET superseded_by = ?, superseded_at = ? WHERE id = ?",
                            [r["uuid"], stamp, ours["id"]])
            kept, other = r["uuid"], ours["uuid"]
        else:
            r = {**r, "superseded_by": ours["uuid"], "superseded_at": stamp}
            kept, other = ours["uuid"], r["uuid"]
        name = self.one("SELECT s.name || '#' || f.idx AS k FROM features f JOIN sources s ON s.id = f.source_id "
                        "WHERE f.id = ?", [r["feature_id"]])
        self.report.conflict("labels", f"{name['k'] if name else r['feature_id']} method {r['method']!r}", kept, other,
                             f"two live labels: kept the newer ({kept}) live, {other} superseded")
        return r

    def bench_scores(self) -> None:
        rows = self.rows("bench_scores", "id")
        for n, r in enumerate(rows, 1):
            lid = self.ref(self.label_ids, r, "bench_scores", "label_id")
            scored = self.label_ids.get(r["scored_label_id"]) if r["scored_label_id"] is not None else None
            ours = self.one("SELECT * FROM bench_scores WHERE label_id = ? AND benchmark = ? AND control = ?",
                            [lid, r["benchmark"], r["control"]])
            if ours is None:
                self.insert("bench_scores", {**r, "label_id": lid, "scored_label_id": scored})
            else:
                self.report.present["bench_scores"] += 1
                if (ours["value"], ours["n"]) != (r["value"], r["n"]):
                    self.report.conflict("bench_scores", f"label {self.label_uuids[r['label_id']]} "
                                         f"{r['benchmark']} {r['control']}", ours["value"], r["value"])
            self.step("bench_scores", n, len(rows))

    def intruder_scores(self) -> None:
        """Intruder results (one per feature) come along where we have none for the feature;
        one both hold with another value is a conflict (ours kept)."""
        if not self._has("intruder_scores"):
            return
        rows = self.rows("intruder_scores", "id")
        for n, r in enumerate(rows, 1):
            fid = self.ref(self.feature_ids, r, "intruder_scores", "feature_id")
            ours = self.one("SELECT * FROM intruder_scores WHERE feature_id = ?", [fid])
            if ours is None:
                self.insert("intruder_scores", {**r, "feature_id": fid})
            else:
                self.report.present["intruder_scores"] += 1
                if (ours["value"], ours["n"]) != (r["value"], r["n"]):
                    self.report.conflict("intruder_scores", f"feature id {fid}", ours["value"], r["value"])
            self.step("intruder_scores", n, len(rows))

    def superseded_results(self) -> None:
        """Results a redo replaced in OTHER come along (their ids in the kept row mapped to
        ours); one both hold is not doubled."""
        if not self._has("superseded_results"):
            return
        rows = self.rows("superseded_results", "id")
        for n, r in enumerate(rows, 1):
            fid = self.ref(self.feature_ids, r, "superseded_results", "feature_id")
            lid = self.ref(self.label_ids, r, "superseded_results", "label_id") if r["label_id"] is not None else None
            kept = json.loads(r["row"])
            kept.pop("id", None)
            if "feature_id" in kept:
                kept["feature_id"] = fid
            if kept.get("label_id") is not None:
                kept["label_id"] = lid
            if kept.get("scored_label_id") is not None:
                kept["scored_label_id"] = self.label_ids.get(kept["scored_label_id"])
            row = json.dumps(kept, ensure_ascii=False, separators=(",", ":"))
            same = [json.loads(x[0]) for x in self.db.execute(
                "SELECT row FROM superseded_results WHERE tbl = ? AND feature_id = ? AND label_id IS ? "
                "AND superseded_at = ?", [r["tbl"], fid, lid, r["superseded_at"]])]
            if any({k: v for k, v in x.items() if k != "id"} == kept for x in same):
                self.report.present["superseded_results"] += 1
            else:
                self.insert("superseded_results", {**r, "feature_id": fid, "label_id": lid, "row": row})
            self.step("superseded_results", n, len(rows))

    def annotators(self) -> None:
        for r in self.rows("annotators", "name"):
            ours = self.one("SELECT * FROM annotators WHERE name = ?", [r["name"]])
            if ours is None:
                self.insert("annotators", r, skip=())
            else:
                self.report.present["annotators"] += 1
                if ours["role"] != r["role"]:
                    if r["role"] == "lead":
                        self.db.execute("UPDATE annotators SET role = 'lead' WHERE name = ?", [r["name"]])
                        self.report.filled["annotators"] += 1
                    self.report.conflict("annotators", f"{r['name']!r} role", ours["role"], r["role"],
                                         "lead in either database: lead")

    def assignments(self) -> None:
        rows = self.rows("assignments", "annotator, position")
        for n, r in enumerate(rows, 1):
            fid = self.ref(self.feature_ids, r, "assignments", "feature_id")
            ours = self.one("SELECT position FROM assignments WHERE feature_id = ? AND annotator = ?",
                            [fid, r["annotator"]])
            if ours is None:
                self.insert("assignments", {**r, "feature_id": fid}, skip=())
            else:
                self.report.present["assignments"] += 1
                if ours["position"] != r["position"]:
                    self.report.conflict("assignments", f"{self.feature_keys[r['feature_id']]} "
                                         f"{r['annotator']!r} position", ours["position"], r["position"])
            self.step("assignments", n, len(rows))

    def active_draws(self) -> None:
        """The active queue's draws (issue 16) come along, so the judgments they led to keep the
        probabilities the estimates reweight by (without them an actively drawn judgment would
        count as a uniform one).  A draw both hold (same feature, annotator, time, probability)
        is not doubled.  ``active_weights`` stay ours: they are a cache of the next draws'
        weights, recomputed from the merged judgments."""
        if not self._has("active_draws"):
            return
        rows = self.rows("active_draws", "id")
        for n, r in enumerate(rows, 1):
            fid = self.ref(self.feature_ids, r, "active_draws", "feature_id")
            ours = self.one("SELECT id FROM active_draws WHERE feature_id = ? AND annotator = ? AND created_at = ? "
                            "AND probability = ? AND assigned = ?",
                            [fid, r["annotator"], r["created_at"], r["probability"], r["assigned"]])
            if ours is None:
                self.insert("active_draws", {**r, "feature_id": fid})
            else:
                self.report.present["active_draws"] += 1
            self.step("active_draws", n, len(rows))

    def judgments(self) -> None:
        rows = self.rows("judgments", "seq")
        new: list[dict[str, Any]] = []
        compare = [c for c in JUDGMENT_COLUMNS if c not in ("uuid", "feature_id")]
        for n, r in enumerate(rows, 1):
            fid = self.ref(self.feature_ids, r, "judgments", "feature_id")
            ours = self.one("SELECT * FROM judgments WHERE uuid = ?", [r["uuid"]])
            if ours is None:
                row = {**r, "feature_id": fid}
                self.insert("judgments", row, skip=("seq",))
                new.append(row)
            else:
                self.report.present["judgments"] += 1
                diff = [c for c in compare if c in ours and ours[c] != r.get(c)]
                if ours["feature_id"] != fid:
                    diff.insert(0, "feature")
                if diff:
                    self.report.conflict("judgments", f"uuid {r['uuid']} {diff[0]}",
                                         ours.get(diff[0], ours["feature_id"]), r.get(diff[0], r["feature_id"]))
            self.step("judgments", n, len(rows))
        self._check_identity(new)

    def _check_identity(self, new: list[dict[str, Any]]) -> None:
        """Merged retractions/adjudications obey the rule :func:`store.judgments.append`
        enforces (:func:`store.judgments.check_identity`)."""
        for ev in new:
            try:
                check_identity(self.db, ev)
            except IdentityError as exc:
                why = ("retracts an event that is in neither database" if exc.field == "target_uuid"
                       else str(exc))
                raise BadInput(str(self.other_path), f"judgment {ev['uuid']}", exc.field,
                               f"{why}; nothing was merged") from None

    def llm_cache(self) -> None:
        rows = self.rows("llm_cache", "key")
        for n, r in enumerate(rows, 1):
            if self.db.execute("SELECT 1 FROM llm_cache WHERE key = ?", [r["key"]]).fetchone():
                self.report.present["llm_cache"] += 1
            else:
                self.insert("llm_cache", r, skip=())
            self.step("llm_cache", n, len(rows))

    def settings(self) -> None:
        """Settings are never changed by a merge; differences in effect are reported."""
        theirs = {}
        for r in self.rows("settings", "key"):
            try:
                theirs[r["key"]] = loads(r["value"])
            except ValueError:
                raise BadInput(str(self.other_path), f"settings key {r['key']}", "value",
                               "is not JSON; nothing was merged") from None
        ours = {r[0]: loads(r[1]) for r in self.db.execute("SELECT key, value FROM settings").fetchall()}
        for key in sorted(set(theirs) | set(ours)):
            default = _settings.DEFAULTS.get(key)
            mine, other = ours.get(key, default), theirs.get(key, default)
            if dumps(mine) != dumps(other):
                self.report.conflict("settings", key, mine, other)
            else:
                self.report.present["settings"] += 1


def _row_name(row: dict[str, Any]) -> str:
    """How a report names a row of OTHER: its uuid, name, key or id."""
    for key in ("uuid", "name", "key", "id", "seq"):
        if row.get(key) is not None:
            return f"{key} {row[key]}"
    return "row"

