"""Activating (and other) example contexts of features: the one owner of their storage.

Layout (schema step m007):

* ``contexts``: one row per distinct context of a source, stored once however many
  features keep it.  ``token_ids`` is a little-endian int32 blob when the ids are known;
  ``tokens`` is the JSON list of token strings *only* where they do not come from the
  source's vocabulary (Neuronpedia imports: their strings exactly as given).
* ``vocab``: per source, token id -> token string (the tokenizer's text of each id that
  occurs in a stored context), stored once.
* ``examples``: one row per (feature, kind, rank): the context, the per-token activations
  stored sparsely (:func:`encode_acts`: only the nonzero positions and their values), the
  max and its position as plain columns, and ``bin`` (for kinds drawn per activation bin,
  e.g. a future ``quantile`` kind; NULL otherwise).

Values are stored losslessly: float32 when every value is exactly a float32 (all scored
activations are), float64 otherwise (imported JSON floats).  So every reader sees exactly
the numbers it saw before the change, and the max position can never move by rounding.

Readers get the same dicts as before: ``id, feature_id, kind, rank, bin, tokens,
token_ids, acts, max_idx, max_act, origin`` with ``tokens`` a list of strings, ``token_ids``
a list of ints or None and ``acts`` a dense list of floats, one per token.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

KINDS = ("top", "negative", "quantile")

QUANTILE_BINS = 10


def quantile_bins(values: list[float], n_bins: int = QUANTILE_BINS) -> list[tuple[int, int]]:
    """``(index into values, bin)`` in descending order of value: the values split into
    ``n_bins`` equal-count bins of their own order (bin ``n_bins - 1`` the strongest).

    On a uniform random sample of a feature's activating contexts the bins estimate the
    activation distribution's quantile bins (deciles for 10), as Delphi's quantile sampler
    draws them from all cached activations.  Ties keep the earlier index first."""
    n = len(values)
    order = sorted(range(n), key=lambda i: (-values[i], i))
    return [(i, n_bins - 1 - (r * n_bins) // n) for r, i in enumerate(order)] if n else []


# acts blob: one header byte (position width << 4 | value width), then the positions, then
# the values, all little-endian.  An example with no nonzero activation stores NULL.
_POS: dict[int, np.dtype[Any]] = {2: np.dtype("<u2"), 4: np.dtype("<u4")}
_VAL: dict[int, np.dtype[Any]] = {4: np.dtype("<f4"), 8: np.dtype("<f8")}
_IDS = np.dtype("<i4")


def _conn(db: Any) -> Any:
    """The sqlite3 connection of a Project (its thread's), a sqlite-utils Database or a
    sqlite3 connection."""
    if isinstance(db, sqlite3.Connection):
        return db
    inner = getattr(db, "db", None)           # a Project
    if inner is not None:
        db = inner
    return getattr(db, "conn", db)            # a sqlite-utils Database


# -- encoding --------------------------------------------------------------------------

def encode_acts(acts: Sequence[float] | np.ndarray) -> bytes | None:
    """The sparse blob of a dense per-token activation list (None when all are zero).

    A value is kept when its bits are not those of +0.0 (so -0.0 survives too)."""
    a = np.asarray(acts, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError("acts must be a flat list")
    pos = np.flatnonzero(a.view(np.int64))
    if pos.size == 0:
        return None
    vals = a[pos]
    f32 = vals.astype(np.float32)
    # float32 when that is exact (every scored activation), else the float64 as given
    exact = np.array_equal(f32.astype(np.float64).view(np.int64), vals.view(np.int64))
    return _pack(pos, f32 if exact else vals)


def _pack(pos: np.ndarray, vals: np.ndarray) -> bytes:
    pw = 2 if (pos.size == 0 or int(pos[-1]) < 65536) else 4
    vw = vals.dtype.itemsize
    return bytes([pw << 4 | vw]) + pos.astype(_POS[pw]).tobytes() + vals.astype(_VAL[vw]).tobytes()


def encode_sparse_f32(pos: np.ndarray, vals: np.ndarray) -> bytes | None:
    """The blob of already-sparse float32 activations (positions ascending)."""
    if pos.size == 0:
        return None
    return _pack(pos, vals.astype(np.float32))


def decode_acts(blob: bytes | None, n: int) -> list[float]:
    """The dense list of ``n`` activations of a blob."""
    out = [0.0] * n
    if blob:
        pos, vals = sparse_acts(blob)
        for p, v in zip(pos.tolist(), vals.tolist()):
            out[p] = v
    return out


def sparse_acts(blob: bytes | None) -> tuple[np.ndarray, np.ndarray]:
    """(positions, values) of a blob."""
    if not blob:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    pw, vw = blob[0] >> 4, blob[0] & 0xF
    if pw not in _POS or vw not in _VAL or (len(blob) - 1) % (pw + vw):
        raise ValueError(f"not an activations blob (header {blob[0]:#x}, {len(blob)} bytes)")
    k = (len(blob) - 1) // (pw + vw)
    pos = np.frombuffer(blob, dtype=_POS[pw], count=k, offset=1)
    vals = np.frombuffer(blob, dtype=_VAL[vw], count=k, offset=1 + k * pw)
    return pos, vals


def encode_ids(ids: Sequence[int] | np.ndarray) -> bytes:
    return np.asarray(ids, dtype=_IDS).tobytes()


def decode_ids(blob: bytes | None) -> list[int] | None:
    return None if blob is None else np.frombuffer(blob, dtype=_IDS).tolist()


def context_digest(ids_blob: bytes | None, tokens_json: str | None) -> bytes:
    """What makes a context the same context: its ids and (where stored) its exact strings."""
    h = hashlib.sha256()
    h.update(b"i" if ids_blob is not None else b"-")
    h.update(ids_blob or b"")
    h.update(b"\x00t" if tokens_json is not None else b"\x00-")
    h.update((tokens_json or "").encode("utf-8", "surrogatepass"))
    return h.digest()[:16]


def _dumps_tokens(tokens: Sequence[str]) -> str:
    return json.dumps(list(tokens), ensure_ascii=False, separators=(",", ":"))


# -- writing ---------------------------------------------------------------------------

class Vocab:
    """A source's token strings, read on demand and cached for one writer or reader."""

    def __init__(self, db: Any, source_id: int):
        self.conn, self.source_id = _conn(db), source_id
        self.known: dict[int, str] = {}

    def lookup(self, ids: Iterable[int]) -> None:
        known = self.known          # (a set minus dict keys would copy every known id first)
        missing = sorted({i for i in map(int, ids) if i not in known})
        for start in range(0, len(missing), 30000):
            part = missing[start:start + 30000]
            for tid, tok in self.conn.execute(
                    "SELECT token_id, token FROM vocab WHERE source_id = ? AND token_id IN "
                    "(SELECT value FROM json_each(?))", [self.source_id, json.dumps(part)]):
                self.known[tid] = tok

    def add(self, pairs: dict[int, str]) -> None:
        """Record ``id -> string`` pairs not known yet (known ones are never changed)."""
        self.lookup(pairs)
        new = [(self.source_id, i, s) for i, s in pairs.items() if i not in self.known]
        if new:
            self.conn.executemany("INSERT OR IGNORE INTO vocab(source_id, token_id, token) VALUES (?, ?, ?)", new)
            for _, i, s in new:
                self.known[i] = s

    def strings(self, ids: Sequence[int]) -> list[str]:
        return [self.known[i] for i in ids]


def put_context(db: Any, source_id: int, *, token_ids: Sequence[int] | None = None,
                tokens: Sequence[str] | None = None, vocab: Vocab | None = None) -> int:
    """The id of the context (created once per source).

    With ``token_ids`` and ``tokens`` the strings go into the source's vocabulary; only if
    one of them differs from the vocabulary's string for that id does the context keep its
    own strings.  With ``tokens`` only (Neuronpedia), the strings are kept exactly."""
    conn = _conn(db)
    if token_ids is None and tokens is None:
        raise ValueError("a context needs token ids or token strings")
    ids_blob = encode_ids(token_ids) if token_ids is not None else None
    tokens_json = None
    if tokens is not None:
        if token_ids is None:
            tokens_json = _dumps_tokens(tokens)
        else:
            ids = [int(i) for i in token_ids]
            if len(ids) != len(tokens):
                raise ValueError(f"{len(ids)} token ids but {len(tokens)} token strings")
            vocab = vocab or Vocab(conn, source_id)
            vocab.add(dict(zip(ids, tokens)))
            if any(vocab.known[i] != t for i, t in zip(ids, tokens)):
                tokens_json = _dumps_tokens(tokens)
    digest = context_digest(ids_blob, tokens_json)
    row = conn.execute("SELECT id FROM contexts WHERE source_id = ? AND digest = ?", [source_id, digest]).fetchone()
    if row is not None:
        return row[0]
    cur = conn.execute("INSERT INTO contexts(source_id, digest, token_ids, tokens) VALUES (?, ?, ?, ?)",
                       [source_id, digest, ids_blob, tokens_json])
    return cur.lastrowid


def put_contexts_ids(db: Any, source_id: int, contexts: Sequence[Sequence[int] | np.ndarray]) -> list[int]:
    """Ids of many contexts known by token ids only (their strings in the vocabulary)."""
    conn = _conn(db)
    blobs = [encode_ids(c) for c in contexts]
    digests = [context_digest(b, None) for b in blobs]
    conn.executemany("INSERT OR IGNORE INTO contexts(source_id, digest, token_ids, tokens) VALUES (?, ?, ?, NULL)",
                     [(source_id, d, b) for d, b in zip(digests, blobs)])
    ids: dict[bytes, int] = {}
    for start in range(0, len(digests), 20000):
        part = digests[start:start + 20000]
        q = ",".join("?" * len(part))
        for cid, d in conn.execute(f"SELECT id, digest FROM contexts WHERE source_id = ? AND digest IN ({q})",
                                   [source_id, *part]):
            ids[bytes(d)] = cid
    return [ids[d] for d in digests]


def _source_of_feature(conn: Any, feature_id: int) -> int:
    row = conn.execute("SELECT source_id FROM features WHERE id = ?", [feature_id]).fetchone()
    if row is None:
        raise ValueError(f"feature id {feature_id}: no such feature")
    return row[0]


def _max_of(acts: Sequence[float], max_idx: int | None, max_act: float | None) -> tuple[int, float]:
    if max_idx is None:
        max_idx = max(range(len(acts)), key=acts.__getitem__) if len(acts) else 0
    if max_act is None:
        max_act = float(acts[max_idx]) if len(acts) else 0.0
    return int(max_idx), float(max_act)


def example_row(db: Any, source_id: int, ex: dict[str, Any], vocab: Vocab | None = None) -> tuple:
    """``(context_id, acts blob, max_idx, max_act)`` of an example dict (``tokens`` and/or
    ``token_ids``, ``acts``, optional ``max_idx``/``max_act``)."""
    acts = [float(a) for a in ex["acts"]]
    max_idx, max_act = _max_of(acts, ex.get("max_idx"), ex.get("max_act"))
    ids = ex.get("token_ids")
    toks = ex.get("tokens")
    if ids is not None:
        n = len(ids)
    elif toks is not None:
        n = len(toks)
    else:
        raise ValueError("an example needs token ids or token strings")
    if len(acts) != n:
        raise ValueError(f"{len(acts)} activations for {n} tokens")
    cid = put_context(db, source_id, token_ids=ids, tokens=None if toks is None else list(toks), vocab=vocab)
    return cid, encode_acts(acts), max_idx, max_act


def put_examples(db: Any, feature_id: int, kind: str, examples: list[dict[str, Any]], origin: str, *,
                 replace: bool = True, bins: Sequence[int | None] | None = None) -> list[int]:
    """Store examples at ranks 0..n-1 (``tokens``, ``acts``, optional ``token_ids``,
    ``max_idx``, ``max_act``); return their ids.  With ``replace`` the feature's other
    ranks of this kind go (with their NLA explanations)."""
    conn = _conn(db)
    source_id = _source_of_feature(conn, feature_id)
    vocab = Vocab(conn, source_id)
    rows = []
    for rank, ex in enumerate(examples):
        cid, blob, max_idx, max_act = example_row(conn, source_id, ex, vocab)
        b = bins[rank] if bins is not None else ex.get("bin")
        rows.append((feature_id, kind, rank, b, cid, blob, max_idx, max_act, origin))
    put_example_rows(conn, rows)
    if replace:
        delete_examples(conn, feature_id, kind, from_rank=len(examples))
    return [r[0] for r in conn.execute("SELECT id FROM examples WHERE feature_id = ? AND kind = ? AND rank < ? "
                                       "ORDER BY rank", [feature_id, kind, len(examples)])]


def put_example_rows(db: Any, rows: Iterable[tuple]) -> None:
    """Bulk insert-or-replace of ready rows ``(feature_id, kind, rank, bin, context_id,
    acts_blob, max_idx, max_act, origin)`` (the score job's fast path)."""
    _conn(db).executemany(
        "INSERT INTO examples(feature_id, kind, rank, bin, context_id, acts, max_idx, max_act, origin) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(feature_id, kind, rank) DO UPDATE SET "
        "bin = excluded.bin, context_id = excluded.context_id, acts = excluded.acts, "
        "max_idx = excluded.max_idx, max_act = excluded.max_act, origin = excluded.origin", rows)


def delete_examples(db: Any, feature_id: int, kind: str, *, from_rank: int = 0) -> None:
    """Remove the feature's ``kind`` examples at ranks >= ``from_rank`` with their NLA
    explanations (contexts nobody keeps any more go with :func:`prune_contexts`)."""
    conn = _conn(db)
    stale = "SELECT id FROM examples WHERE feature_id = ? AND kind = ? AND rank >= ?"
    args = [feature_id, kind, from_rank]
    conn.execute(f"DELETE FROM nla_explanations WHERE example_id IN ({stale})", args)
    conn.execute(f"DELETE FROM examples WHERE id IN ({stale})", args)


def drop_changed_nla(db: Any, feature_id: int, kind: str, context_ids: Sequence[int]) -> None:
    """Drop NLA explanations of the feature's ``kind`` examples whose context changes:
    ``context_ids[rank]`` is the new context at each rank (they explained another text)."""
    conn = _conn(db)
    for ex_id, rank, cid in conn.execute(
            "SELECT e.id, e.rank, e.context_id FROM examples e WHERE e.feature_id = ? AND e.kind = ? "
            "AND EXISTS (SELECT 1 FROM nla_explanations n WHERE n.example_id = e.id)", [feature_id, kind]).fetchall():
        if rank >= len(context_ids) or context_ids[rank] != cid:
            conn.execute("DELETE FROM nla_explanations WHERE example_id = ?", [ex_id])


def prune_contexts(db: Any, source_id: int | None = None) -> int:
    """Delete contexts no example keeps; return how many went."""
    conn = _conn(db)
    where = "id NOT IN (SELECT context_id FROM examples)"
    args: list[Any] = []
    if source_id is not None:
        where += " AND source_id = ?"
        args.append(source_id)
    return conn.execute(f"DELETE FROM contexts WHERE {where}", args).rowcount


# -- reading ---------------------------------------------------------------------------

def has_top(col: str) -> str:
    """SQL: 1 when the feature with id ``col`` has top examples, else 0.  Asked of the small
    index of rank-0 top examples first (schema m009: one entry per feature, megabytes) and
    only for a feature without one of the full examples index (about 100 entries per
    feature), so the answer is exact whatever ranks were written."""
    return (f"(CASE WHEN EXISTS (SELECT 1 FROM examples e0 INDEXED BY examples_top_first "
            f"WHERE e0.feature_id = {col} AND e0.kind = 'top' AND e0.rank = 0) THEN 1 "
            f"ELSE EXISTS (SELECT 1 FROM examples e1 WHERE e1.feature_id = {col} AND e1.kind = 'top') END)")


_SELECT = ("SELECT e.id, e.feature_id, e.kind, e.rank, e.bin, e.acts, e.max_idx, e.max_act, e.origin, "
           "c.source_id, c.token_ids, c.tokens FROM examples e JOIN contexts c ON c.id = e.context_id ")


def _reader_vocabs(db: Any) -> dict[int, dict[int, str]] | None:
    """The token strings a :class:`store.db.Project` has read so far, per source, kept for
    the project's life (the app opens one feature per key: its contexts' strings are read
    once, not once per feature).  Safe to keep: a vocabulary entry is never changed or
    removed once written (:meth:`Vocab.add` inserts only ids not known yet)."""
    if isinstance(db, (sqlite3.Connection, str)) or not hasattr(db, "close_thread"):
        return None
    cache = getattr(db, "_vocab_read_cache", None)
    if cache is None:
        cache = db._vocab_read_cache = {}
    return cache


def _rows_to_dicts(conn: Any, rows: list[tuple], cache: dict[int, dict[int, str]] | None = None
                   ) -> list[dict[str, Any]]:
    vocabs: dict[int, Vocab] = {}
    need: dict[int, set[int]] = {}
    decoded = []
    for r in rows:
        ids = decode_ids(r[10])
        if r[11] is None and ids is not None:
            need.setdefault(r[9], set()).update(ids)
        decoded.append(ids)
    for sid, wanted in need.items():
        vocabs[sid] = Vocab(conn, sid)
        if cache is not None:
            vocabs[sid].known = cache.setdefault(sid, {})
        vocabs[sid].lookup(wanted)
    out = []
    for r, ids in zip(rows, decoded):
        if r[11] is not None:
            tokens = json.loads(r[11])
        else:
            assert ids is not None   # put_context stores a context's token ids or its strings
            known = vocabs[r[9]].known
            tokens = [known.get(i, f"<{i}>") for i in ids]   # a missing entry never happens by design
        out.append({"id": r[0], "feature_id": r[1], "kind": r[2], "rank": r[3], "bin": r[4],
                    "tokens": tokens, "token_ids": ids, "acts": decode_acts(r[5], len(tokens)),
                    "max_idx": r[6], "max_act": r[7], "origin": r[8]})
    return out


def examples(db: Any, feature_id: int, kind: str = "top", *, limit: int | None = None,
             ranks: tuple[int, int] | None = None) -> list[dict[str, Any]]:
    """The feature's ``kind`` examples in rank order (``ranks``: 0-based inclusive range)."""
    conn = _conn(db)
    sql, args = _SELECT + "WHERE e.feature_id = ? AND e.kind = ?", [feature_id, kind]
    if ranks is not None:
        sql += " AND e.rank BETWEEN ? AND ?"
        args += list(ranks)
    sql += " ORDER BY e.rank"
    if limit is not None:
        sql += " LIMIT ?"
        args.append(int(limit))
    return _rows_to_dicts(conn, conn.execute(sql, args).fetchall(), _reader_vocabs(db))


class LazyExamples(Sequence[dict[str, Any]]):
    """A feature's examples read in one query, their contexts read and decoded (token
    strings, dense activations) only when an item is first read: the app reads the 50
    strongest and draws the few the screen holds until the annotator asks for more.  Items
    are the dicts :func:`examples` returns; :attr:`max_acts`, :attr:`bins` and
    :attr:`origins` need no decoding."""

    def __init__(self, db: Any, rows: list[tuple], cache: dict[int, dict[int, str]] | None,
                 reread: Any = None):
        # rows: _SELECT_EXAMPLE's columns (the context's id last); reread() reads them again
        self._db, self._cache, self._reread = db, cache, reread
        self._set(rows)

    def _set(self, rows: list[tuple]) -> None:
        self._rows = rows
        self._done: list[dict[str, Any] | None] = [None] * len(rows)
        self.max_acts: list[float] = [float(r[7]) for r in rows]
        self.bins: list[int | None] = [r[4] for r in rows]
        self.origins: list[str] = [r[8] for r in rows]

    def __len__(self) -> int:
        return len(self._rows)

    def _decode(self, idx: list[int]) -> None:
        todo = [i for i in idx if self._done[i] is None]
        if not todo:
            return
        conn = _conn(self._db)      # this thread's connection (a Project's are per thread)
        cids = sorted({self._rows[i][9] for i in todo})
        ctx = {r[0]: tuple(r[1:]) for r in conn.execute(
            "SELECT id, source_id, token_ids, tokens FROM contexts WHERE id IN (SELECT value FROM json_each(?))",
            [json.dumps(cids)])}
        if any(self._rows[i][9] not in ctx for i in todo) and self._reread is not None:
            # Another process rewrote the feature's examples (a score, import or merge) and
            # pruned the contexts these rows named since they were read: read them again, whole.
            self._set(self._reread())
            todo = [i for i in idx if i < len(self._rows)]
            cids = sorted({self._rows[i][9] for i in todo})
            ctx = {r[0]: tuple(r[1:]) for r in conn.execute(
                "SELECT id, source_id, token_ids, tokens FROM contexts WHERE id IN (SELECT value FROM json_each(?))",
                [json.dumps(cids)])}
        full = [tuple(self._rows[i][:9]) + ctx[self._rows[i][9]] for i in todo]   # _SELECT's columns
        for i, d in zip(todo, _rows_to_dicts(conn, full, self._cache)):
            self._done[i] = d

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            idx = list(range(*i.indices(len(self._rows))))
            self._decode(idx)
            return [self._done[k] for k in idx if k < len(self._rows)]
        k = range(len(self._rows))[i]      # IndexError as for a list
        self._decode([k])
        return self._done[range(len(self._rows))[k]]


_SELECT_EXAMPLE = ("SELECT e.id, e.feature_id, e.kind, e.rank, e.bin, e.acts, e.max_idx, e.max_act, e.origin, "
                   "e.context_id FROM examples e ")


def examples_lazy(db: Any, feature_id: int, kind: str = "top", *, limit: int | None = None) -> LazyExamples:
    """:func:`examples`, each read in full and decoded when first read (:class:`LazyExamples`)."""
    conn = _conn(db)
    sql, args = _SELECT_EXAMPLE + "WHERE e.feature_id = ? AND e.kind = ? ORDER BY e.rank", [feature_id, kind]
    if limit is not None:
        sql += " LIMIT ?"
        args.append(int(limit))
    return LazyExamples(db, conn.execute(sql, args).fetchall(), _reader_vocabs(db),
                        reread=lambda: _conn(db).execute(sql, args).fetchall())


def example_by_id(db: Any, example_id: int) -> dict[str, Any] | None:
    conn = _conn(db)
    rows = _rows_to_dicts(conn, conn.execute(_SELECT + "WHERE e.id = ?", [example_id]).fetchall())
    return rows[0] if rows else None


def find_example(db: Any, source: str, idx: int, kind: str, rank: int) -> tuple[int, int, int] | None:
    """``(example id, number of tokens, max_idx)`` of one example, or None."""
    row = _conn(db).execute(
        "SELECT e.id, CASE WHEN c.tokens IS NOT NULL THEN json_array_length(c.tokens) "
        "ELSE length(c.token_ids) / 4 END, e.max_idx FROM examples e JOIN contexts c ON c.id = e.context_id "
        "JOIN features f ON f.id = e.feature_id JOIN sources s ON s.id = f.source_id "
        "WHERE s.name = ? AND f.idx = ? AND e.kind = ? AND e.rank = ?", [source, idx, kind, rank]).fetchone()
    return None if row is None else (row[0], row[1], row[2])


def has_contexts_table(conn: Any) -> bool:
    return _conn(conn).execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'contexts'").fetchone() is not None


def all_examples(conn: Any, batch: int = 2000) -> Iterator[dict[str, Any]]:
    """Every example of a database in (feature_id, kind, rank) order, decoded, whichever
    layout it has (before schema step m007: JSON lists per row; merge reads older files)."""
    conn = _conn(conn)
    if not has_contexts_table(conn):
        cur = conn.execute("SELECT id, feature_id, kind, rank, tokens, token_ids, acts, max_idx, max_act, origin "
                           "FROM examples ORDER BY feature_id, kind, rank")
        for r in cur:
            r = tuple(r)
            yield {"id": r[0], "feature_id": r[1], "kind": r[2], "rank": r[3], "bin": None,
                   "tokens": json.loads(r[4]), "token_ids": None if r[5] is None else json.loads(r[5]),
                   "acts": [float(a) for a in json.loads(r[6])], "max_idx": r[7], "max_act": r[8], "origin": r[9]}
        return
    last = (-1, "", -1)
    while True:
        rows = [tuple(r) for r in conn.execute(
            _SELECT + "WHERE (e.feature_id, e.kind, e.rank) > (?, ?, ?) ORDER BY e.feature_id, e.kind, e.rank "
            "LIMIT ?", [*last, batch]).fetchall()]
        if not rows:
            return
        yield from _rows_to_dicts(conn, rows)
        last = (rows[-1][1], rows[-1][2], rows[-1][3])
