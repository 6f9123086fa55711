"""Who judges what, in which order: assignments (leases), per-annotator progress, the review queue.

Assignment is lazy: an annotator is handed features a few at a time as they work.  Each
feature goes to ``overlap`` annotators (project setting), so agreement can be measured;
features already taken by someone else (but not yet by ``overlap`` people) come first, so
pairs complete early.  The order is stratified by predicted category: round-robin over
input / output / cross / obscure / unscored, each category in a seeded per-annotator
pseudo-random order, so gold data covers every category from the start.

A batch is chosen from indexes in a read transaction, holding up no writer, and written in
a short ``BEGIN IMMEDIATE`` transaction that first checks the choice still holds (see
:func:`assign_more`), so many annotator processes starting at once never over-assign a
feature.

Assignments are leases, not hoards (DESIGN.md, store principles).  An assignment on which
its annotator has written no event yet is a *lease*: ``renewed_at`` says when the annotator
last showed they are working on it.  The app keeps only a few (:data:`LOOKAHEAD`: the feature
on screen and the next ones), renews them while the annotator works, and releases them on
quit; a lease idle longer than the project setting ``lease_idle_minutes`` is released by the
next top-up of any annotator (:func:`top_up`) or by ``saegold queue --release-expired``.  A
released lease is a deleted assignment row, so every rule below (who holds a feature) reads
the table as it is.  The annotator's first event on a feature ends its lease
(``renewed_at`` NULL, :func:`hold`): from then on the judgment holds the feature, for good.
Overlap counts judgments and live leases, never released ones.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from . import settings
from .db import Project, dumps, explain_db_error, now
from .errors import StoreError
from .examples import has_top
from .features import CATEGORIES
# ``kind NOT IN _NOT_HOLDING``: the events that make their author one of a feature's
# annotators (store.judgments.NOT_HOLDING), in the words of the index judgments_holders.
from .judgments import NOT_HOLDING_SQL as _NOT_HOLDING
from .judgments import FeatureJudgment, derive, ensure_annotator, own_view

QUEUE_CATEGORIES = (*CATEGORIES, "unscored")
BATCH = 100      # assign_more's default batch (scripts, tests); the app keeps LOOKAHEAD leases
LOOKAHEAD = 4    # leases the app tops up to: the feature on screen and up to three after it


def annotator_seed(annotator: str) -> int:
    """A stable 32-bit seed for one annotator's order."""
    return int.from_bytes(hashlib.sha256(annotator.encode()).digest()[:4], "big")


def _key(col: str) -> str:
    """Seeded pseudo-random sort key of feature id ``col``, in SQL: multiply (mod 2^32),
    xor the seed, multiply again.  SQLite has no xor operator: a ^ b == (a | b) - (a & b)."""
    h = f"(({col} * 2654435761) % 4294967296)"
    return f"(({h} | :seed) - ({h} & :seed)) * 2246822519 % 4294967296"


# Features annotators other than :who hold (assigned, or judged without an assignment), with
# how many of them hold each, and of those the first :n per category in :who's order that
# still have room, are not :who's already and have examples.  The union merges two index
# scans (assignments' key, schema m003's judgments_holders) in (feature, annotator) order.
_STARTED = f"""
WITH held(fid, taken) AS (
    SELECT fid, COUNT(*) FROM (
        SELECT feature_id AS fid, annotator FROM assignments WHERE annotator != :who
        UNION
        SELECT feature_id, annotator FROM judgments
        WHERE annotator != :who AND kind NOT IN {_NOT_HOLDING}
        ORDER BY 1, 2
    ) GROUP BY fid
), cand AS (
    SELECT h.fid, COALESCE(t.category, 'unscored') AS cat, {_key('h.fid')} AS k
    FROM held h LEFT JOIN taxonomy_scores t ON t.feature_id = h.fid
    WHERE h.taken < :overlap
      AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.feature_id = h.fid AND a.annotator = :who)
      AND {has_top('h.fid')} = 1
)
SELECT fid, cat FROM (
    SELECT fid, cat, ROW_NUMBER() OVER (PARTITION BY cat ORDER BY k, fid) AS rn FROM cand
) WHERE rn <= :n ORDER BY cat, rn
"""

# A feature nobody holds yet: no assignment at all (:who's included) and no judgment by
# another annotator; and it has examples to show.
_FRESH = f"""
    NOT EXISTS (SELECT 1 FROM assignments a WHERE a.feature_id = s.fid)
    AND NOT EXISTS (SELECT 1 FROM judgments j WHERE j.feature_id = s.fid AND j.annotator != :who
                    AND j.kind NOT IN {_NOT_HOLDING})
    AND {has_top('s.fid')} = 1
"""

# The first :m features of one category in the annotator's order (from the category index,
# without looking at anything else), of which the first :need nobody holds.  The inner LIMIT
# keeps the per-feature checks to those :m features.
_FRESH_SCORED = f"""
SELECT fid FROM (
    SELECT feature_id AS fid, {_key('feature_id')} AS k FROM taxonomy_scores
    WHERE category = :cat ORDER BY k, fid LIMIT :m
) s WHERE {_FRESH} ORDER BY k, fid LIMIT :need
"""
_FRESH_UNSCORED = f"""
SELECT fid FROM (
    SELECT f.id AS fid, {_key('f.id')} AS k FROM features f
    WHERE NOT EXISTS (SELECT 1 FROM taxonomy_scores t
                      WHERE t.feature_id = f.id AND t.category IS NOT NULL)
    ORDER BY k, fid LIMIT :m
) s WHERE {_FRESH} ORDER BY k, fid LIMIT :need
"""


def _category_size(db: sqlite3.Connection, cat: str) -> int:
    """How many features the category holds (every score row has its feature: foreign key)."""
    if cat != "unscored":
        return db.execute("SELECT COUNT(*) FROM taxonomy_scores WHERE category = ?", [cat]).fetchone()[0]
    return db.execute(
        "SELECT (SELECT COUNT(*) FROM features) - (SELECT COUNT(*) FROM taxonomy_scores)"
        " + (SELECT COUNT(*) FROM taxonomy_scores WHERE category IS NULL)"
    ).fetchone()[0]


def _pick(project: Project, annotator: str, n: int, avoid: frozenset[int] = frozenset()) -> list[int]:
    """The next ``n`` features for ``annotator``, in queue order (reads only).

    Each feature goes to ``overlap`` annotators: those assigned it, and those who judged it
    without an assignment.  Per category, features others already hold come first (so pairs
    complete early), then features nobody holds, each part in the annotator's seeded order;
    the categories take turns (input, output, cross, obscure, unscored).  Only features with
    top examples are handed out; those in ``avoid`` are left out (each category's order is
    read that many further, so the rest is the rule as if they did not exist).
    """
    db = project.db.conn
    overlap = settings.load(project).overlap
    if n <= 0 or overlap <= 0:
        return []
    wanted, n = n, n + len(avoid)
    params = {"seed": annotator_seed(annotator), "who": annotator, "overlap": overlap, "n": n}
    per_cat: dict[str, list[int]] = {c: [] for c in QUEUE_CATEGORIES}
    for fid, cat in db.execute(_STARTED, params).fetchall():
        per_cat[cat].append(fid)
    mine = db.execute("SELECT COUNT(*) FROM assignments WHERE annotator = ?", [annotator]).fetchone()[0]
    for k, cat in enumerate(QUEUE_CATEGORIES):
        # The categories take turns, one feature each per round: once the first ``wanted``
        # categories each have a feature, the first round alone fills the order, and the
        # later categories need not be read (each read scans its category: issue 17).
        if k >= wanted and all(_kept(per_cat[c], avoid) for c in QUEUE_CATEGORIES[:wanted]):
            break
        need = n - len(per_cat[cat])
        if need <= 0:
            continue
        sql = _FRESH_UNSCORED if cat == "unscored" else _FRESH_SCORED
        # Look at the first m features of the category in the annotator's order; those they
        # already have or others hold are passed over, so look further when too few were free
        # (up to the category's size, counted only then).
        m, size = 2 * n + mine, None
        while True:
            fresh = [r[0] for r in db.execute(sql, {**params, "cat": cat, "m": m, "need": need})]
            if len(fresh) < need and size is None:
                size = _category_size(db, cat)
            if len(fresh) == need or m >= size:
                per_cat[cat] += fresh
                break
            m *= 4
    if avoid:
        per_cat = {c: [f for f in fids if f not in avoid][:wanted] for c, fids in per_cat.items()}
    order = [per_cat[c][rn] for rn in range(wanted) for c in QUEUE_CATEGORIES if rn < len(per_cat[c])]
    return order[:wanted]


def _kept(fids: list[int], avoid: frozenset[int]) -> bool:
    """Does this category still have a feature once ``avoid`` is left out?"""
    return any(f not in avoid for f in fids)


# Tries at choosing outside the write lock before choosing under it (see assign_more).
_TRIES = 2


def assign_more(project: Project, annotator: str, n: int | None = None, *,
                avoid: Iterable[int] = ()) -> int:
    """Hand ``annotator`` up to ``n`` (default :data:`BATCH`) more features; return how many
    were assigned.

    The batch is chosen in a read transaction, so no writer (the annotator's own judgments
    included) waits while it is chosen, and written in a short ``BEGIN IMMEDIATE``
    transaction.  That transaction takes the batch as chosen if nothing was committed in
    between (``PRAGMA data_version``), or if the batch is full and every feature in it still
    goes to this annotator under the rules (not theirs yet, fewer than ``overlap`` holders,
    top examples).  Otherwise the batch is chosen again; after :data:`_TRIES` tries, inside
    the write transaction.  So many annotator processes starting at once never over-assign
    a feature.  Features in ``avoid`` are passed over (the rule as if they did not exist).
    """
    return _assign(project, annotator, BATCH if n is None else n, frozenset(avoid))


def _assign(project: Project, annotator: str, n: int, avoid: frozenset[int],
            then: Any = None) -> int:
    """:func:`assign_more`; ``then()`` runs inside the transaction that writes the batch
    (so a top-up commits once: :func:`top_up`)."""
    kw = {"avoid": avoid} if avoid else {}

    def insert(chosen: list[int]) -> int:
        got = _insert(project, annotator, chosen)
        if then is not None:
            then()
        return got

    if settings.load(project).queue_order == "active":
        # Active order: draws are recorded with what they hand out, so choose and write in one
        # write transaction (a draw never recorded never happened).
        with project.write():
            chosen, draws = _pick_active(project, annotator, n, avoid)
            _record_draws(project, annotator, draws)
            return insert(chosen)
    if project.db.conn.in_transaction:  # inside a caller's transaction: choose and write in it
        with project.write():
            return insert(_pick(project, annotator, n, **kw))
    for _ in range(_TRIES):
        chosen, version = _pick_snapshot(project, annotator, n, **kw)
        with project.write() as db:
            if _data_version(db.conn) == version or (
                    len(chosen) == n and _still_free(project, annotator, chosen)):
                return insert(chosen)
    with project.write():
        return insert(_pick(project, annotator, n, **kw))


# -- the active order (issue 16; engine.stats.active holds the statistics) ----------------

#: Share of each draw's probability spread uniformly over all judgeable features (engine.stats.active
#: .UNIFORM_SHARE says the same; a test keeps them equal).
ACTIVE_UNIFORM_SHARE = 0.2
# Features someone holds (assigned, or judged without an assignment).
_HELD = f"""SELECT feature_id FROM assignments UNION
    SELECT feature_id FROM judgments WHERE kind NOT IN {_NOT_HOLDING}"""


def sampling_frame(project: Project) -> set[int]:
    """The queue's sampling frame: every feature it can hand out (those with top examples).  A
    feature the score job kept without examples (a dead one) is never handed out."""
    return {r[0] for r in project.db.conn.execute(f"SELECT f.id FROM features f WHERE {has_top('f.id')} = 1")}


def active_population(project: Project) -> tuple[list[int], list[float]]:
    """The features the active queue draws from (every feature with top examples) and the
    probability of drawing each: (1 - u) w / sum w + u / M (u = ACTIVE_UNIFORM_SHARE); a
    feature without a stored weight weighs the mean of the stored ones (all equal: uniform)."""
    rows = project.db.conn.execute(
        f"SELECT f.id, w.weight FROM features f LEFT JOIN active_weights w ON w.feature_id = f.id "
        f"WHERE {has_top('f.id')} = 1 ORDER BY f.id").fetchall()
    ids = [r[0] for r in rows]
    known = [r[1] for r in rows if r[1] is not None]
    mean = sum(known) / len(known) if known else 1.0
    w = [r[1] if r[1] is not None else mean for r in rows]
    total, m = sum(w), len(ids)
    if not m:
        return [], []
    if not total > 0:
        return ids, [1.0 / m] * m
    u = ACTIVE_UNIFORM_SHARE
    return ids, [(1 - u) * x / total + u / m for x in w]


def _pick_active(project: Project, annotator: str, n: int, avoid: frozenset[int]
                 ) -> tuple[list[int], list[tuple[int, float, int, int]]]:
    """The next ``n`` features in the active order, and the draws behind them.

    Features others hold that still have room come first (pairs complete early, as in the
    stratified order; no draw: the feature was drawn when first handed out).  Then draws with
    replacement from every judgeable feature with :func:`active_population`'s probabilities,
    seeded by the annotator and the draws so far: a draw of a free feature hands it out
    (assigned 1); a draw of a feature already held, or in ``avoid``, is a repeat (assigned 0:
    no new judgment, kept for the estimates).  Returns (chosen, [(feature, probability, pool,
    assigned)])."""
    import random

    db = project.db.conn
    overlap = settings.load(project).overlap
    if n <= 0 or overlap <= 0:
        return [], []
    params = {"seed": annotator_seed(annotator), "who": annotator, "overlap": overlap, "n": n + len(avoid)}
    started = [fid for fid, _ in db.execute(_STARTED, params).fetchall() if fid not in avoid][:n]
    need = n - len(started)
    if need <= 0:
        return started, []
    ids, prob = active_population(project)
    held = {r[0] for r in db.execute(_HELD)}
    taken = held | set(avoid) | set(started)
    free = [fid for fid in ids if fid not in taken]
    if not free:
        return started, []
    done = db.execute("SELECT COUNT(*) FROM active_draws").fetchone()[0]
    rng = random.Random(annotator_seed(annotator) * 1_000_003 + done)
    cum, acc = [], 0.0
    for p in prob:
        acc += p
        cum.append(acc)
    chosen: list[int] = []
    draws: list[tuple[int, float, int, int]] = []
    by_id = dict(zip(ids, prob))
    limit = 200 * need + 10_000  # repeats are free; the uniform share reaches every free feature
    while len(chosen) < need and len(draws) < limit:
        for fid in rng.choices(ids, cum_weights=cum, k=4 * need + 16):
            new = fid not in taken
            draws.append((fid, by_id[fid], len(ids), int(new)))
            if new:
                chosen.append(fid)
                taken.add(fid)
                if len(chosen) == need:
                    break
    return started + chosen, draws


def _record_draws(project: Project, annotator: str, draws: list[tuple[int, float, int, int]]) -> None:
    """Append the draws (inside the write transaction that hands out their features)."""
    if draws:
        stamp_ = now()
        project.db.conn.executemany(
            "INSERT INTO active_draws(feature_id, annotator, probability, pool, assigned, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)", [(f, annotator, p, m, a, stamp_) for f, p, m, a in draws])


def set_active_weights(project: Project, weights: dict[int, float], *, mark: str | None = None,
                       reason: str = "") -> int:
    """Replace the active queue's sampling weights (engine.stats.active computes them), with
    the :func:`active_inputs_mark` taken before they were computed (None: take it now)."""
    stamp_ = now()
    with project.write() as db:
        db.execute("DELETE FROM active_weights")
        db.conn.executemany("INSERT INTO active_weights(feature_id, weight, updated_at) VALUES (?, ?, ?)",
                            [(int(f), float(w), stamp_) for f, w in weights.items()])
        db.execute("INSERT OR REPLACE INTO active_weights_state(id, mark, reason, n, computed_at) "
                   "VALUES (1, ?, ?, ?, ?)",
                   [mark if mark is not None else active_inputs_mark(project), reason, len(weights), stamp_])
    return len(weights)


# What the sampling weights derive from, as (name, SQL of a few cheap aggregates): every
# change to it moves one of them.  Judgments are an append-only log (highest seq); labels,
# taxonomy and benchmark results are added (count, highest id) or redone (the replaced row is
# archived in superseded_results: its highest id) and labels superseded (count of them);
# categories are re-derived in place only from new thresholds (the stored setting).
_MARK_PARTS = (
    ("judgments", "SELECT COALESCE(MAX(seq), 0) FROM judgments"),
    ("features", "SELECT COUNT(*), COALESCE(MAX(id), 0) FROM features"),
    ("labels", "SELECT COUNT(*), COALESCE(MAX(id), 0), COUNT(superseded_by) FROM labels"),
    ("taxonomy", "SELECT COUNT(*) FROM taxonomy_scores"),
    # categories are re-derived in place when the thresholds change (store.settings)
    ("thresholds", "SELECT json_group_array(key || '=' || value) FROM (SELECT key, value FROM settings "
                   "WHERE key IN ('input_threshold', 'output_threshold') ORDER BY key)"),
    ("bench", "SELECT COUNT(*), COALESCE(MAX(id), 0) FROM bench_scores"),
    ("intruder", "SELECT COUNT(*), COALESCE(MAX(id), 0) FROM intruder_scores"),
    ("redone", "SELECT COALESCE(MAX(id), 0) FROM superseded_results"),
)


def active_inputs_mark(project: Project) -> str:
    """A cheap fingerprint (a few index probes and counts, milliseconds) of everything the
    active queue's sampling weights derive from: judgments, features, labels, taxonomy and
    benchmark results.  Equal marks: nothing the weights use changed in between."""
    import json

    db = project.db.conn
    return json.dumps({name: list(db.execute(sql).fetchone()) for name, sql in _MARK_PARTS},
                      separators=(",", ":"))


@dataclass
class ActiveWeightsState:
    """Whether the active queue's sampling weights are current."""

    state: str  # 'missing' (never computed) | 'stale' (judgments or results changed since) | 'fresh'
    computed_at: str | None = None
    reason: str = ""
    n: int = 0


def active_weights_state(project: Project) -> ActiveWeightsState:
    """'missing', 'stale' or 'fresh' (:func:`active_inputs_mark` equal to the one stored with them)."""
    row = project.db.conn.execute(
        "SELECT mark, reason, n, computed_at FROM active_weights_state WHERE id = 1").fetchone()
    if row is None:
        return ActiveWeightsState("missing")
    state = "fresh" if row[0] == active_inputs_mark(project) else "stale"
    return ActiveWeightsState(state, row[3], row[1], row[2])


def active_draws(project: Project) -> list[tuple[int, float, int]]:
    """Every draw of the active queue: (feature, probability, pool)."""
    return [(r[0], r[1], r[2]) for r in project.db.execute(
        "SELECT feature_id, probability, pool FROM active_draws ORDER BY id")]


# How many of the features :ids (a JSON list) still go to :who: not theirs yet, fewer than
# :overlap holders, top examples.
_STILL_FREE = f"""
SELECT COUNT(*) FROM json_each(:ids) c
WHERE NOT EXISTS (SELECT 1 FROM assignments a WHERE a.feature_id = c.value AND a.annotator = :who)
  AND EXISTS (SELECT 1 FROM examples e WHERE e.feature_id = c.value AND e.kind = 'top')
  AND (SELECT COUNT(*) FROM (
           SELECT annotator FROM assignments WHERE feature_id = c.value
           UNION
           SELECT annotator FROM judgments
           WHERE feature_id = c.value AND annotator != :who AND kind NOT IN {_NOT_HOLDING}
      )) < :overlap
"""


def _still_free(project: Project, annotator: str, chosen: list[int]) -> bool:
    """Does every feature in ``chosen`` still go to ``annotator`` (read inside the write
    transaction)?"""
    overlap = settings.load(project).overlap
    free = project.db.conn.execute(
        _STILL_FREE, {"ids": dumps(chosen), "who": annotator, "overlap": overlap}).fetchone()[0]
    return free == len(set(chosen))


def _data_version(conn: sqlite3.Connection) -> int:
    """Changes when another connection (any process) commits to the database."""
    return conn.execute("PRAGMA data_version").fetchone()[0]


def _pick_snapshot(project: Project, annotator: str, n: int,
                   avoid: frozenset[int] = frozenset()) -> tuple[list[int], int]:
    """:func:`_pick` on one consistent snapshot, and the data version it saw."""
    conn = project.db.conn
    try:
        conn.execute("BEGIN")
        try:
            chosen = _pick(project, annotator, n, avoid) if avoid else _pick(project, annotator, n)
            return chosen, _data_version(conn)
        finally:
            conn.execute("COMMIT")
    except sqlite3.DatabaseError as exc:
        err = explain_db_error(project.path, exc)
        if err is None:
            raise
        raise err from exc


def _insert(project: Project, annotator: str, chosen: list[int], *, lease: bool = True) -> int:
    """Append ``chosen`` to the annotator's queue (inside a write transaction), as leases
    renewed now (or, ``lease=False``, held by the event being written with them)."""
    ensure_annotator(project, annotator)
    conn = project.db.conn
    start = conn.execute(
        "SELECT COALESCE(MAX(position), -1) + 1 FROM assignments WHERE annotator = ?", [annotator]
    ).fetchone()[0]
    stamp = now()
    conn.executemany(
        "INSERT OR IGNORE INTO assignments(feature_id, annotator, position, created_at, renewed_at) "
        "VALUES (?, ?, ?, ?, ?)",
        [(fid, annotator, start + i, stamp, stamp if lease else None) for i, fid in enumerate(chosen)],
    )
    return len(chosen)


# -- leases ------------------------------------------------------------------------------

# The assignment's annotator holds the feature by a judgment (any event but a retraction or
# an adjudication, as for overlap): the row is no lease, and is never released.
_JUDGED = f"""EXISTS (SELECT 1 FROM judgments j WHERE j.feature_id = assignments.feature_id
    AND j.annotator = assignments.annotator AND j.kind NOT IN {_NOT_HOLDING})"""
_LEASE = f"assignments.renewed_at IS NOT NULL AND NOT {_JUDGED}"


class LeaseLost(StoreError):
    """The annotator's lease on a feature was released and the feature went to others."""


def stamp(t: _dt.datetime) -> str:
    """A time as the store writes it (:func:`store.db.now`'s format, UTC)."""
    return t.astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _utc(at: _dt.datetime | None) -> _dt.datetime:
    return at if at is not None else _dt.datetime.now(_dt.UTC)


def parse_stamp(text: str) -> _dt.datetime | None:
    """A stored time (with or without fractions, ``Z`` or an offset); None if unreadable."""
    try:
        t = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None
    return t if t.tzinfo else t.replace(tzinfo=_dt.UTC)


def idle_limit(project: Project) -> _dt.timedelta:
    """How long a lease may stay idle (project setting ``lease_idle_minutes``)."""
    return _dt.timedelta(minutes=settings.get(project, "lease_idle_minutes"))  # checked: > 0


def _cutoff(project: Project, at: _dt.datetime | None) -> str:
    """Leases last renewed before this time are expired."""
    return stamp(_utc(at) - idle_limit(project))


def release_expired(project: Project, *, at: _dt.datetime | None = None) -> int:
    """Release every annotator's leases idle past the limit (as of ``at``, default now);
    return how many.  Rows whose annotator has judged the feature since stop being leases."""
    cutoff = _cutoff(project, at)
    with project.write() as db:
        db.execute(f"UPDATE assignments SET renewed_at = NULL WHERE renewed_at IS NOT NULL AND {_JUDGED}")
        return db.execute(f"DELETE FROM assignments WHERE renewed_at < ? AND {_LEASE}", [cutoff]).rowcount


def release(project: Project, annotator: str, feature_ids: Iterable[int] | None = None) -> int:
    """Release the annotator's leases (all, or those on ``feature_ids``); return how many.
    What they judged stays theirs."""
    sql, params = f"DELETE FROM assignments WHERE annotator = ? AND {_LEASE}", [annotator]
    if feature_ids is not None:
        sql += " AND feature_id IN (SELECT value FROM json_each(?))"
        params.append(dumps(sorted(set(feature_ids))))
    with project.write() as db:
        return db.execute(sql, params).rowcount


def _leased(project: Project, annotator: str) -> set[int]:
    return {r[0] for r in project.db.execute(
        f"SELECT feature_id FROM assignments WHERE annotator = ? AND {_LEASE}", [annotator])}


def top_up(project: Project, annotator: str, keep: Iterable[int] = (), ahead: int = LOOKAHEAD, *,
           avoid: Iterable[int] = (), at: _dt.datetime | None = None) -> int:
    """The app's lease keeping for ``annotator``; return how many features were handed out.

    ``keep`` names the features the app opens next (the one on screen and those after it).
    Their leases are renewed and every annotator's expired leases released (one short write
    transaction); features are handed out until the annotator holds ``ahead`` of them
    (:func:`assign_more`); then the annotator's other leases (features they passed over
    without judging) are released, after the choice (in the transaction that writes the new
    ones: a top-up commits twice), so the features handed out are new ones; ``avoid``
    (features the app has behind the annotator) are not handed out again.
    """
    keep = set(keep)
    with project.write() as db:
        db.execute(
            "UPDATE assignments SET renewed_at = ? WHERE annotator = ? AND renewed_at IS NOT NULL "
            "AND feature_id IN (SELECT value FROM json_each(?))", [stamp(_utc(at)), annotator, dumps(sorted(keep))])
        release_expired(project, at=at)
        before = _leased(project, annotator)
        need = ahead - len(before & keep)
        if need <= 0 and before - keep:   # nothing to choose: release now, in this transaction
            release(project, annotator, before - keep)
    if need <= 0:
        return 0
    # The passed-over leases go in the transaction that writes the new ones (one commit).
    passed = before - keep
    return _assign(project, annotator, need, frozenset(avoid),
                   then=(lambda: release(project, annotator, passed)) if passed else None)


def hold(project: Project, annotator: str, feature_id: int) -> None:
    """Inside the write transaction of the annotator's first event on a feature of their
    queue: the lease ends (the judgment holds the feature from now on).  A lease that was
    released meanwhile (idle, or by the project owner) is taken again when the feature still
    has room; otherwise :class:`LeaseLost`, and the caller writes nothing."""
    conn = project.db.conn
    if conn.execute("UPDATE assignments SET renewed_at = NULL WHERE feature_id = ? AND annotator = ?",
                    [feature_id, annotator]).rowcount:
        return
    if conn.execute(f"SELECT 1 FROM judgments WHERE feature_id = ? AND annotator = ? "
                    f"AND kind NOT IN {_NOT_HOLDING} LIMIT 1", [feature_id, annotator]).fetchone():
        return
    if not _still_free(project, annotator, [feature_id]):
        minutes = idle_limit(project).total_seconds() / 60
        raise LeaseLost(
            f"this feature went to other annotators after your hold on it was released (idle for "
            f"{minutes:g} min, or released by the project owner); press n for the next one")
    _insert(project, annotator, [feature_id], lease=False)


@dataclass
class Lease:
    """An assignment its annotator has not judged yet."""

    annotator: str
    feature_id: int
    source: str
    idx: int
    assigned_at: str
    renewed_at: str
    expires_at: str
    held_s: float      # since it was assigned
    idle_s: float      # since it was last renewed
    expired: bool


def leases(project: Project, annotator: str | None = None, *,
           at: _dt.datetime | None = None) -> list[Lease]:
    """Every lease (or the annotator's), by annotator and queue position, with when it
    expires as of ``at`` (default now).  Reads only."""
    t, limit = _utc(at), idle_limit(project)
    rows = project.query(
        f"SELECT assignments.annotator, assignments.feature_id, s.name AS source, f.idx, "
        f"assignments.created_at, assignments.renewed_at FROM assignments "
        f"JOIN features f ON f.id = assignments.feature_id JOIN sources s ON s.id = f.source_id "
        f"WHERE {_LEASE}" + (" AND assignments.annotator = ?" if annotator is not None else "")
        + " ORDER BY assignments.annotator, assignments.position",
        [annotator] if annotator is not None else [])
    out = []
    for r in rows:
        renewed = parse_stamp(r["renewed_at"]) or t
        assigned = parse_stamp(r["created_at"]) or renewed
        expires = renewed + limit
        out.append(Lease(r["annotator"], r["feature_id"], r["source"], r["idx"], r["created_at"],
                         r["renewed_at"], stamp(expires), max((t - assigned).total_seconds(), 0.0),
                         max((t - renewed).total_seconds(), 0.0), expires < t))
    return out


def queue(project: Project, annotator: str) -> list[int]:
    """The annotator's assigned feature ids in queue order."""
    return [r["feature_id"] for r in project.query(
        "SELECT feature_id FROM assignments WHERE annotator = ? ORDER BY position", [annotator])]


@dataclass
class FeatureState:
    """Where one annotator stands on one feature."""

    judgment: FeatureJudgment | None
    candidates: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.judgment is not None and self.judgment.done(self.candidates)

    @property
    def skipped(self) -> bool:
        return self.judgment is not None and self.judgment.skipped and not self.done

    @property
    def started(self) -> bool:
        return self.judgment is not None


def feature_state(project: Project, feature_id: int, annotator: str, candidates: list[str],
                  *, lead: bool = False) -> FeatureState:
    """The annotator's (or lead's adjudication) state on one feature, from the event log."""
    rows = project.query(
        "SELECT * FROM judgments WHERE feature_id = ? AND annotator = ?", [feature_id, annotator]
    )
    return FeatureState(own_view(rows, annotator, lead=lead).get(feature_id), list(candidates))


def states(project: Project, annotator: str, feature_ids: list[int] | None = None, *,
           lead: bool = False) -> dict[int, FeatureState]:
    """States of the annotator's assigned features (or of ``feature_ids``), in few queries."""
    if feature_ids is None:
        jrows = project.query(
            "SELECT j.* FROM assignments a JOIN judgments j "
            "ON j.feature_id = a.feature_id AND j.annotator = a.annotator WHERE a.annotator = ?",
            [annotator],
        )
        lrows = project.query(
            "SELECT l.feature_id, l.uuid FROM assignments a JOIN labels l "
            "ON l.feature_id = a.feature_id AND l.status = 'ok' AND l.superseded_at IS NULL "
            "WHERE a.annotator = ?",
            [annotator],
        )
        feature_ids = queue(project, annotator)
    else:
        jrows, lrows = [], []
        for chunk in _chunks(feature_ids):
            marks = ",".join("?" * len(chunk))
            jrows += project.query(
                f"SELECT * FROM judgments WHERE annotator = ? AND feature_id IN ({marks})",
                [annotator, *chunk],
            )
            lrows += project.query(
                f"SELECT feature_id, uuid FROM labels WHERE status = 'ok' AND superseded_at IS NULL "
                f"AND feature_id IN ({marks})",
                chunk,
            )
    cands: dict[int, list[str]] = {}
    for r in lrows:
        cands.setdefault(r["feature_id"], []).append(r["uuid"])
    own = own_view(jrows, annotator, lead=lead)
    return {fid: FeatureState(own.get(fid), cands.get(fid, [])) for fid in feature_ids}


def _chunks(ids: list[int], size: int = 500) -> list[list[int]]:
    return [ids[i:i + size] for i in range(0, len(ids), size)]


def disagreements(project: Project) -> list[int]:
    """Feature ids where at least two annotators disagree on the tier or on a verdict for
    the same candidate label (retractions taken into account), in feature order."""
    fids = [r["feature_id"] for r in project.query(
        "SELECT feature_id FROM judgments WHERE kind IN ('tier', 'verdict') "
        "GROUP BY feature_id HAVING COUNT(DISTINCT annotator) >= 2 ORDER BY feature_id")]
    out: list[int] = []
    for chunk in _chunks(fids):
        marks = ",".join("?" * len(chunk))
        view = derive(project.query(f"SELECT * FROM judgments WHERE feature_id IN ({marks})", chunk))
        by_feature: dict[int, list[FeatureJudgment]] = {}
        for key, j in view.items():
            if not key.is_adjudication:
                by_feature.setdefault(key.feature_id, []).append(j)
        for fid in chunk:
            if disagree(by_feature.get(fid, [])):
                out.append(fid)
    return out


def disagree(judgments: list[FeatureJudgment]) -> bool:
    """Do these annotators' judgments differ on the tier or on any shared verdict?"""
    tiers = {j.tier for j in judgments if j.tier is not None}
    if len(tiers) > 1:
        return True
    verdicts: dict[str, set[str]] = {}
    for j in judgments:
        for label, v in j.verdicts.items():
            verdicts.setdefault(label, set()).add(v)
    return any(len(v) > 1 for v in verdicts.values())


def others(project: Project, feature_id: int, annotator: str) -> list[FeatureJudgment]:
    """Every other annotator's current judgment of a feature (what a lead reviews)."""
    view = derive(project.query("SELECT * FROM judgments WHERE feature_id = ?", [feature_id]))
    return sorted((j for key, j in view.items() if not key.is_adjudication and key.annotator != annotator),
                  key=lambda j: j.annotator)
