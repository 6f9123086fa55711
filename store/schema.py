"""Versioned schema of the project database (sqlite-utils migrations).

Every change to the schema is a new migration appended at the end; applied migrations
are never edited.  A database that records a migration this code does not know was
written by a newer saegold and is refused (see :mod:`store.db`).
"""
from __future__ import annotations

import json

from .sqlite_utils_lib import Database, Migrations

migrations = Migrations("saegold")

APPEND_ONLY_TABLES = ("judgments",)


@migrations()
def m001_core(db: Database) -> None:
    _run_script(
        db,
        """
        CREATE TABLE settings (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL            -- JSON
        );
        CREATE TABLE sources (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,     -- "MODEL/SOURCE", as on Neuronpedia
            model_id TEXT NOT NULL,
            sae_id TEXT NOT NULL,
            hook_name TEXT,
            layer INTEGER,
            d_sae INTEGER,
            width INTEGER,                 -- d_in: the model's residual width
            created_at TEXT NOT NULL
        );
        CREATE TABLE features (
            id INTEGER PRIMARY KEY,
            source_id INTEGER NOT NULL REFERENCES sources(id),
            idx INTEGER NOT NULL CHECK (idx >= 0),
            density REAL,                  -- firing density (fraction of tokens > 0)
            max_act REAL,
            n_tokens_seen INTEGER,         -- tokens the density was measured on
            UNIQUE (source_id, idx)
        );
        CREATE TABLE examples (
            id INTEGER PRIMARY KEY,
            feature_id INTEGER NOT NULL REFERENCES features(id),
            kind TEXT NOT NULL CHECK (kind IN ('top', 'negative')),
            rank INTEGER NOT NULL,         -- 0 = strongest (top) / reservoir order (negative)
            tokens TEXT NOT NULL,          -- JSON list of token strings, exactly as given
            token_ids TEXT,                -- JSON list of ints, when known
            acts TEXT NOT NULL,            -- JSON list of per-token activations
            max_idx INTEGER NOT NULL,
            max_act REAL NOT NULL,
            origin TEXT NOT NULL,          -- 'scored' | 'neuronpedia' | ...
            UNIQUE (feature_id, kind, rank)
        );
        CREATE TABLE logit_tokens (
            feature_id INTEGER NOT NULL REFERENCES features(id),
            kind TEXT NOT NULL CHECK (kind IN ('promoted', 'suppressed', 'amplified_next')),
            rank INTEGER NOT NULL,
            token TEXT NOT NULL,
            token_id INTEGER,
            value REAL,                    -- logit-lens value, or probability for amplified_next
            PRIMARY KEY (feature_id, kind, rank)
        );
        CREATE TABLE taxonomy_scores (
            feature_id INTEGER PRIMARY KEY REFERENCES features(id),
            input_score REAL,
            output_score REAL,
            category TEXT CHECK (category IN ('input', 'output', 'cross', 'obscure')),
            input_threshold REAL NOT NULL,
            output_threshold REAL NOT NULL,
            continuation TEXT,             -- greedy continuation of the neutral prompt, amplified
            scorer_version TEXT NOT NULL,
            device TEXT,
            details TEXT,                  -- JSON
            created_at TEXT NOT NULL
        );
        CREATE TABLE labels (
            id INTEGER PRIMARY KEY,
            uuid TEXT NOT NULL UNIQUE,
            feature_id INTEGER NOT NULL REFERENCES features(id),
            method TEXT NOT NULL,
            text TEXT,                     -- NULL for a failed attempt
            status TEXT NOT NULL DEFAULT 'ok' CHECK (status IN ('ok', 'failed')),
            model TEXT,
            prompt_hash TEXT,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            raw_response TEXT,
            error TEXT,
            origin TEXT NOT NULL,          -- 'saegold' | 'neuronpedia' | ...
            details TEXT,                  -- JSON (e.g. Neuronpedia's own scores)
            created_at TEXT NOT NULL
        );
        CREATE INDEX labels_feature ON labels(feature_id, method);
        CREATE TABLE nla_explanations (
            id INTEGER PRIMARY KEY,
            example_id INTEGER NOT NULL REFERENCES examples(id),
            nla_source TEXT NOT NULL,
            token_index INTEGER NOT NULL,
            text TEXT NOT NULL,
            created_at TEXT NOT NULL,
            UNIQUE (example_id, nla_source, token_index)
        );
        CREATE TABLE bench_scores (
            id INTEGER PRIMARY KEY,
            label_id INTEGER NOT NULL REFERENCES labels(id),
            benchmark TEXT NOT NULL,       -- detection | fuzzing | embedding
            control TEXT NOT NULL CHECK (control IN ('true', 'shuffled')),
            scored_label_id INTEGER REFERENCES labels(id),  -- the label text actually used
            value REAL,                    -- NULL when nothing could be scored
            n INTEGER NOT NULL,
            parse_failures INTEGER NOT NULL DEFAULT 0,
            judge_model TEXT,
            seed INTEGER,
            details TEXT,                  -- JSON: per-example answers
            created_at TEXT NOT NULL,
            UNIQUE (label_id, benchmark, control)
        );
        CREATE TABLE annotators (
            name TEXT PRIMARY KEY,
            role TEXT NOT NULL DEFAULT 'annotator' CHECK (role IN ('annotator', 'lead')),
            created_at TEXT NOT NULL
        );
        CREATE TABLE assignments (
            feature_id INTEGER NOT NULL REFERENCES features(id),
            annotator TEXT NOT NULL REFERENCES annotators(name),
            position INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (feature_id, annotator)
        );
        CREATE INDEX assignments_queue ON assignments(annotator, position);
        CREATE TABLE judgments (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            uuid TEXT NOT NULL UNIQUE,     -- client-made: retried writes and merges are idempotent
            annotator TEXT NOT NULL,
            login TEXT,                    -- the OS user that wrote it
            feature_id INTEGER NOT NULL REFERENCES features(id),
            kind TEXT NOT NULL CHECK (kind IN (
                'tier', 'verdict', 'preference', 'gold_label', 'skip', 'flag', 'note',
                'retract', 'adj_tier', 'adj_verdict', 'adj_gold_label')),
            label_uuid TEXT,               -- verdicts: the candidate judged
            value TEXT,
            confidence INTEGER CHECK (confidence IS NULL OR confidence BETWEEN 1 AND 3),
            target_uuid TEXT,              -- retract: the event it takes back
            seconds_spent REAL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX judgments_feature ON judgments(feature_id, annotator);
        CREATE TRIGGER judgments_no_update BEFORE UPDATE ON judgments
            BEGIN SELECT RAISE(ABORT, 'judgments are append-only: append a retraction instead'); END;
        CREATE TRIGGER judgments_no_delete BEFORE DELETE ON judgments
            BEGIN SELECT RAISE(ABORT, 'judgments are append-only: append a retraction instead'); END;
        CREATE TABLE llm_cache (
            key TEXT PRIMARY KEY,          -- sha256 of (endpoint, model, messages, parameters)
            endpoint TEXT NOT NULL,
            model TEXT NOT NULL,
            request TEXT NOT NULL,         -- JSON, never holds a key
            response TEXT NOT NULL,        -- JSON
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            created_at TEXT NOT NULL
        );
        """
    )


@migrations()
def m002_import_log(db: Database) -> None:
    """One row per imported file (by content), so `saegold status` can show what came from where."""
    _run_script(
        db,
        """
        CREATE TABLE import_log (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,            -- 'neuronpedia' | 'judgments'
            path TEXT NOT NULL,            -- as given on the command line (first import)
            sha256 TEXT NOT NULL,          -- of the file's bytes as read (compressed if gzip)
            bytes INTEGER NOT NULL,
            records INTEGER NOT NULL,      -- records accepted
            rejected INTEGER NOT NULL DEFAULT 0,  -- records skipped with --skip-bad
            imported_at TEXT NOT NULL,
            UNIQUE (kind, sha256)          -- re-importing the same bytes adds nothing
        );
        """
    )


@migrations()
def m003_queue_indexes(db: Database) -> None:
    """Indexes for choosing an annotator's next batch (store.queue) without a scan of every
    feature: each category's features by category, and who holds a feature through a judgment
    (every event kind but retractions and adjudications: a narrow index, also read on its own)."""
    _run_script(
        db,
        """
        CREATE INDEX taxonomy_category ON taxonomy_scores(category);
        CREATE INDEX judgments_holders ON judgments(feature_id, annotator, kind)
            WHERE kind NOT IN ('retract', 'adj_tier', 'adj_verdict', 'adj_gold_label');
        """,
    )


@migrations()
def m004_llm_cache_keys(db: Database) -> None:
    """Re-key ``llm_cache`` on what determines an answer (model, kind, payload, parameters
    without the length limit), no longer on the endpoint's address: the same server under
    another port, or ``localhost`` for ``127.0.0.1``, hits the cache.  Where two endpoints
    cached the same request, the newest answer is kept.  The key function is frozen here
    (``engine/llm/cache.py: request_key`` computes the same)."""
    import hashlib
    import json

    def key(model: str, kind: str, payload: object, params: dict) -> str:
        keyed = {k: v for k, v in params.items() if k not in ("max_tokens", "max_completion_tokens")}
        canon = json.dumps({"model": model, "kind": kind, "payload": payload, "params": keyed},
                           sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
        return hashlib.sha256(canon.encode("utf-8")).hexdigest()

    rows = db.execute("SELECT key, model, request FROM llm_cache ORDER BY created_at DESC, rowid DESC")
    seen: set[str] = set()
    moves: list[tuple[str, str]] = []
    drop: list[str] = []
    for old, model, request in rows.fetchall():
        req = json.loads(request)
        if "messages" in req:
            new = key(model, "chat", req["messages"], req.get("params") or {})
        elif "input" in req:
            new = key(model, "embedding", req["input"], {})
        elif "path" in req:  # the only cached POST: NLA explanations
            new = key(model, "nla_explain", {"path": req["path"], "body": req.get("body")}, {})
        else:
            continue
        if new in seen:
            drop.append(old)
        else:
            seen.add(new)
            moves.append((new, old))
    db.conn.executemany("DELETE FROM llm_cache WHERE key = ?", [(k,) for k in drop])
    # Old keys and new keys are both sha256 values of different texts: they never collide.
    db.conn.executemany("UPDATE llm_cache SET key = ? WHERE key = ?", moves)


@migrations()
def m005_steering(db: Database) -> None:
    """Steered generation at target KLs (engine.scoring.steering): per feature and target the
    alpha reached, the KL reached, whether it is within tolerance, and the continuations; per
    source and prompt the clean (unsteered) continuation they are shown next to."""
    _run_script(
        db,
        """
        CREATE TABLE steering (
            feature_id INTEGER NOT NULL REFERENCES features(id),
            target_kl REAL NOT NULL,       -- nats: KL(clean || steered), see engine.scoring.steering
            alpha REAL NOT NULL,           -- the steering coefficient on W_dec[j]
            kl REAL NOT NULL,              -- the KL actually reached at alpha
            reached INTEGER NOT NULL CHECK (reached IN (0, 1)),   -- |kl - target| within tolerance
            continuations TEXT NOT NULL,   -- JSON [{"prompt", "text", "token_ids"}], one per prompt
            details TEXT NOT NULL,         -- JSON: settings (prompts, tokens, temperature, seed), evals
            created_at TEXT NOT NULL,
            PRIMARY KEY (feature_id, target_kl)
        );
        CREATE TABLE steering_clean (
            source_id INTEGER NOT NULL REFERENCES sources(id),
            prompt TEXT NOT NULL,
            text TEXT NOT NULL,
            token_ids TEXT NOT NULL,       -- JSON list of ints
            details TEXT NOT NULL,         -- JSON: the settings it was sampled with
            created_at TEXT NOT NULL,
            PRIMARY KEY (source_id, prompt)
        );
        """,
    )


@migrations()
def m006_leases(db: Database) -> None:
    """Assignments become leases (store.queue): ``renewed_at`` is when the annotator was last
    active on a feature they have not judged yet, and NULL once they hold it by a judgment.
    A lease idle past the project setting ``lease_idle_minutes`` returns to the pool.  Rows of
    features already judged by their annotator stop being leases; every other row (a batch
    handed out before leases existed) is a lease renewed when it was assigned."""
    _run_script(
        db,
        """
        ALTER TABLE assignments ADD COLUMN renewed_at TEXT;
        UPDATE assignments SET renewed_at = created_at
        WHERE NOT EXISTS (SELECT 1 FROM judgments j
                          WHERE j.feature_id = assignments.feature_id
                            AND j.annotator = assignments.annotator
                            AND j.kind NOT IN ('retract', 'adj_tier', 'adj_verdict', 'adj_gold_label'));
        CREATE INDEX assignments_leases ON assignments(annotator, renewed_at)
            WHERE renewed_at IS NOT NULL;
        """,
    )



@migrations()
def m007_contexts_once(db: Database) -> None:
    """Examples stored compactly (issue 17): each context once per source (token ids as an
    int32 blob, strings from the source's vocabulary, or its own exact strings where they
    came without ids or differ), and per (feature, context) only the nonzero activations.
    Example ids are kept (NLA explanations and benchmark details refer to them); nothing
    is lost: tokens, ids, activations, maxima and origins read back exactly as before."""
    from .examples import context_digest, encode_acts, encode_ids

    _run_script(
        db,
        """
        CREATE TABLE vocab (
            source_id INTEGER NOT NULL REFERENCES sources(id),
            token_id INTEGER NOT NULL,
            token TEXT NOT NULL,           -- the tokenizer's text of the id, as shown
            PRIMARY KEY (source_id, token_id)
        );
        CREATE TABLE contexts (
            id INTEGER PRIMARY KEY,
            source_id INTEGER NOT NULL REFERENCES sources(id),
            digest BLOB NOT NULL,          -- 16 bytes of sha256 over ids and own strings
            token_ids BLOB,                -- int32 little-endian, when known
            tokens TEXT,                   -- JSON list of strings, only where not from vocab
            UNIQUE (source_id, digest)
        );
        CREATE TABLE examples_new (
            id INTEGER PRIMARY KEY,
            feature_id INTEGER NOT NULL REFERENCES features(id),
            kind TEXT NOT NULL CHECK (kind IN ('top', 'negative', 'quantile')),
            rank INTEGER NOT NULL,         -- 0 = strongest (top) / reservoir order (negative)
            bin INTEGER,                   -- for kinds drawn per activation bin; NULL otherwise
            context_id INTEGER NOT NULL REFERENCES contexts(id),
            acts BLOB,                     -- sparse nonzero activations (store.examples); NULL: none
            max_idx INTEGER NOT NULL,
            max_act REAL NOT NULL,
            origin TEXT NOT NULL,          -- 'scored' | 'neuronpedia' | ...
            UNIQUE (feature_id, kind, rank)
        );
        """,
    )
    vocab: dict[int, dict[int, str]] = {}
    contexts: dict[tuple[int, bytes], int | None] = {}
    cur = db.execute(
        "SELECT e.id, e.feature_id, e.kind, e.rank, e.tokens, e.token_ids, e.acts, e.max_idx, e.max_act, "
        "e.origin, f.source_id FROM examples e JOIN features f ON f.id = e.feature_id ORDER BY e.id")
    while True:
        rows = cur.fetchmany(5000)
        if not rows:
            break
        new_vocab, out = [], []
        for ex_id, fid, kind, rank, tokens, token_ids, acts, max_idx, max_act, origin, sid in rows:
            voc = vocab.setdefault(sid, {})
            ids_blob, own = None, tokens        # exact text as stored
            if token_ids is not None:
                ids = [int(i) for i in json.loads(token_ids)]
                toks = json.loads(tokens)
                ids_blob = encode_ids(ids)
                if len(ids) == len(toks):
                    for i, t in zip(ids, toks):
                        if i not in voc:
                            voc[i] = t
                            new_vocab.append((sid, i, t))
                    if all(voc[i] == t for i, t in zip(ids, toks)):
                        own = None
            digest = context_digest(ids_blob, own)
            cid = contexts.get((sid, digest))
            if cid is None:
                cid = db.execute("INSERT INTO contexts(source_id, digest, token_ids, tokens) VALUES (?, ?, ?, ?)",
                                 [sid, digest, ids_blob, own]).lastrowid
                contexts[(sid, digest)] = cid
            out.append((ex_id, fid, kind, rank, cid, encode_acts(json.loads(acts)), max_idx, max_act, origin))
        db.conn.executemany("INSERT INTO vocab(source_id, token_id, token) VALUES (?, ?, ?)", new_vocab)
        db.conn.executemany("INSERT INTO examples_new(id, feature_id, kind, rank, context_id, acts, max_idx, "
                            "max_act, origin) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", out)
    # NLA explanations refer to examples: set aside, swap the tables, put them back.
    _run_script(
        db,
        """
        CREATE TEMP TABLE nla_keep AS SELECT * FROM nla_explanations;
        DROP TABLE nla_explanations;
        DROP TABLE examples;
        ALTER TABLE examples_new RENAME TO examples;
        CREATE INDEX examples_context ON examples(context_id);
        CREATE TABLE nla_explanations (
            id INTEGER PRIMARY KEY,
            example_id INTEGER NOT NULL REFERENCES examples(id),
            nla_source TEXT NOT NULL,
            token_index INTEGER NOT NULL,
            text TEXT NOT NULL,
            created_at TEXT NOT NULL,
            UNIQUE (example_id, nla_source, token_index)
        );
        INSERT INTO nla_explanations SELECT * FROM temp.nla_keep;
        DROP TABLE temp.nla_keep;
        """,
    )


@migrations()
def m008_live_labels(db: Database) -> None:
    """A redo supersedes (store.labels): a label saegold made stays, with the judgments made
    on it, but ``superseded_by`` (the replacing label's uuid) and ``superseded_at`` mark it;
    each feature has one live label per method (a partial unique index).  Projects that
    already hold several live ones (``label --redo --no-cache`` before this) keep the newest
    live and supersede the older.  Imported labels (Neuronpedia: several explanations of one
    typeName are several candidates) are not bound by the index."""
    _run_script(
        db,
        """
        ALTER TABLE labels ADD COLUMN superseded_by TEXT;
        ALTER TABLE labels ADD COLUMN superseded_at TEXT;
        UPDATE labels SET
            superseded_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
            superseded_by = (SELECT n.uuid FROM labels n
                             WHERE n.feature_id = labels.feature_id AND n.method = labels.method
                               AND n.status = 'ok' AND n.origin = 'saegold'
                             ORDER BY n.created_at DESC, n.id DESC LIMIT 1)
        WHERE status = 'ok' AND origin = 'saegold' AND EXISTS (
            SELECT 1 FROM labels n
            WHERE n.feature_id = labels.feature_id AND n.method = labels.method
              AND n.status = 'ok' AND n.origin = 'saegold'
              AND (n.created_at > labels.created_at OR (n.created_at = labels.created_at AND n.id > labels.id)));
        CREATE UNIQUE INDEX labels_live ON labels(feature_id, method)
            WHERE status = 'ok' AND superseded_at IS NULL AND origin = 'saegold';
        """,
    )


@migrations()
def m009_scale_indexes(db: Database) -> None:
    """Small indexes for the questions asked of every feature on wide SAEs (issue 17: 262,144
    features x 100 examples), so `saegold status`, `annotate`'s start and the queue read a
    few megabytes instead of the examples index (hundreds of megabytes):

    * ``examples_top_first``: the features whose top example at rank 0 is stored, one entry
      per feature (store.examples.HAS_TOP asks it first, then the full index only for a
      feature without one, so the answer is exact whatever ranks a writer used);
    * ``labels_current``: the features with a live label (ok, not superseded);
    * ``labels_method_counts``: labels per method, status and origin, read without the rows;
    * ``labels_current_method``: the features with a live label per method, in order (their
      count needs no sort)."""
    _run_script(
        db,
        """
        CREATE INDEX examples_top_first ON examples(feature_id) WHERE kind = 'top' AND rank = 0;
        CREATE INDEX labels_current ON labels(feature_id) WHERE status = 'ok' AND superseded_at IS NULL;
        CREATE INDEX labels_method_counts ON labels(method, status, origin, superseded_at, feature_id);
        CREATE INDEX labels_current_method ON labels(method, feature_id)
            WHERE status = 'ok' AND superseded_at IS NULL;
        """,
    )


@migrations()
def m010_source_fingerprint(db: Database) -> None:
    """Each source's fingerprint: what produced its scores (model and revision or file digest,
    SAE config and weight digest, dtype, result-changing settings; engine/scoring/fingerprint.py).
    NULL: unknown (sources scored before this migration, Neuronpedia imports); the first score
    run that names such a source records its own."""
    _run_script(db, "ALTER TABLE sources ADD COLUMN fingerprint TEXT;  -- JSON\n")


@migrations()
def m011_superseded_results(db: Database) -> None:
    """Results a redo replaced (store/superseded.py): the replaced row of ``taxonomy_scores``
    or ``bench_scores``, whole, as JSON; the live tables keep one row per key as before."""
    _run_script(
        db,
        """
        CREATE TABLE superseded_results (
            id INTEGER PRIMARY KEY,
            tbl TEXT NOT NULL CHECK (tbl IN ('taxonomy_scores', 'bench_scores')),
            feature_id INTEGER NOT NULL REFERENCES features(id),
            label_id INTEGER REFERENCES labels(id),   -- bench_scores rows: the label scored
            row TEXT NOT NULL,                        -- JSON: every column of the replaced row
            superseded_at TEXT NOT NULL
        );
        CREATE INDEX superseded_results_feature ON superseded_results(feature_id);
        """,
    )


@migrations()
def m012_intruder_scores(db: Database) -> None:
    """Intruder benchmark results (issue 15), one per feature (the benchmark needs no label):
    accuracy over rounds, the rounds answered, parse failures, and per round what was shown
    and answered (``details``, JSON, with the Wilson 95% interval)."""
    _run_script(
        db,
        """
        CREATE TABLE intruder_scores (
            id INTEGER PRIMARY KEY,
            feature_id INTEGER NOT NULL UNIQUE REFERENCES features(id),
            value REAL,                    -- NULL when no round was answered
            n INTEGER NOT NULL,            -- rounds answered
            parse_failures INTEGER NOT NULL DEFAULT 0,
            judge_model TEXT,
            seed INTEGER,
            details TEXT,                  -- JSON: selection, chance, ci, rounds
            created_at TEXT NOT NULL
        );
        """,
    )



@migrations()
def m013_superseded_intruder(db: Database) -> None:
    """``superseded_results`` also keeps intruder results a redo replaced (issue 15's table
    came after m011): the table is rebuilt with the wider CHECK, every row kept as it was."""
    _run_script(
        db,
        """
        CREATE TABLE superseded_results_new (
            id INTEGER PRIMARY KEY,
            tbl TEXT NOT NULL CHECK (tbl IN ('taxonomy_scores', 'bench_scores', 'intruder_scores')),
            feature_id INTEGER NOT NULL REFERENCES features(id),
            label_id INTEGER REFERENCES labels(id),   -- bench_scores rows: the label scored
            row TEXT NOT NULL,                        -- JSON: every column of the replaced row
            superseded_at TEXT NOT NULL
        );
        INSERT INTO superseded_results_new(id, tbl, feature_id, label_id, row, superseded_at)
            SELECT id, tbl, feature_id, label_id, row, superseded_at FROM superseded_results;
        DROP TABLE superseded_results;
        ALTER TABLE superseded_results_new RENAME TO superseded_results;
        CREATE INDEX superseded_results_feature ON superseded_results(feature_id);
        """,
    )

@migrations()
def m014_active_queue(db: Database) -> None:
    """The active queue (issue 16): every draw with its probability, and the sampling weights.

    ``active_draws``: one row per draw of the active queue (``queue_order = active``): the
    feature drawn, for whom, with which probability out of how many features; ``assigned`` 1
    when it was handed to the annotator, 0 when it was already held (a repeat draw: no new
    judgment, still part of the design the estimates reweight by).  ``active_weights``: how much
    a verdict on each feature would shrink the widest interval (engine.stats.active), refreshed
    by ``saegold queue --refresh-active``; a feature without one weighs the mean."""
    _run_script(
        db,
        """
        CREATE TABLE active_draws (
            id INTEGER PRIMARY KEY,
            feature_id INTEGER NOT NULL REFERENCES features(id),
            annotator TEXT NOT NULL,
            probability REAL NOT NULL CHECK (probability > 0 AND probability <= 1),
            pool INTEGER NOT NULL CHECK (pool >= 1),
            assigned INTEGER NOT NULL CHECK (assigned IN (0, 1)),
            created_at TEXT NOT NULL
        );
        CREATE INDEX active_draws_feature ON active_draws(feature_id);
        CREATE TABLE active_weights (
            feature_id INTEGER PRIMARY KEY REFERENCES features(id),
            weight REAL NOT NULL CHECK (weight >= 0),
            updated_at TEXT NOT NULL
        );
        """,
    )


def _run_script(db: Database, script: str) -> None:
    """Run statements one by one: ``executescript`` would commit the migration's transaction."""
    import sqlite3

    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            db.execute(statement)
            statement = ""
    if statement.strip():
        raise ValueError(f"incomplete SQL statement in migration: {statement[:60]!r}")


def known_migrations() -> list[str]:
    return [m.name for m in migrations._migrations]


@migrations()
def m015_active_weights_mark(db: Database) -> None:
    """When the active queue's sampling weights were computed, and from what (issue 16): one
    row, ``mark`` being store.queue.active_inputs_mark at compute time (counts and highest ids
    of the judgments, labels, benchmark and taxonomy results the weights derive from); weights
    whose mark differs from the project's now are stale and are recomputed automatically."""
    _run_script(
        db,
        """
        CREATE TABLE active_weights_state (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            mark TEXT NOT NULL,            -- JSON: store.queue.active_inputs_mark
            reason TEXT NOT NULL,          -- which estimate the weights favour (engine.stats)
            n INTEGER NOT NULL,            -- features weighed
            computed_at TEXT NOT NULL
        );
        """,
    )
