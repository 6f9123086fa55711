"""Input score: over the top N <= 100 activating contexts of a feature, the fraction whose
max-activating token is among the feature's logit-lens tokens.

From a model run the comparison is by token id.  For features imported from Neuronpedia
with no model at hand, the stored activations are compared by token *string* with the
feature's stored promoted tokens (Neuronpedia's ``pos_str``), as the published code does.
Contexts whose maximum is not positive are not activating and do not count; Neuronpedia
lists the same context several times (once per activation bin), so identical token
sequences count once.
"""
from __future__ import annotations

import json

from collections.abc import Iterable, Sequence
from typing import Any

from saegold.engine.progress import Progress, null_progress
from saegold.store import settings, status
from saegold.store.db import Project, loads
from saegold.store.examples import examples as stored_examples
from saegold.store.superseded import supersede_taxonomy

from .errors import ScoringError

MAX_CONTEXTS = 100
STORED_SCORER_VERSION = "saegold-stored-input/1"


def max_token_hits(examples: Iterable[dict[str, Any]], lens: Sequence[Any], *, key: str = "token_ids",
                   n: int = MAX_CONTEXTS, dedupe: bool = False) -> tuple[int, int]:
    """``(hits, contexts)`` over the first ``n`` activating examples (best first).

    ``key`` is ``token_ids`` (compare ids) or ``tokens`` (compare strings)."""
    wanted = set(lens)
    seen: set[tuple] = set()
    hits = used = 0
    for ex in examples:
        if used >= n:
            break
        if ex["max_act"] is None or ex["max_act"] <= 0:
            continue
        seq = ex[key]
        if seq is None:
            raise ScoringError(f"example {ex.get('id')} has no {key}; cannot compute its input score")
        if dedupe:
            sig = tuple(ex["tokens"])
            if sig in seen:
                continue
            seen.add(sig)
        used += 1
        hits += seq[ex["max_idx"]] in wanted
    return hits, used


def input_score(examples: Iterable[dict[str, Any]], lens: Sequence[Any], *, key: str = "token_ids",
                n: int = MAX_CONTEXTS, dedupe: bool = False) -> tuple[float, int]:
    """``(score, contexts used)``; a feature with no activating context scores 0.0."""
    hits, used = max_token_hits(examples, lens, key=key, n=n, dedupe=dedupe)
    return (hits / used if used else 0.0), used


def score_stored(project: Project, *, source: str | None = None, features: Sequence[int] | None = None,
                 redo: bool = False, progress: Progress = null_progress) -> int:
    """Input scores of stored features from their stored top examples and promoted tokens
    (e.g. Neuronpedia imports).  Output scores are left as they are (NULL until a model run).

    Skips features that already have an input score unless ``redo``; features without
    stored examples or promoted tokens are left alone.  Returns the number scored."""
    from saegold.store.examples import put_examples
    from saegold.store.features import put_score

    where, args = ["1 = 1"], []
    if source is not None:
        where.append("s.name = ?")
        args.append(source)
        if project.scalar("SELECT COUNT(*) FROM sources WHERE name = ?", [source]) == 0:
            raise ScoringError(f"no source named {source!r} in {project.path}")
    if features is not None:
        where.append("f.idx IN (SELECT value FROM json_each(?))")   # one variable, any length
        args.append(json.dumps([int(i) for i in features]))
    if not redo:
        where.append("NOT EXISTS (SELECT 1 FROM taxonomy_scores t WHERE t.feature_id = f.id "
                     "AND t.input_score IS NOT NULL)")
    rows = project.query(
        f"SELECT f.id FROM features f JOIN sources s ON s.id = f.source_id WHERE {' AND '.join(where)} "
        "AND EXISTS (SELECT 1 FROM examples e WHERE e.feature_id = f.id AND e.kind = 'top') "
        "AND EXISTS (SELECT 1 FROM logit_tokens l WHERE l.feature_id = f.id AND l.kind = 'promoted') "
        "ORDER BY f.id", args,
    )
    ids = [r["id"] for r in rows]
    cfg = settings.load(project)
    thr_in, thr_out = cfg.input_threshold, cfg.output_threshold
    k_lens = cfg.logit_lens_k     # LL_j: the top k promoted tokens only
    done = 0
    for start in range(0, len(ids), 256):
        chunk = ids[start:start + 256]
        results = []
        for fid in chunk:
            exs = sorted(stored_examples(project, fid, "top"), key=lambda e: (-e["max_act"], e["rank"]))
            lens = [r["token"] for r in project.query(
                "SELECT token FROM logit_tokens WHERE feature_id = ? AND kind = 'promoted' ORDER BY rank LIMIT ?",
                [fid, k_lens])]
            hits, used = max_token_hits(exs, lens, key="tokens", dedupe=True)
            results.append((fid, hits, used, len(lens), stored_quantiles(project, fid, exs)))
        with project.write() as db:
            for fid, hits, used, n_lens, quant in results:
                if quant is not None:
                    put_examples(db, fid, "quantile", quant, STORED_QUANTILE_ORIGIN,
                                 bins=[q["bin"] for q in quant])
                old = db.execute("SELECT details FROM taxonomy_scores WHERE feature_id = ?", [fid]).fetchone()
                details = (loads(old[0]) if old and old[0] else {}) or {}
                details["input"] = {"from": "stored", "hits": hits, "contexts": used, "lens_tokens": n_lens,
                                    "compare": "token string", "version": STORED_SCORER_VERSION}
                if redo:
                    supersede_taxonomy(db, fid)
                put_score(db, fid, input_threshold=thr_in, output_threshold=thr_out,
                          scorer_version=STORED_SCORER_VERSION, input_score=hits / used if used else 0.0,
                          details=details)
        done += len(chunk)
        progress("input scores (stored)", done, len(ids))
    return done


STORED_QUANTILE_ORIGIN = "stored-bins"


def stored_quantiles(project: Project, feature_id: int, exs: list[dict[str, Any]], *,
                     n: int = 50, seed: int = 0) -> list[dict[str, Any]] | None:
    """Quantile examples of a feature from its stored activating examples (no model): up to
    ``n`` distinct contexts drawn at random (seeded by the feature id), in 10 equal-count bins
    of their maxima (:func:`engine.scoring.collect.quantile_bins`).  The stored examples are
    not a random sample of every activation (a Neuronpedia import holds its top list and a
    few per activation interval), so the bins span what is stored, weak to strong.

    None (leave them alone) when the feature has quantile examples from a model run."""
    import numpy as np

    from saegold.store.examples import quantile_bins

    made = project.scalar("SELECT origin FROM examples WHERE feature_id = ? AND kind = 'quantile' LIMIT 1",
                          [feature_id])
    if made is not None and made != STORED_QUANTILE_ORIGIN:
        return None
    seen: set[tuple] = set()
    pool = []
    for ex in exs:
        sig = tuple(ex["tokens"])
        if ex["max_act"] is None or ex["max_act"] <= 0 or sig in seen:
            continue
        seen.add(sig)
        pool.append(ex)
    rng = np.random.default_rng([seed, feature_id])
    pick = [pool[int(i)] for i in sorted(rng.permutation(len(pool))[:n])]
    return [{"tokens": ex["tokens"], "token_ids": ex["token_ids"], "acts": ex["acts"], "max_idx": ex["max_idx"],
             "max_act": ex["max_act"], "bin": b}
            for i, b in quantile_bins([float(e["max_act"]) for e in pick]) for ex in (pick[i],)]


# Why a feature in scope gets no input score from stored data, and what would give it one.
NO_EXAMPLES = (status.NO_EXAMPLES, status.NO_EXAMPLES_FILL)
NO_LENS = ("no logit-lens tokens stored (e.g. a trimmed Neuronpedia record without pos_str)",
           "import the full feature JSON (with pos_str), or score them on the model: "
           "saegold score --model M --sae S --corpus C --source NAME")
ALREADY = ("already have an input score", "give --redo")


def stored_skips(project: Project, *, source: str | None = None, features: Sequence[int] | None = None,
                 redo: bool = False) -> list[tuple[tuple[str, str], dict[str, int]]]:
    """The features in :func:`score_stored`'s scope that it does not score, by reason:
    ``[((reason, what would fill them), {source: count})]``, reasons in a fixed order, empty
    ones left out.  (The same conditions as :func:`score_stored`, read in one query.)"""
    where, args = ["1 = 1"], []
    if source is not None:
        where.append("s.name = ?")
        args.append(source)
    if features is not None:
        where.append("f.idx IN (SELECT value FROM json_each(?))")
        args.append(json.dumps([int(i) for i in features]))
    rows = project.query(
        "SELECT s.name AS source, "
        "EXISTS (SELECT 1 FROM examples e WHERE e.feature_id = f.id AND e.kind = 'top') AS has_examples, "
        "EXISTS (SELECT 1 FROM logit_tokens l WHERE l.feature_id = f.id AND l.kind = 'promoted') AS has_lens, "
        "EXISTS (SELECT 1 FROM taxonomy_scores t WHERE t.feature_id = f.id AND t.input_score IS NOT NULL) "
        "AS scored, COUNT(*) AS n "
        f"FROM features f JOIN sources s ON s.id = f.source_id WHERE {' AND '.join(where)} "
        "GROUP BY 1, 2, 3, 4 ORDER BY 1", args)
    out: dict[tuple[str, str], dict[str, int]] = {NO_EXAMPLES: {}, NO_LENS: {}, ALREADY: {}}
    for r in rows:
        why = (ALREADY if r["scored"] and not redo else NO_EXAMPLES if not r["has_examples"]
               else NO_LENS if not r["has_lens"] else None)
        if why is not None:
            out[why][r["source"]] = out[why].get(r["source"], 0) + r["n"]
    return [(why, per_source) for why, per_source in out.items() if per_source]

