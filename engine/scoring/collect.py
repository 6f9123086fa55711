"""One streamed, batched pass over a corpus: per feature its top-K activating contexts,
firing density, max activation, a reservoir of non-activating contexts, and a reservoir
of activating contexts (a uniform random sample of every context where the feature fires,
from which the quantile bins are drawn after the pass: :func:`quantile_bins`).

Device memory stays bounded whatever the corpus length: per feature only the K best
(context max, context id) pairs, R negative reservoir (random key, context id) pairs and Q
activating reservoir (random key, context max, context id) triples are kept,
merged batch by batch with ``torch.topk``; token ids are kept on the host only for contexts
still referenced.  Per-token activations of the kept contexts are recomputed afterwards,
one feature chunk at a time (:func:`per_token_acts`).

BOS positions (the first token of every context and the separators between documents) are
never counted: they are masked out of activations, maxima and densities.
"""
from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:   # shapes for readers and type checkers only (jaxtyping costs ~1 s to import)
    from jaxtyping import Bool, Float, Int

from saegold.engine.progress import Progress, null_progress

from saegold.store.examples import QUANTILE_BINS, quantile_bins  # noqa: F401  (re-exported)

from .models import HookSite, LoadedModel, run_to_site

EDGE_FACTOR = 4   # the activating reservoir holds 4 x the kept sample's maxima to place the bins


@dataclass
class Collection:
    """What the pass found; tensors on the CPU, columns in the order of ``features``."""

    features: Int[torch.Tensor, " F"]        # SAE feature indices
    n_tokens: int                           # tokens counted (BOS excluded)
    n_contexts: int
    fire_count: Int[torch.Tensor, " F"]      # tokens with activation > 0
    max_act: Float[torch.Tensor, " F"]
    top_vals: Float[torch.Tensor, "K F"]    # context maxima, descending; <= 0 means empty
    top_ctx: Int[torch.Tensor, "K F"]       # context ids
    neg_ctx: Int[torch.Tensor, "R F"]       # reservoir of non-activating context ids; -1 empty
    # The activating reservoir: context maxima in ascending key order (<= 0 empty), W =
    # EDGE_FACTOR x Q, and the context ids of its first Q slots (the kept sample).
    q_vals: Float[torch.Tensor, "W F"] = field(default_factory=lambda: torch.zeros(0, 0))
    q_ctx: Int[torch.Tensor, "Q F"] = field(default_factory=lambda: torch.zeros(0, 0, dtype=torch.long))
    contexts: dict[int, Sequence[int]] = field(repr=False, default_factory=dict)

    @property
    def density(self) -> Float[torch.Tensor, " F"]:
        return self.fire_count.double() / max(self.n_tokens, 1)

    def top(self, col: int) -> list[tuple[int, float]]:
        """(context id, max activation) of the column's activating contexts, best first."""
        v, c = self.top_vals[:, col], self.top_ctx[:, col]
        keep = v > 0
        return list(zip(c[keep].tolist(), v[keep].tolist()))

    def negatives(self, col: int) -> list[int]:
        c = self.neg_ctx[:, col]
        return c[c >= 0].tolist()

    @property
    def top_k(self) -> int:
        return int(self.top_vals.shape[0])

    def sample(self, col: int) -> list[tuple[int, float, int]]:
        """(context id, max activation, quantile bin) of the column's kept activating sample:
        a uniform random sample (without replacement) of every context where it fires.

        The bin of each is its place in the larger reservoir it belongs to (EDGE_FACTOR
        times as many maxima, also uniform): 10 equal-count bins of that reservoir's order,
        9 the strongest, so the bins estimate the activation deciles four times more finely
        than the kept sample alone could."""
        if self.q_ctx.numel() == 0:
            return []
        vals = self.q_vals[:, col].tolist()
        filled = [i for i, v in enumerate(vals) if v > 0]
        order = sorted(filled, key=lambda i: (vals[i], -i))            # ascending
        rank = {i: r for r, i in enumerate(order)}
        ctx = self.q_ctx[:, col].tolist()
        return [(ctx[i], vals[i], (rank[i] * QUANTILE_BINS) // len(order))
                for i in range(len(ctx)) if i in rank]


def pad_batch(batch: Sequence[Sequence[int]], pad_id: int, device: torch.device
              ) -> tuple[Int[torch.Tensor, "B T"], Bool[torch.Tensor, "B T"]]:
    """Right-padded ids and the mask of counted positions (real, non-BOS tokens)."""
    width = max(len(c) for c in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    for i, c in enumerate(batch):
        ids[i, : len(c)] = torch.tensor(list(c), dtype=torch.long)
    lengths = torch.tensor([len(c) for c in batch])
    mask = (torch.arange(width)[None, :] < lengths[:, None]) & (ids != pad_id)
    return ids.to(device), mask.to(device)


@torch.inference_mode()
def sae_acts(lm: LoadedModel, sae: Any, site: HookSite, features: Int[torch.Tensor, " F"] | None,
             batch: Sequence[Sequence[int]], bos_id: int) -> tuple[Float[torch.Tensor, "B T F"], Bool[torch.Tensor, "B T"]]:
    """SAE activations (masked positions zeroed) of the given features, and the mask.

    The model runs only up to the site; right padding needs no attention mask in a causal
    model.  Padding uses the BOS id, whose positions are masked anyway."""
    ids, mask = pad_batch(batch, bos_id, lm.device)
    h = run_to_site(lm, site, ids)
    acts = sae.encode(h.to(sae.W_dec.dtype))
    if features is not None:
        acts = acts[..., features.to(acts.device)]
    acts[~mask] = 0.0
    return acts, mask


class Collector:
    """Accumulates the top-K / reservoir state batch by batch."""

    def __init__(self, lm: LoadedModel, sae: Any, site: HookSite, features: torch.Tensor, *,
                 top_k: int = 100, n_negatives: int = 20, n_sample: int = 0, seed: int = 0):
        self.lm, self.sae, self.site = lm, sae, site
        self.features = features.cpu()
        self.select = None if torch.equal(self.features, torch.arange(int(sae.cfg.d_sae))) else self.features
        self.k, self.r, self.q = top_k, n_negatives, n_sample
        self.qw = EDGE_FACTOR * n_sample     # reservoir width: the maxima that place the bins
        dev = lm.device
        n = len(features)
        self.bos = lm.bos_id if lm.bos_id is not None else 0
        self.fire = torch.zeros(n, dtype=torch.long, device=dev)
        self.max_act = torch.zeros(n, device=dev)
        # Per feature (rows): the K best context maxima, descending (0 = empty slot), and the
        # R smallest reservoir keys, ascending (inf = empty slot), with their context ids.
        self.top_vals = torch.zeros(n, top_k, device=dev)
        self.top_ctx = torch.full((n, top_k), -1, dtype=torch.long, device=dev)
        self.neg_keys = torch.full((n, n_negatives), float("inf"), device=dev)
        self.neg_ctx = torch.full((n, n_negatives), -1, dtype=torch.long, device=dev)
        # The activating reservoir: the Q smallest keys among contexts that fire, ascending.
        # Only the first Q slots' contexts are ever stored: a slot's position only grows as
        # smaller keys arrive, so a context past slot Q never comes back (host copies go).
        self.q_keys = torch.full((n, self.qw), float("inf"), device=dev)
        self.q_vals = torch.zeros(n, self.qw, device=dev)
        self.q_ctx = torch.full((n, self.qw), -1, dtype=torch.long, device=dev)
        self.seed = seed
        self.features_dev = self.features.to(dev)
        self.contexts: dict[int, Sequence[int]] = {}
        self.n_tokens = 0
        self.n_contexts = 0
        self._batches = 0

    def add(self, batch: list[list[int]]) -> None:
        ids = torch.arange(self.n_contexts, self.n_contexts + len(batch), device=self.lm.device)
        for i, tokens in zip(ids.tolist(), batch):
            self.contexts[i] = array("i", tokens)            # 4 bytes a token on the host
        self.n_contexts += len(batch)
        acts, mask = sae_acts(self.lm, self.sae, self.site, self.select, batch, self.bos)
        self.n_tokens += int(mask.sum())
        flat = acts.view(-1, acts.shape[-1])
        self.fire += torch.sign(flat).sum(dim=0, dtype=torch.float32).long()   # activations are >= 0
        cmax = acts.amax(dim=1).to(self.max_act.dtype)                         # [B, F]
        self.max_act = torch.maximum(self.max_act, cmax.amax(dim=0))
        # Merge only the features whose best context in this batch beats their K-th.  Stable
        # sorts: equal maxima keep the earlier context, so the result depends neither on the
        # batching nor on which other features are scored alongside.
        sel = (cmax.amax(dim=0) > self.top_vals[:, -1]).nonzero().squeeze(1)
        if sel.numel():
            vals = torch.cat([self.top_vals[sel], cmax[:, sel].T], dim=1)
            ctx = torch.cat([self.top_ctx[sel], ids[None, :].expand(len(sel), -1)], dim=1)
            vals, order = vals.sort(dim=1, descending=True, stable=True)
            self.top_vals[sel] = vals[:, : self.k]
            self.top_ctx[sel] = ctx.gather(1, order[:, : self.k])
        if self.r:
            keys = _uniform_keys(ids, self.features_dev, self.seed)
            keys.masked_fill_(cmax > 0, float("inf"))
            sel = (keys.amin(dim=0) < self.neg_keys[:, -1]).nonzero().squeeze(1)
            if sel.numel():
                k = torch.cat([self.neg_keys[sel], keys[:, sel].T], dim=1)
                ctx = torch.cat([self.neg_ctx[sel], ids[None, :].expand(len(sel), -1)], dim=1)
                k, order = k.sort(dim=1, stable=True)
                self.neg_keys[sel] = k[:, : self.r]
                self.neg_ctx[sel] = ctx.gather(1, order[:, : self.r])
        if self.q:
            # Independent keys (another salt) over the contexts that fire: the Q smallest form
            # a uniform sample without replacement, whatever the batching or feature subset.
            keys = _uniform_keys(ids, self.features_dev, self.seed, salt=0x27D4EB2F)
            keys.masked_fill_(cmax <= 0, float("inf"))
            sel = (keys.amin(dim=0) < self.q_keys[:, -1]).nonzero().squeeze(1)
            if sel.numel():
                k = torch.cat([self.q_keys[sel], keys[:, sel].T], dim=1)
                v = torch.cat([self.q_vals[sel], cmax[:, sel].T], dim=1)
                ctx = torch.cat([self.q_ctx[sel], ids[None, :].expand(len(sel), -1)], dim=1)
                k, order = k.sort(dim=1, stable=True)
                self.q_keys[sel] = k[:, : self.qw]
                self.q_vals[sel] = v.gather(1, order[:, : self.qw])
                self.q_ctx[sel] = ctx.gather(1, order[:, : self.qw])
        self._batches += 1
        if self._batches % 64 == 0:
            self._prune()

    def _referenced(self) -> set[int]:
        ref = set(self.top_ctx[self.top_vals > 0].unique().tolist())
        ref.update(self.neg_ctx[torch.isfinite(self.neg_keys)].unique().tolist())
        kept = self.q_ctx[:, : self.q]
        ref.update(kept[torch.isfinite(self.q_keys[:, : self.q])].unique().tolist())
        return ref

    def _prune(self) -> None:
        ref = self._referenced()
        self.contexts = {i: c for i, c in self.contexts.items() if i in ref}

    def result(self) -> Collection:
        self._prune()
        neg = self.neg_ctx.masked_fill(~torch.isfinite(self.neg_keys), -1)
        filled = torch.isfinite(self.q_keys)
        return Collection(
            features=self.features, n_tokens=self.n_tokens, n_contexts=self.n_contexts,
            fire_count=self.fire.cpu(), max_act=self.max_act.cpu(), top_vals=self.top_vals.T.cpu(),
            top_ctx=self.top_ctx.T.cpu(), neg_ctx=neg.T.cpu(),
            q_vals=self.q_vals.masked_fill(~filled, 0.0).T.cpu(),
            q_ctx=self.q_ctx.masked_fill(~filled, -1)[:, : self.q].T.cpu(), contexts=self.contexts,
        )


def _uniform_keys(ctx_ids: torch.Tensor, features: torch.Tensor, seed: int, salt: int = 0) -> torch.Tensor:
    """Reservoir keys in [0, 1) from a hash of (seed, salt, context id, feature index): the
    same sample whatever the batch size, shard or feature subset (``salt`` separates the
    negatives' reservoir from the activating one)."""
    x = ctx_ids[:, None] * 0x9E3779B1 + features[None, :] * 0x85EBCA77 + seed * 0xC2B2AE3D + salt * 0x165667B1
    for mul in (0xBF58476D1CE4E5B9 - (1 << 64), 0x94D049BB133111EB - (1 << 64)):
        x = x ^ (x >> 31)
        x = x * mul                      # int64 products wrap around, as the hash wants
    x = x ^ (x >> 29)
    return (x & ((1 << 24) - 1)).float() / float(1 << 24)


def candidate_negatives(col: Collection, w_dec: Float[torch.Tensor, "F d"], *, n_hard: int = 20, n_other: int = 20,
                        neighbours: int = 3, seed: int = 0) -> tuple[Int[torch.Tensor, "H F"], Int[torch.Tensor, "O F"]]:
    """Contexts to check as a feature's *hard* and *other-feature* negatives: ``[H, F]`` and
    ``[O, F]`` context ids (-1 empty), columns in the order of ``col.features``.

    Hard: the top contexts of the ``neighbours`` features nearest to it by decoder cosine
    (``w_dec``: the columns' decoder rows), best ranks first, as Delphi's neighbour negatives.
    Other: the top context of ``n_other`` other random features (seeded per feature index).
    Neither excludes contexts where the feature itself fires: the caller re-runs them and keeps
    only those where it is silent (:func:`kept_acts` with ``extra``)."""
    n = len(col.features)
    hard = torch.full((n_hard, n), -1, dtype=torch.long)
    other = torch.full((n_other, n), -1, dtype=torch.long)
    if n < 2:
        return hard, other
    w = torch.nn.functional.normalize(w_dec.float(), dim=1)
    k = min(neighbours, n - 1)
    nbrs = torch.empty(n, k, dtype=torch.long)
    for start in range(0, n, 1024):                    # [1024, F] cosines at a time
        cos = w[start:start + 1024] @ w.T
        rows = torch.arange(start, min(start + 1024, n))
        cos[rows - start, rows.to(cos.device)] = -float("inf")
        nbrs[start:start + 1024] = cos.topk(k, dim=1).indices.cpu()
    top_ctx, filled = col.top_ctx.tolist(), (col.top_vals > 0).tolist()
    by_col = [[top_ctx[r][c] for r in range(len(top_ctx)) if filled[r][c]] for c in range(n)]
    feats = col.features.tolist()
    for c in range(n):
        own = set(by_col[c])
        got: list[int] = []
        lists = [by_col[m] for m in nbrs[c].tolist()]
        for r in range(max((len(x) for x in lists), default=0)):
            for lst in lists:
                if r < len(lst) and lst[r] not in own and lst[r] not in got and len(got) < n_hard:
                    got.append(lst[r])
        hard[: len(got), c] = torch.tensor(got, dtype=torch.long)
        rng = np.random.default_rng([seed, 0x0E6A7, feats[c]])
        picks = [m for m in rng.permutation(n).tolist() if m != c and by_col[m]][:n_other]
        got = []
        for m in picks:
            ctx = by_col[m][int(rng.integers(len(by_col[m])))]
            if ctx not in got:
                got.append(ctx)
        other[: len(got), c] = torch.tensor(got, dtype=torch.long)
    return hard, other


def _batched(items: Iterable[list[int]], size: int) -> Iterator[list[list[int]]]:
    batch: list[list[int]] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def collect(lm: LoadedModel, sae: Any, site: HookSite, features: torch.Tensor,
            contexts: Iterable[list[int]], *, batch_size: int = 32, top_k: int = 100,
            n_negatives: int = 20, n_sample: int = 0, expected_contexts: int | None = None, seed: int = 0,
            progress: Progress = null_progress) -> Collection:
    """Stream ``contexts`` through the model and SAE once, in batches (``n_sample``: size of
    each feature's activating reservoir, 0 for none)."""
    col = Collector(lm, sae, site, features, top_k=top_k, n_negatives=n_negatives, n_sample=n_sample, seed=seed)
    for batch in _batched(contexts, batch_size):
        col.add(batch)
        progress("activations (contexts)", col.n_contexts, expected_contexts)
    return col.result()


@dataclass
class KeptActs:
    """Per-token activations of the kept top contexts of some columns, one entry per
    (column, rank) pair with a positive context max: its max position and value and the
    sparse activations as a :mod:`store.examples` blob.  With the activating sample too,
    ranks from ``top_k`` on are its reservoir slots (``rank - top_k``)."""

    cols: list[int]
    col_i: Int[np.ndarray, " P"]        # index into ``cols``
    rank: Int[np.ndarray, " P"]
    ctx: Int[np.ndarray, " P"]          # context id
    max_idx: Int[np.ndarray, " P"]      # first position of the max
    max_act: Float[np.ndarray, " P"]    # float32 values as python floats read them
    blobs: list[bytes | None]
    top_k: int = 0

    def by_col(self) -> dict[int, np.ndarray]:
        """Column -> its pair indices in rank order."""
        order = np.lexsort((self.rank, self.col_i))
        split = np.flatnonzero(np.diff(self.col_i[order])) + 1
        return {self.cols[int(self.col_i[g[0]])]: g for g in np.split(order, split) if len(g)}


@torch.inference_mode()
def kept_acts(lm: LoadedModel, sae: Any, site: HookSite, col: Collection, cols: list[int], *,
              batch_size: int = 32, sample: bool = False, extra: torch.Tensor | None = None,
              progress: Progress = null_progress) -> KeptActs:
    """Per-token activations of the kept top contexts of columns ``cols`` (and, with
    ``sample``, of their activating-reservoir contexts; with ``extra``, ``[E, F]`` context ids,
    -1 empty, of those contexts too, after them: :func:`candidate_negatives`).

    Each distinct context is run once for all the columns together (not once per column),
    and only what is stored is brought back to the host: per (column, rank) the nonzero
    positions and values, the max and its position."""
    empty = KeptActs(cols, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64),
                     np.zeros(0, np.int64), np.zeros(0, np.float32), [], col.top_k)
    if not cols:
        return empty
    cols_t = torch.tensor(cols)
    vals, ctx = col.top_vals[:, cols_t], col.top_ctx[:, cols_t]
    if sample and col.q_ctx.numel():
        q = col.q_ctx.shape[0]
        vals = torch.cat([vals, col.q_vals[:q, cols_t]])
        ctx = torch.cat([ctx, col.q_ctx[:, cols_t]])
    if extra is not None and extra.numel():
        e = extra[:, cols_t]
        vals = torch.cat([vals, (e >= 0).to(vals.dtype)])      # present: a placeholder value > 0
        ctx = torch.cat([ctx, e])
    rank_i, col_i = (vals > 0).nonzero(as_tuple=True)
    pair_ctx = ctx[rank_i, col_i]
    if pair_ctx.numel() == 0:
        return empty
    order = torch.argsort(pair_ctx, stable=True)
    # Host copies from here on (numpy), in context order.
    rank_n, col_n, ctx_n = rank_i[order].numpy(), col_i[order].numpy(), pair_ctx[order].numpy()
    needed = np.unique(ctx_n)
    feats = col.features[cols_t]
    bos = lm.bos_id if lm.bos_id is not None else 0
    n = len(ctx_n)
    max_idx = np.zeros(n, np.int64)
    max_act = np.zeros(n, np.float32)
    blobs: list[bytes | None] = [None] * n
    starts = np.searchsorted(ctx_n, needed)           # pairs are sorted by context
    bounds = np.append(starts, n)
    for start in range(0, len(needed), batch_size):
        chunk = needed[start:start + batch_size].tolist()
        acts, _ = sae_acts(lm, sae, site, feats, [col.contexts[c] for c in chunk], bos)
        lo, hi = int(bounds[start]), int(bounds[min(start + batch_size, len(needed))])
        b_local = np.searchsorted(np.asarray(chunk), ctx_n[lo:hi])
        sel = acts[torch.from_numpy(b_local).to(acts.device), :, torch.from_numpy(col_n[lo:hi]).to(acts.device)]
        a = sel.float().cpu().numpy()                    # [pairs, T]; padding is zero
        mi = a.argmax(axis=1)                            # the first max, as before
        max_idx[lo:hi] = mi
        max_act[lo:hi] = a[np.arange(len(a)), mi]
        rows, pos = np.nonzero(a)
        counts = np.bincount(rows, minlength=len(a))
        ends = np.cumsum(counts)
        wide = a.shape[1] > 65535
        pos_b = pos.astype("<u4" if wide else "<u2").tobytes()
        val_b = a[rows, pos].astype("<f4").tobytes()
        pw = 4 if wide else 2
        head = bytes([pw << 4 | 4])
        prev = 0
        for i, end in enumerate(ends.tolist()):
            if end > prev:
                blobs[lo + i] = head + pos_b[prev * pw:end * pw] + val_b[prev * 4:end * 4]
            prev = end
        progress("examples (re-run kept contexts)", min(start + batch_size, len(needed)), len(needed))
    return KeptActs(cols, col_n.astype(np.int64), rank_n.astype(np.int64), ctx_n.astype(np.int64),
                    max_idx, max_act, blobs, col.top_k)


@torch.inference_mode()
def per_token_acts(lm: LoadedModel, sae: Any, site: HookSite, col: Collection, cols: list[int], *,
                   batch_size: int = 32, progress: Progress = null_progress) -> dict[tuple[int, int], list[float]]:
    """Dense per-token activations of the kept top contexts: ``(col, rank) -> acts`` (the
    reference the stored sparse form is checked against)."""
    from saegold.store.examples import decode_acts

    kept = kept_acts(lm, sae, site, col, cols, batch_size=batch_size, progress=progress)
    return {(cols[int(kept.col_i[p])], int(kept.rank[p])): decode_acts(kept.blobs[p], len(col.contexts[int(kept.ctx[p])]))
            for p in range(len(kept.blobs))}
