"""The score job: model + SAE + corpus -> features, examples, logit tokens, taxonomy scores.

Stages, each reporting progress: load and check everything (nothing is written before the
model, the SAE, the hook and the corpus are known to be good); logit lens; output scores
with their evidence (top next tokens and a greedy continuation under amplification),
written one feature chunk per transaction; steered continuations at the project's target
KLs (:mod:`.steering_job`, unless ``steering=False``), again per chunk; one streamed pass over the corpus; then per
feature chunk the examples, statistics and input scores, again one transaction each.  An
interrupted job keeps every finished chunk, and a re-run skips what is done (``redo``
forces it).  ``shard=(i, n)`` takes the i-th of n disjoint, contiguous feature ranges, so n
processes can fill one project.
"""
from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from saegold.engine.progress import Progress, null_progress
from saegold.store import settings
from saegold.store.db import Project, loads
from saegold.store.feature_spec import check_width, parse_feature_spec
from saegold.store.examples import (Vocab, delete_examples, drop_changed_nla, prune_contexts, put_contexts_ids,
                            put_example_rows)
from saegold.store.features import get_or_create_source, put_logit_tokens, put_score, upsert_feature
from saegold.store.fingerprints import fingerprint_id
from saegold.store.superseded import supersede_taxonomy

from . import corpus as corpus_mod
from .collect import Collection, KeptActs, candidate_negatives, collect, kept_acts
from .errors import ScoringError
from .fingerprint import corpus_part, run_fingerprint, steering_part
from .inputscore import MAX_CONTEXTS
from .lens import Lens, logit_lens
from .models import load_model, load_sae, resolve_hook
from .output import OutputScorer
from .source import resolve_source
from .steering_job import SteeringReport, config_from_settings, steer_features

SCORER_VERSION = "saegold-score/1"
TOP_NEXT = 10


@dataclass
class ScoreReport:
    """What a score job did."""

    source: str
    features: int                 # features in scope (after --features / --shard)
    output_scored: int = 0
    input_scored: int = 0
    output_skipped: int = 0
    input_skipped: int = 0
    n_contexts: int = 0
    n_tokens: int = 0
    device: str = ""
    fast_path: str = ""           # skip-layers | full-layers (see OutputScorer.self_check)
    self_check: float | None = None   # fast vs naive relative difference on a few features
    f_max: float | None = None    # largest SAE activation at the neutral prompt's last token
    steering: SteeringReport | None = None   # None: steering not asked for
    fingerprint: str | None = None    # short id of what produced the source (store.features.fingerprint_id)
    notes: list[str] = field(default_factory=list)   # e.g. a fingerprint recorded for the first time
    seconds: dict[str, float] = field(default_factory=dict)


def requested_features(spec: str | Sequence[int] | None) -> list[int] | None:
    """The indices ``--features`` names (the grammar of :mod:`store.feature_spec`), or a list of
    indices sorted and de-duplicated; None means all.  Checked before anything loads."""
    if spec is None:
        return None
    if isinstance(spec, str):
        return parse_feature_spec(spec)
    return sorted({int(i) for i in spec})


def parse_features(spec: str | Sequence[int] | None, d_sae: int) -> list[int]:
    """``"0-999,1500"`` (inclusive ranges) or a list of indices, each within the SAE's width
    ``d_sae``; None means all."""
    wanted = requested_features(spec)
    if wanted is None:
        return list(range(d_sae))
    check_width(wanted, d_sae)
    return wanted


def parse_shard(spec: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """``"I/N"`` with 0 <= I < N, or ``"auto"``: torchrun's ``RANK``/``WORLD_SIZE``, else a
    Slurm job array's ``SLURM_ARRAY_TASK_ID``/``SLURM_ARRAY_TASK_COUNT``."""
    if spec is None or isinstance(spec, tuple):
        return spec
    if spec.strip() == "auto":
        env = os.environ
        if "WORLD_SIZE" in env and "RANK" in env:
            spec = f"{env['RANK']}/{env['WORLD_SIZE']}"
        elif "SLURM_ARRAY_TASK_ID" in env and "SLURM_ARRAY_TASK_COUNT" in env:
            first = int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
            spec = f"{int(env['SLURM_ARRAY_TASK_ID']) - first}/{env['SLURM_ARRAY_TASK_COUNT']}"
        else:
            raise ScoringError("--shard auto: neither torchrun (RANK, WORLD_SIZE) nor a Slurm job array "
                               "(SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT) is in the environment")
    m = re.fullmatch(r"(\d+)/(\d+)", spec.strip())
    if not m or not 0 <= int(m.group(1)) < int(m.group(2)):
        raise ScoringError(f"--shard {spec!r}: expected I/N with 0 <= I < N, e.g. 0/4")
    return int(m.group(1)), int(m.group(2))


def shard_of(features: list[int], shard: tuple[int, int] | None) -> list[int]:
    """The i-th of n contiguous, disjoint slices; together they cover ``features`` once."""
    if shard is None:
        return features
    i, n = shard
    return features[len(features) * i // n: len(features) * (i + 1) // n]


def _model_id(spec: str) -> str:
    path = Path(spec).expanduser()
    return path.resolve().name if path.exists() else spec


def score(project: Project, *, model: str, sae: str, corpus: str | None = None, ctx_len: int = 64,
          top_k: int = 100, n_negatives: int = 20, n_quantile: int = 50, verified_negatives: bool = False,
          features: str | Sequence[int] | None = None,
          device: str | None = None, dtype: str | None = None, batch_size: int = 32,
          feature_batch: int = 256, redo: bool = False, shard: str | tuple[int, int] | None = None,
          max_contexts: int | None = None, max_tokens: int | None = None, continuation_tokens: int = 8,
          source: str | None = None, text_field: str = "text", seed: int = 0,
          doc_sep: str = "auto", steering: bool = True, progress: Progress = null_progress) -> ScoreReport:
    """Score an SAE's features on a model (and corpus) into ``project``; see the module doc."""
    t0 = time.perf_counter()
    shard_t = parse_shard(shard)
    wanted = requested_features(features)
    corpus_spec = None
    if corpus is not None:
        corpus_spec = corpus_mod.resolve(corpus, text_field, doc_sep)
        if corpus_spec.files:
            corpus_mod.validate(corpus_spec)
    progress("load model and SAE", 0, 2)
    lm = load_model(model, device, dtype)
    progress("load model and SAE", 1, 2)
    the_sae, sae_id = load_sae(sae, lm.device)
    site = resolve_hook(lm, the_sae)
    progress("load model and SAE", 2, 2)
    d_sae = int(the_sae.cfg.d_sae)
    scope = shard_of(parse_features(wanted, d_sae), shard_t)
    cfg = settings.load(project)
    prompt, amp, k_lens = cfg.neutral_prompt, cfg.amplification, cfg.logit_lens_k
    thr = {"input_threshold": cfg.input_threshold, "output_threshold": cfg.output_threshold}
    steer_config = config_from_settings(cfg, seed) if steering else None
    for steer_prompt in (steer_config.prompts if steer_config is not None else ()):
        lm.encode_prompt(steer_prompt)        # a prompt the tokenizer cannot encode fails before any write
    input_part = None if corpus_spec is None else corpus_part(
        corpus_spec, ctx_len=ctx_len, top_k=top_k, n_negatives=n_negatives, seed=seed,
        max_contexts=max_contexts, max_tokens=max_tokens, n_quantile=n_quantile,
        verified_negatives=verified_negatives)
    fp = run_fingerprint(model_spec=model, model=lm.model, dtype=lm.dtype, sae_spec=sae, sae=the_sae,
                         hook=site.name, neutral_prompt=prompt, amplification=amp, logit_lens_k=k_lens,
                         continuation_tokens=continuation_tokens, input_part=input_part,
                         steering_part=None if steer_config is None else steering_part(steer_config))
    src = resolve_source(project, source=source, model_id=_model_id(model), sae_id=sae_id, fingerprint=fp,
                         redo=redo, requested=parse_features(wanted, d_sae))
    name = src.name
    report = ScoreReport(source=name, features=len(scope), device=str(lm.device), notes=src.notes,
                         fingerprint=fingerprint_id(src.recorded))
    report.seconds["load"] = time.perf_counter() - t0

    state = _stored_state(project, name)
    out_todo = [j for j in scope if redo or not _output_done(state.get(j))]
    in_todo = [j for j in scope if corpus_spec is not None and (redo or not _input_done(state.get(j)))]
    report.output_skipped = len(scope) - len(out_todo)
    report.input_skipped = (len(scope) - len(in_todo)) if corpus_spec is not None else 0

    needed = sorted(set(out_todo) | set(in_todo))
    t = time.perf_counter()
    lens = logit_lens(lm, the_sae, torch.tensor(needed, dtype=torch.long), k=k_lens, progress=progress)
    row_of = {j: i for i, j in enumerate(needed)}
    report.seconds["logit lens"] = time.perf_counter() - t
    scorer = None
    if out_todo:
        scorer = OutputScorer(lm, the_sae, site, prompt, amp)
        probe = torch.tensor(out_todo[:: max(1, len(out_todo) // 4)][:4], dtype=torch.long)
        report.self_check = scorer.self_check(probe, lens.top_ids[[row_of[j] for j in probe.tolist()]])
        report.fast_path = scorer.plan.name
        report.f_max = scorer.f_max

    # Everything is checked: from here on, writes (one feature chunk per transaction).
    with project.write() as db:
        source_id = get_or_create_source(db, src.model_id, src.sae_id, name=name, fingerprint=src.recorded,
                                         replace_fingerprint=src.replace, hook_name=site.name, layer=site.layer,
                                         d_sae=d_sae, width=lm.width)
    writer = _Writer(project, lm, source_id, thr, lens, row_of, str(lm.device), redo=redo)
    if scorer is not None:
        t = time.perf_counter()
        for start in range(0, len(out_todo), feature_batch):
            chunk = out_todo[start:start + feature_batch]
            feats = torch.tensor(chunk, dtype=torch.long)
            ids = lens.top_ids[[row_of[j] for j in chunk]]
            res = scorer.score(feats, ids, batch_size=feature_batch)
            conts = (scorer.continuations(feats, continuation_tokens, batch_size=feature_batch)
                     if continuation_tokens > 0 else [[] for _ in chunk])
            writer.write_output(chunk, res, conts, scorer)
            report.output_scored += len(chunk)
            progress("output scores", report.output_scored, len(out_todo))
        report.seconds["output scores"] = time.perf_counter() - t

    if steer_config is not None:
        t = time.perf_counter()
        report.steering = steer_features(project, lm, the_sae, site, source_id, name, scope, steer_config,
                                         redo=redo, feature_batch=feature_batch, progress=progress)
        report.seconds["steering"] = time.perf_counter() - t

    if in_todo and corpus_spec is not None:
        t = time.perf_counter()
        bos = lm.bos_id if lm.bos_id is not None else 0
        stream = corpus_mod.contexts(corpus_spec, lm.tokenizer, ctx_len, bos,
                                     max_contexts=max_contexts, max_tokens=max_tokens)
        col = collect(lm, the_sae, site, torch.tensor(in_todo, dtype=torch.long), stream,
                      batch_size=batch_size, top_k=top_k, n_negatives=n_negatives, n_sample=n_quantile,
                      expected_contexts=max_contexts, seed=seed, progress=progress)
        if col.n_contexts == 0:
            raise ScoringError(f"{corpus_spec.description}: the corpus gave no context to score")
        report.n_contexts, report.n_tokens = col.n_contexts, col.n_tokens
        report.seconds["collect"] = time.perf_counter() - t
        t = time.perf_counter()
        # Per-token activations of the kept contexts: each distinct context is re-run once per
        # column chunk, for all the chunk's features together.  Chunks bound host memory to
        # about 64M (feature, rank, token) cells; one chunk holds every feature of most SAEs.
        # Candidate hard (decoder-nearest features' top contexts) and other-feature negatives,
        # re-run with the rest: only those where the feature is silent are kept.
        # Off by default (the bench then marks its other-feature negatives unverified):
        # candidates depend on which features the run scores together (a shard or a resumed
        # run sees only its own features' top contexts and neighbours among them), so a
        # resumed or sharded run would store other negatives than one full run.
        extra = None
        if n_negatives and verified_negatives:
            hard, other = candidate_negatives(col, the_sae.W_dec[torch.tensor(in_todo)].detach().cpu(),
                                              n_hard=n_negatives, n_other=n_negatives, seed=seed)
            extra = torch.cat([hard, other])
        writer.n_hard = n_negatives if extra is not None else 0
        per_feature = top_k + n_quantile + n_negatives + (2 * n_negatives if extra is not None else 0)
        chunk_cols = max(1, min(len(in_todo), (64 << 20) // max(1, per_feature * ctx_len)))
        for start in range(0, len(in_todo), chunk_cols):
            cols = list(range(start, min(start + chunk_cols, len(in_todo))))
            kept = kept_acts(lm, the_sae, site, col, cols, batch_size=batch_size, sample=True, extra=extra,
                             progress=progress)
            pairs = kept.by_col()
            hits = _max_token_hits(kept, pairs, col, _lens_rows(lens, row_of, col, cols))
            for wstart in range(0, len(cols), feature_batch):
                wcols = cols[wstart:wstart + feature_batch]
                writer.write_input(wcols, col, kept, pairs, hits, corpus_spec.description, ctx_len)
                report.input_scored += len(wcols)
                progress("input scores", report.input_scored, len(in_todo))
        if shard_t is None:
            # Contexts a re-run no longer keeps.  Not in a sharded run: another shard may
            # still be about to use a context it has stored (they are pruned next time).
            with project.write() as db:
                prune_contexts(db, source_id)
        report.seconds["examples + input scores"] = time.perf_counter() - t
    report.seconds["total"] = time.perf_counter() - t0
    return report


def _stored_state(project: Project, source: str) -> dict[int, dict[str, Any]]:
    rows = project.query(
        "SELECT f.idx, f.n_tokens_seen, t.input_score, t.output_score, t.details FROM features f "
        "JOIN sources s ON s.id = f.source_id LEFT JOIN taxonomy_scores t ON t.feature_id = f.id "
        "WHERE s.name = ?", [source])
    return {r["idx"]: {**r, "details": loads(r["details"]) or {}} for r in rows}


def _output_done(row: dict[str, Any] | None) -> bool:
    if not row:
        return False
    return row["output_score"] is not None and row["details"].get("output", {}).get("version") == SCORER_VERSION


def _input_done(row: dict[str, Any] | None) -> bool:
    if not row:
        return False
    return row["input_score"] is not None and row["details"].get("input", {}).get("version") == SCORER_VERSION


class _Writer:
    """Writes one chunk of features per short transaction."""

    def __init__(self, project: Project, lm: Any, source_id: int, thr: dict[str, float], lens: Lens,
                 row_of: dict[int, int], device: str, *, redo: bool = False):
        self.project, self.lm, self.source_id, self.thr = project, lm, source_id, thr
        self.lens, self.row_of, self.device = lens, row_of, device
        self.ctx_ids: dict[int, int] = {}   # collection context id -> stored context id
        self.n_hard = 0                     # hard candidates per feature (then as many other-feature ones)
        # --redo: each feature's scores from before this run are superseded (kept in
        # store.superseded) by its first write here; its later writes in the run complete them.
        self.redo = redo
        self.superseded: set[int] = set()

    def _supersede(self, db: Any, fid: int, pending: set[int]) -> None:
        if self.redo and fid not in self.superseded and fid not in pending:
            supersede_taxonomy(db, fid)
            pending.add(fid)

    def _lens_lists(self, j: int) -> tuple[list, list]:
        r = self.row_of[j]
        promoted = list(zip(self.lm.token_strs(self.lens.top_ids[r].tolist()), self.lens.top_ids[r].tolist(),
                            self.lens.top_vals[r].tolist()))
        suppressed = list(zip(self.lm.token_strs(self.lens.bottom_ids[r].tolist()),
                              self.lens.bottom_ids[r].tolist(), self.lens.bottom_vals[r].tolist()))
        return promoted, suppressed

    @staticmethod
    def _merged_details(db: Any, fid: int, key: str, value: dict[str, Any]) -> dict[str, Any]:
        old = db.execute("SELECT details FROM taxonomy_scores WHERE feature_id = ?", [fid]).fetchone()
        details = (loads(old[0]) if old and old[0] else None) or {}
        details[key] = value
        return details

    def write_output(self, chunk: list[int], res: Any, conts: list[list[int]], scorer: OutputScorer) -> None:
        lm = self.lm
        rows = []
        for i, j in enumerate(chunk):
            promoted, suppressed = self._lens_lists(j)
            nxt = list(zip(lm.token_strs(res.next_ids[i].tolist()), res.next_ids[i].tolist(),
                           res.next_p[i].tolist()))
            text = lm.tokenizer.decode(conts[i], clean_up_tokenization_spaces=False) if conts[i] else None
            details = {"version": SCORER_VERSION, "prompt": scorer.prompt, "amplification": scorer.amp,
                       "f_max": scorer.f_max, "min_rank": int(res.min_rank[i]), "max_p": float(res.max_p[i]),
                       "vocab": int(scorer.clean_p.shape[0]), "hook": scorer.site.name,
                       "fast_path": scorer.plan.name,
                       "continuation_ids": conts[i]}
            rows.append((j, float(res.scores[i]), promoted, suppressed, nxt, text, details))
        pending: set[int] = set()
        with self.project.write() as db:
            for j, s, promoted, suppressed, nxt, text, details in rows:
                fid = upsert_feature(db, self.source_id, j)
                self._supersede(db, fid, pending)
                put_logit_tokens(db, fid, "promoted", promoted)
                put_logit_tokens(db, fid, "suppressed", suppressed)
                put_logit_tokens(db, fid, "amplified_next", nxt)
                put_score(db, fid, input_threshold=self.thr["input_threshold"],
                              output_threshold=self.thr["output_threshold"], scorer_version=SCORER_VERSION, output_score=s,
                          continuation=text, device=self.device,
                          details=self._merged_details(db, fid, "output", details))
        self.superseded |= pending

    def _context_ids(self, db: Any, col: Collection, wanted: set[int]) -> dict[int, int]:
        """Stored ids of the collection's contexts ``wanted`` (each stored once per source,
        its token strings once in the source's vocabulary)."""
        new = sorted(wanted - self.ctx_ids.keys())
        if new:
            seqs = [col.contexts[c] for c in new]
            vocab = Vocab(db, self.source_id)
            ids = sorted({int(i) for seq in seqs for i in seq})
            vocab.lookup(ids)
            vocab.add({i: self.lm.token_str(i) for i in ids if i not in vocab.known})
            self.ctx_ids.update(zip(new, put_contexts_ids(db, self.source_id, seqs)))
        return self.ctx_ids

    def write_input(self, cols: list[int], col: Collection, kept: KeptActs, pairs: dict[int, np.ndarray],
                    hits: dict[int, tuple[int, int]], corpus_desc: str, ctx_len: int) -> None:
        density = col.density
        rows = []
        for c in cols:
            j = int(col.features[c])
            h, used = hits.get(c, (0, 0))
            score = h / used if used else 0.0
            details = {"version": SCORER_VERSION, "from": "corpus", "corpus": corpus_desc, "ctx_len": ctx_len,
                       "hits": h, "contexts": used, "n_tokens": col.n_tokens, "n_contexts": col.n_contexts}
            promoted, suppressed = self._lens_lists(j)
            rows.append((c, j, float(density[c]), float(col.max_act[c]), score, promoted, suppressed, details))
        # Plain Python lists once per chunk: per-element numpy scalars cost more than the writes.
        neg_of = {c: [n for n in ns if n >= 0] for c, ns in zip(cols, col.neg_ctx[:, cols].T.tolist())}
        p_of = {c: pairs[c].tolist() for c in cols if c in pairs}
        k_ctx, k_rank, k_mi, k_mx = (kept.ctx.tolist(), kept.rank.tolist(), kept.max_idx.tolist(),
                                     kept.max_act.tolist())
        top_k = kept.top_k
        wanted = {k_ctx[p] for ps in p_of.values() for p in ps}
        wanted.update(n for ns in neg_of.values() for n in ns)
        known = dict(self.ctx_ids)
        pending: set[int] = set()
        try:
            with self.project.write() as db:
                cid = self._context_ids(db, col, wanted)
                for c, j, dens, mx, score, promoted, suppressed, details in rows:
                    fid = upsert_feature(db, self.source_id, j, density=dens, max_act=mx,
                                         n_tokens_seen=col.n_tokens)
                    self._supersede(db, fid, pending)
                    ps = p_of.get(c, ())
                    top = [(fid, "top", k_rank[p], None, cid[k_ctx[p]], kept.blobs[p], k_mi[p], k_mx[p], "scored")
                           for p in ps if k_rank[p] < top_k]
                    negs = [(fid, "negative", r, None, cid[n], None, 0, 0.0, "scored")
                            for r, n in enumerate(neg_of[c])]
                    bin_of = {ctx: b for ctx, _, b in col.sample(c)}
                    q_end = top_k + (col.q_ctx.shape[0] if col.q_ctx.numel() else 0)
                    sample = sorted((p for p in ps if top_k <= k_rank[p] < q_end and k_mx[p] > 0),
                                    key=lambda p: (-k_mx[p], k_rank[p]))
                    # Negatives verified by the model: candidates on which the feature is silent
                    # ('hard': decoder-nearest features' top contexts; 'other': random features').
                    for origin, lo, hi in (("hard", q_end, q_end + self.n_hard),
                                           ("other", q_end + self.n_hard, q_end + 2 * self.n_hard)):
                        silent = [p for p in ps if lo <= k_rank[p] < hi and k_mx[p] <= 0]
                        negs += [(fid, "negative", len(negs) + i, None, cid[k_ctx[p]], None, 0, 0.0, origin)
                                 for i, p in enumerate(silent)]
                    quant = [(fid, "quantile", r, bin_of[k_ctx[p]], cid[k_ctx[p]], kept.blobs[p], k_mi[p], k_mx[p],
                              "scored") for r, p in enumerate(sample)]
                    for kind, ex_rows in (("top", top), ("negative", negs), ("quantile", quant)):
                        drop_changed_nla(db, fid, kind, [r[4] for r in ex_rows])
                        delete_examples(db, fid, kind, from_rank=len(ex_rows))
                        put_example_rows(db, ex_rows)
                    put_logit_tokens(db, fid, "promoted", promoted)
                    put_logit_tokens(db, fid, "suppressed", suppressed)
                    put_score(db, fid, input_threshold=self.thr["input_threshold"],
                              output_threshold=self.thr["output_threshold"], scorer_version=SCORER_VERSION, input_score=score,
                              device=self.device, details=self._merged_details(db, fid, "input", details))
        except BaseException:
            self.ctx_ids = known          # what a rolled-back transaction wrote is not stored
            raise
        self.superseded |= pending


def _lens_rows(lens: Lens, row_of: dict[int, int], col: Collection, cols: list[int]) -> np.ndarray:
    """The logit-lens top token ids of each column in ``cols`` ([len(cols), k])."""
    return lens.top_ids[[row_of[int(col.features[c])] for c in cols]].cpu().numpy()


def _max_token_hits(kept: KeptActs, pairs: dict[int, np.ndarray], col: Collection, lens_ids: np.ndarray) -> dict[int, tuple[int, int]]:
    """Per column ``(hits, contexts)``: over its first :data:`MAX_CONTEXTS` activating kept
    contexts (best first), how many have their max-activating token among its logit-lens
    tokens (:func:`engine.scoring.inputscore.max_token_hits`, by token id, vectorised)."""
    if not len(kept.blobs):
        return {}
    top = kept.rank < kept.top_k          # the input score reads the top contexts only
    tid = np.fromiter((col.contexts[int(c)][int(m)] for c, m in zip(kept.ctx, kept.max_idx)),
                      dtype=np.int64, count=len(kept.ctx))
    hit = (lens_ids[kept.col_i] == tid[:, None]).any(axis=1)
    out: dict[int, tuple[int, int]] = {}
    for c, ps in pairs.items():
        ps = ps[top[ps] & (kept.max_act[ps] > 0)][:MAX_CONTEXTS]
        out[c] = (int(hit[ps].sum()), len(ps))
    return out
