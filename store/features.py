"""Sources, features, examples, logit tokens and taxonomy scores.

Writers take ``db`` (the sqlite-utils ``Database`` yielded by ``Project.write()``), so a
caller decides how much goes into one transaction.
"""
from __future__ import annotations

from typing import Any

from .sqlite_utils_lib import Database

from . import examples as _ex
from .db import Project, dumps, loads, now
from .errors import StoreError
from .fingerprints import fingerprint_differences, identity_differences, merged_fingerprint, refusal
from .superseded import supersede_taxonomy

CATEGORIES = ("input", "output", "cross", "obscure")


def source_name(model_id: str, sae_id: str) -> str:
    """Sources are named ``MODEL/SOURCE`` as on Neuronpedia."""
    return f"{model_id}/{sae_id}"


def get_or_create_source(db: Database, model_id: str, sae_id: str, *, name: str | None = None,
                         fingerprint: dict[str, Any] | None = None, replace_fingerprint: bool = False,
                         **meta: Any) -> int:
    """Return the source's id (named ``name``, else ``MODEL/SOURCE``), creating it; known
    metadata (hook_name, layer, d_sae, width) fills fields that were empty and never overwrites
    ones that are set.  ``fingerprint`` (what produced the scores about to be written) must
    agree with the stored one (:func:`fingerprint_differences`, checked again here, inside the
    write transaction, against a concurrent run); parts the stored one lacks are added, and
    ``replace_fingerprint`` (``--redo`` of another run) replaces it."""
    name = name or source_name(model_id, sae_id)
    row = db.execute("SELECT id, fingerprint FROM sources WHERE name = ?", [name]).fetchone()
    fields = {k: v for k, v in meta.items() if k in ("hook_name", "layer", "d_sae", "width") and v is not None}
    if row is None:
        cur = db.execute(
            "INSERT INTO sources(name, model_id, sae_id, hook_name, layer, d_sae, width, fingerprint, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [name, model_id, sae_id, fields.get("hook_name"), fields.get("layer"),
             fields.get("d_sae"), fields.get("width"), dumps(fingerprint) if fingerprint else None, now()],
        )
        assert cur.lastrowid is not None   # an INSERT's cursor always has it
        return cur.lastrowid
    if fingerprint is not None:
        stored = loads(row[1])
        if replace_fingerprint:
            new = fingerprint
            if fingerprint_differences(stored, fingerprint):
                # The first run of a --redo to get here replaces (a concurrent shard of the same
                # redo then finds it replaced): the scores made from the old fingerprint go now,
                # in this transaction, so a redo cut short never leaves them counted as done.
                _drop_results(db, row[0], identity=bool(identity_differences(stored, fingerprint)))
                if identity_differences(stored, fingerprint):
                    db.execute("UPDATE sources SET model_id = ?, sae_id = ? WHERE id = ?", [model_id, sae_id, row[0]])
            for key in ("hook_name", "layer", "d_sae", "width"):     # they describe the new run
                if key in fields:
                    db.execute(f"UPDATE sources SET {key} = ? WHERE id = ?", [fields[key], row[0]])
        else:
            diffs = fingerprint_differences(stored, fingerprint)
            if diffs:
                raise StoreError(refusal(name, diffs))
            new = merged_fingerprint(stored, fingerprint)
        if new != stored:
            db.execute("UPDATE sources SET fingerprint = ? WHERE id = ?", [dumps(new), row[0]])
    for key, value in fields.items():
        db.execute(f"UPDATE sources SET {key} = ? WHERE id = ? AND {key} IS NULL", [value, row[0]])
    return row[0]


def _drop_results(db: Database, source_id: int, *, identity: bool) -> None:
    """Results of a source scored from a fingerprint a redo replaces: its taxonomy scores
    (superseded: kept in ``store.superseded``) and, when the model or SAE changed, its steered
    continuations (they carry their settings, not the model they were made on)."""
    fids = [r[0] for r in db.execute("SELECT t.feature_id FROM taxonomy_scores t JOIN features f "
                                     "ON f.id = t.feature_id WHERE f.source_id = ?", [source_id])]
    for fid in fids:
        supersede_taxonomy(db, fid)
    db.execute("DELETE FROM taxonomy_scores WHERE feature_id IN (SELECT id FROM features WHERE source_id = ?)",
               [source_id])
    if identity:
        db.execute("DELETE FROM steering WHERE feature_id IN (SELECT id FROM features WHERE source_id = ?)",
                   [source_id])
        db.execute("DELETE FROM steering_clean WHERE source_id = ?", [source_id])


def upsert_feature(db: Database, source_id: int, idx: int, *, density: float | None = None,
                   max_act: float | None = None, n_tokens_seen: int | None = None) -> int:
    """Return the feature's id; given statistics replace stored ones, None keeps them."""
    db.execute(
        "INSERT INTO features(source_id, idx, density, max_act, n_tokens_seen) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT(source_id, idx) DO UPDATE SET "
        "density = COALESCE(excluded.density, density), "
        "max_act = COALESCE(excluded.max_act, max_act), "
        "n_tokens_seen = COALESCE(excluded.n_tokens_seen, n_tokens_seen)",
        [source_id, idx, density, max_act, n_tokens_seen],
    )
    return db.execute("SELECT id FROM features WHERE source_id = ? AND idx = ?", [source_id, idx]).fetchone()[0]


def put_examples(db: Database, feature_id: int, kind: str, examples: list[dict[str, Any]],
                 origin: str, *, replace: bool = True) -> None:
    """Store examples at ranks 0..n-1 (``tokens``, ``acts``, optional ``token_ids``,
    ``max_idx``, ``max_act``).  With ``replace`` the feature's other ranks of this kind go.
    (Storage: :mod:`store.examples`.)"""
    _ex.put_examples(db, feature_id, kind, examples, origin, replace=replace)


def put_logit_tokens(db: Database, feature_id: int, kind: str,
                     tokens: list[tuple[str, int | None, float | None]]) -> None:
    """Replace the feature's ``kind`` list with ``(token, token_id, value)`` in rank order."""
    db.execute("DELETE FROM logit_tokens WHERE feature_id = ? AND kind = ?", [feature_id, kind])
    conn: Any = getattr(db, "conn", db)   # a sqlite-utils Database, or a bare connection
    conn.executemany(
        "INSERT INTO logit_tokens(feature_id, kind, rank, token, token_id, value) VALUES (?, ?, ?, ?, ?, ?)",
        [(feature_id, kind, rank, token, token_id, value) for rank, (token, token_id, value) in enumerate(tokens)],
    )


def categorize(input_score: float | None, output_score: float | None,
               input_threshold: float, output_threshold: float) -> str | None:
    """Category from two thresholds; None while either score is missing... unless one
    score alone already decides nothing, so both are needed."""
    if input_score is None or output_score is None:
        return None
    is_in, is_out = input_score >= input_threshold, output_score >= output_threshold
    return "cross" if is_in and is_out else "input" if is_in else "output" if is_out else "obscure"


def put_score(db: Database, feature_id: int, *, input_threshold: float, output_threshold: float,
              scorer_version: str, input_score: float | None = None,
              output_score: float | None = None, continuation: str | None = None,
              device: str | None = None, details: dict | None = None) -> None:
    """Store the feature's taxonomy scores; a None score keeps the one already stored."""
    old = db.execute(
        "SELECT input_score, output_score, continuation FROM taxonomy_scores WHERE feature_id = ?", [feature_id]
    ).fetchone()
    if old is not None:
        input_score = old[0] if input_score is None else input_score
        output_score = old[1] if output_score is None else output_score
        continuation = old[2] if continuation is None else continuation
    category = categorize(input_score, output_score, input_threshold, output_threshold)
    db.execute(
        "INSERT INTO taxonomy_scores(feature_id, input_score, output_score, category, input_threshold, "
        "output_threshold, continuation, scorer_version, device, details, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(feature_id) DO UPDATE SET "
        "input_score = excluded.input_score, output_score = excluded.output_score, "
        "category = excluded.category, input_threshold = excluded.input_threshold, "
        "output_threshold = excluded.output_threshold, continuation = excluded.continuation, "
        "scorer_version = excluded.scorer_version, device = excluded.device, "
        "details = excluded.details, created_at = excluded.created_at",
        [feature_id, input_score, output_score, category, input_threshold, output_threshold,
         continuation, scorer_version, device, dumps(details) if details else None, now()],
    )


def recategorize(project: Project, input_threshold: float, output_threshold: float) -> int:
    """Re-derive every stored category from new thresholds; return rows changed."""
    with project.write() as db:
        rows = db.execute("SELECT feature_id, input_score, output_score FROM taxonomy_scores").fetchall()
        for fid, i, o in rows:
            db.execute(
                "UPDATE taxonomy_scores SET category = ?, input_threshold = ?, output_threshold = ? "
                "WHERE feature_id = ?",
                [categorize(i, o, input_threshold, output_threshold), input_threshold, output_threshold, fid],
            )
    return len(rows)


def feature_id(project: Project, source: str, idx: int) -> int | None:
    return project.scalar(
        "SELECT f.id FROM features f JOIN sources s ON s.id = f.source_id WHERE s.name = ? AND f.idx = ?",
        [source, idx],
    )


def examples(project: Project, feature_id: int, kind: str = "top", *,
             limit: int | None = None) -> list[dict[str, Any]]:
    """The feature's examples of ``kind`` in rank order, decoded (see :mod:`store.examples`)."""
    return _ex.examples(project, feature_id, kind, limit=limit)


def logit_tokens(project: Project, feature_id: int, kind: str) -> list[dict[str, Any]]:
    return project.query(
        "SELECT token, token_id, value FROM logit_tokens WHERE feature_id = ? AND kind = ? ORDER BY rank",
        [feature_id, kind],
    )
