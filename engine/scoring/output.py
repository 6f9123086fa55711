"""Output score of SAE features (Arad, Mueller, Belinkov 2025), fast and naive, plus evidence.

At the SAE's site, last position of the neutral prompt: ``f = encode(h)``,
``err = h - decode(f)``, ``f[j] += amp * max(f)``, ``h' = decode(f) + err``; finish the
forward pass, ``p = softmax(logits[last])`` and
``S_out = (1 - min_rank(LL_j) / |V|) * max_{t in LL_j} p[t]`` (rank 0 = most probable).

The fast path runs the clean prefix once into a KV cache and then, batched over features,
only the last position and only the layers after the site (earlier layers are skipped: the
modified residual replaces whatever they would give).  It stops at the final norm and does
the unembedding itself, a block of rows at a time, reducing each block of logits to the
score, the rank and the top next tokens while it is still in cache: the ``[features, V]``
probability matrix is never materialised.  :meth:`OutputScorer.score_naive` is the reference:
one full forward pass of the whole prompt per feature, through the model's own head.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:   # shapes for readers and type checkers only (jaxtyping costs ~1 s to import)
    from jaxtyping import Float, Int

from saegold.engine.progress import Progress, null_progress

from .errors import ScoringError
from .fastpath import FastPath
from .models import HookSite, LoadedModel, edit_site, start_at_site, stop_at


@dataclass
class OutputScores:
    """Per feature: the score, its two factors, and the top next tokens under amplification."""

    scores: Float[torch.Tensor, " n"]       # float64
    min_rank: Int[torch.Tensor, " n"]       # int64
    max_p: Float[torch.Tensor, " n"]        # float64
    next_ids: Int[torch.Tensor, "n top"]    # most probable next tokens
    next_p: Float[torch.Tensor, "n top"]

    @staticmethod
    def cat(parts: list[OutputScores], top: int) -> OutputScores:
        if not parts:
            z = torch.empty(0)
            return OutputScores(z.double(), z.long(), z.double(), torch.empty(0, top, dtype=torch.long),
                                torch.empty(0, top))
        return OutputScores(*(torch.cat(x) for x in zip(*(
            (o.scores, o.min_rank, o.max_p, o.next_ids, o.next_p) for o in parts))))


def top_logits(logits: Float[torch.Tensor, "b V"], k: int, block: int = 64
               ) -> tuple[Float[torch.Tensor, "b k"], Int[torch.Tensor, "b k"]]:
    """``logits.topk(k)`` -> (values, ids), found in two short steps.

    The vocabulary is cut into blocks of ``block`` logits; the ``k`` largest logits all lie in
    the ``k`` blocks with the largest maxima (a logit in any other block has ``k`` blocks'
    maxima, ``k`` distinct logits, above or level with it), plus the ragged end, so only those
    are searched.  One pass for the block maxima replaces a ``k``-selection over all of ``V``."""
    b, v = logits.shape
    n_blocks = v // block
    if k <= 0 or n_blocks <= k or not logits.is_contiguous():
        return logits.topk(min(k, v), dim=-1)
    body = logits[:, : n_blocks * block].view(b, n_blocks, block)
    blocks = body.amax(dim=-1).topk(k, dim=-1).indices                                   # [b, k]
    offsets = torch.arange(block, device=logits.device)
    cand = body.gather(1, blocks[..., None].expand(b, k, block)).reshape(b, k * block)
    cand_ids = (blocks[..., None] * block + offsets).reshape(b, k * block)
    if v > n_blocks * block:
        rest = torch.arange(n_blocks * block, v, device=logits.device)
        cand = torch.cat([cand, logits[:, n_blocks * block:]], dim=1)
        cand_ids = torch.cat([cand_ids, rest.expand(b, -1)], dim=1)
    vals, at = cand.topk(k, dim=-1)
    return vals, cand_ids.gather(1, at)


def score_from_logits(logits: Float[torch.Tensor, "b V"], lens_ids: Int[torch.Tensor, "b k"], top: int = 10,
                      overwrite: bool = False) -> OutputScores:
    """``S_out`` and the ``top`` most probable next tokens from next-token logits [b, V].

    ``p = softmax(logits)`` is never formed: ``max p`` over the lens tokens is
    ``exp(max lens logit - logsumexp)`` and the rank of the best lens token is the number of
    logits above its logit (softmax is monotone, so this is its rank under ``p``).
    ``overwrite`` lets the float32 ``logits`` be used as scratch space (they are destroyed)."""
    logits = logits.float()
    best = logits.gather(1, lens_ids.to(logits.device)).amax(dim=1)
    min_rank = (logits > best[:, None]).sum(dim=1, dtype=torch.int32).long()
    nv, ni = top_logits(logits, top)
    peak = logits.amax(dim=1, keepdim=True)
    shifted = logits.sub_(peak) if overwrite else logits - peak
    lse = peak[:, 0] + shifted.exp_().sum(dim=1).log()
    max_p = torch.exp(best.double() - lse.double())
    scores = (1.0 - min_rank.double() / logits.shape[1]) * max_p
    return OutputScores(scores.cpu(), min_rank.cpu(), max_p.cpu(), ni.cpu(), torch.exp(nv - lse[:, None]).cpu())


def tail_rows(vocab: int, device: torch.device) -> int:
    """Rows of logits reduced at a time: about 16 MiB of them on the CPU (they stay in
    cache between the unembedding and the reductions), 512 MiB on an accelerator."""
    budget = (512 if device.type != "cpu" else 16) * 2**20
    return max(1, budget // (4 * vocab))


class OutputScorer:
    """Scores features of one SAE against one neutral prompt on one model.

    Constructing it runs the clean prompt once (the KV cache of its prefix, the clean
    next-token distribution and the SAE's code at the site: what every score is measured
    against) and checks the two shortcuts that need no reference run (own head, affine
    decode).  Its :class:`FastPath` plan starts with ``skip_layers`` as asked;
    :meth:`check` tests the plan against the per-feature reference and returns the one to
    run, :meth:`adopt` runs it (:meth:`self_check` does both)."""

    def __init__(self, lm: LoadedModel, sae: Any, site: HookSite, prompt: str, amplification: float = 10.0,
                 skip_layers: bool = True):
        from transformers import DynamicCache

        self.lm, self.sae, self.site, self.amp = lm, sae, site, float(amplification)
        self.prompt = prompt
        self.prompt_ids = lm.encode_prompt(prompt)
        self.sae_dtype = sae.W_dec.dtype
        ids = self.prompt_ids
        self.prefix_cache = None
        captured: list[torch.Tensor] = []
        normed: list[torch.Tensor] = []
        with torch.inference_mode():
            if len(ids) > 1:
                self.prefix_cache = DynamicCache(config=lm.model.config)
                lm.forward(ids[None, :-1], self.prefix_cache, use_cache=True)
            tuples: list[bool] = []
            probe = lm.layers[0].register_forward_hook(lambda m, a, o: tuples.append(isinstance(o, tuple)))
            grab = lm.final_norm.register_forward_hook(lambda m, a, o: normed.append(o))
            def capture(h: torch.Tensor) -> None:
                captured.append(h[:, -1])

            try:
                with edit_site(lm, site, capture):
                    out = lm.forward(ids[None, -1:], self._cache(1), use_cache=self.prefix_cache is not None)
            finally:
                probe.remove()
                grab.remove()
            if any(tuples):
                raise ScoringError("this transformers version returns tuples from decoder layers; "
                                   "saegold needs transformers >= 5")
            logits = out.logits[0, -1].float()
            self.clean_p = torch.softmax(logits, dim=-1)
            self.h = captured[0][0].to(self.sae_dtype)
            self.f = sae.encode(self.h[None])[0]
            self.err = self.h - sae.decode(self.f[None])[0]
            self.f_max = float(self.f.max())
            affine = self._decode_is_affine()
            # The fast path unembeds the final norm's output itself, a block of rows at a
            # time; that needs ``logits_from_normed`` to reproduce the model's own head.
            # Where it does not (a head with extra scaling, say), the model's logits are used.
            # Checked through the call :meth:`score` makes (into a float32 buffer where it can:
            # a plain product, which an ``nn.Linear`` subclass's own forward may not be).
            own = None
            if normed:
                x = normed[-1][:, -1]
                buf = torch.empty(1, lm.vocab_size, device=x.device) if x.dtype == torch.float32 else None
                own = lm.logits_from_normed(x, buf).float()[0]
            tol = 1e-4 if lm.dtype == torch.float32 else 2e-2
            own_head = own is not None and own.shape == logits.shape and bool(
                (own - logits).abs().max() <= tol * logits.abs().max().clamp_min(1.0))
        self.plan = FastPath(skip_layers=skip_layers, own_head=own_head, affine_decode=affine)

    # The plan's decisions, as the code below reads them.
    @property
    def skip_layers(self) -> bool:
        return self.plan.skip_layers

    @property
    def own_head(self) -> bool:
        return self.plan.own_head

    @property
    def linear_decode(self) -> bool:
        return self.plan.affine_decode

    def with_plan(self, plan: FastPath) -> OutputScorer:
        """This scorer (sharing its clean state) running ``plan``."""
        other = copy.copy(self)
        other.plan = plan
        return other

    def adopt(self, plan: FastPath) -> None:
        """Run ``plan`` from now on (one returned by :meth:`check`)."""
        self.plan = plan

    def _cache(self, batch: int):
        if self.prefix_cache is None:
            return None
        cache = copy.deepcopy(self.prefix_cache)
        if batch > 1:
            cache.batch_repeat_interleave(batch)
        return cache

    def steer(self, h: Float[torch.Tensor, "b d"], features: Int[torch.Tensor, " b"]) -> Float[torch.Tensor, "b d"]:
        """``decode(f') + err`` for residuals ``h``, row i amplifying ``features[i]``."""
        h = h.to(self.sae_dtype)
        f = self.sae.encode(h)
        err = h - self.sae.decode(f)
        rows = torch.arange(len(features), device=f.device)
        f[rows, features.to(f.device)] += self.amp * f.max(dim=-1).values
        return self.sae.decode(f) + err

    def _steered_full(self, features: torch.Tensor) -> torch.Tensor:
        f = self.f.expand(len(features), -1).clone()
        rows = torch.arange(len(features), device=f.device)
        f[rows, features.to(f.device)] += self.amp * self.f_max
        return self.sae.decode(f) + self.err

    def _decode_is_affine(self) -> bool:
        """Whether ``decode(f + d e_j) - decode(f) = d W_dec[j]`` for this SAE (sae-lens's
        decoders are affine in ``f``; one that rescales or thresholds its input is not)."""
        w = getattr(self.sae, "W_dec", None)
        if not isinstance(w, torch.Tensor) or w.dim() != 2 or w.shape[1] != self.h.shape[-1]:
            return False
        n = w.shape[0]
        probe = torch.tensor(sorted({0, n - 1, n // 2, int(self.f.argmax())}), device=w.device)
        full = self._steered_full(probe)
        short = self.h + (self.amp * self.f_max) * w[probe]
        tol = 1e-5 if full.dtype == torch.float32 else 1e-2
        return bool((full - short).abs().max() <= tol * full.abs().max().clamp_min(1.0))

    def _steered_last(self, features: Int[torch.Tensor, " b"]) -> Float[torch.Tensor, "b d"]:
        """``h'`` for the prompt's last position: ``decode(f') + err`` from the stored
        clean ``f``/``err``.  For an affine decoder that is ``h + amp max(f) W_dec[j]``
        (``decode(f) + err = h``), which spares a [b, d_sae] x [d_sae, d] product."""
        if self.linear_decode:
            return self.h + (self.amp * self.f_max) * self.sae.W_dec[features.to(self.h.device)]
        return self._steered_full(features)

    @torch.inference_mode()
    def fast_head_input(self, features: torch.Tensor) -> torch.Tensor:
        """What the head turns into next-token logits, each feature amplified, via the cached
        prefix: the final norm's output [b, d], or the model's own logits [b, V] where
        :attr:`own_head` is false.  :meth:`head` finishes the job."""
        lm = self.lm
        b = len(features)
        h_new = self._steered_last(features).to(lm.dtype)[:, None, :]
        ids = self.prompt_ids[-1:].expand(b, 1)
        # Skipping the layers below the site is exact for decoders whose layers read only
        # their own KV cache; :meth:`self_check` falls back to running them otherwise.
        swap = start_at_site(lm, self.site, lambda _: h_new) if self.skip_layers \
            else edit_site(lm, self.site, lambda _: h_new)
        use_cache = self.prefix_cache is not None
        with swap:
            if not self.own_head:
                return lm.forward(ids, self._cache(b), use_cache=use_cache).logits[:, -1].float()
            normed = stop_at(lm, lm.final_norm, lambda: lm.forward(ids, self._cache(b), use_cache=use_cache))
        return normed[:, -1]

    def head(self, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """Float32 next-token logits from rows of :meth:`fast_head_input` (into ``out`` if
        given and possible)."""
        return self.lm.logits_from_normed(x, out).float() if self.own_head else x

    def fast_logits(self, features: Int[torch.Tensor, " b"]) -> Float[torch.Tensor, "b V"]:
        """Next-token logits with each feature amplified (the fast path, unreduced)."""
        with torch.inference_mode():
            return self.head(self.fast_head_input(features))

    def check(self, features: torch.Tensor, lens_ids: torch.Tensor) -> FastPath:
        """The plan to run on this model, checked on a few features (nothing is changed here).

        Skipping the layers below the site must give the same numbers as running them (the
        same kernels then see the same inputs from the site on); where it does not (a model
        whose layers share KV caches, say) the plan runs them.  The chosen plan must then
        match the per-feature reference (to 1e-3 in float32; loosely in half precision, where
        a batch and a single row round differently), else the model cannot be scored."""
        def scores(skip: bool) -> torch.Tensor:
            plan = replace(self.plan, skip_layers=skip)
            return self.with_plan(plan).score(features, lens_ids, batch_size=len(features)).scores

        def rel(a: torch.Tensor, b: torch.Tensor) -> float:
            return float(((a - b).abs() / b.abs().clamp_min(1e-12)).max())

        half = self.lm.dtype != torch.float32
        full = scores(False)
        skipped = scores(True)
        skip = rel(skipped, full) <= (1e-3 if half else 1e-5)
        err = rel(skipped if skip else full, self.score_naive(features, lens_ids))
        tol = 0.25 if half else 1e-3
        if err > tol:
            raise ScoringError(
                f"the batched output-score path disagrees with the per-feature reference on this model "
                f"(relative difference {err:.2e} > {tol:g}); cannot score it reliably")
        return replace(self.plan, skip_layers=skip, checked=err)

    def self_check(self, features: torch.Tensor, lens_ids: torch.Tensor) -> float:
        """:meth:`check`, then :meth:`adopt` its plan; returns the difference it found."""
        self.adopt(self.check(features, lens_ids))
        return float(self.plan.checked or 0.0)

    @torch.inference_mode()
    def naive_logits(self, feature: int) -> Float[torch.Tensor, " V"]:
        """Reference: one full forward pass of the whole prompt with ``feature`` amplified;
        the model's own next-token logits [V], in float32."""
        lm = self.lm
        feat = torch.tensor([feature])

        def edit(h: torch.Tensor) -> torch.Tensor:
            h = h.clone()
            h[:, -1] = self.steer(h[:, -1], feat).to(h.dtype)
            return h

        with edit_site(lm, self.site, edit):
            out = lm.forward(self.prompt_ids[None])
        return out.logits[0, -1].float()

    def score(self, features: Int[torch.Tensor, " n"], lens_ids: Int[torch.Tensor, "n k"], batch_size: int = 256, top: int = 10,
              progress: Progress = null_progress, stage: str = "output scores") -> OutputScores:
        """Fast-path output scores of ``features`` with their logit-lens ids [n, k]."""
        n = len(features)
        parts = []
        for start in range(0, n, batch_size):
            x = self.fast_head_input(features[start:start + batch_size])
            ids = lens_ids[start:start + batch_size]
            rows = tail_rows(self.lm.vocab_size, x.device)
            rows = -(-len(x) // -(-len(x) // rows))          # even blocks: no thin last one
            with torch.inference_mode():
                buf = torch.empty(min(rows, len(x)), self.lm.vocab_size, device=x.device) \
                    if self.own_head and x.dtype == torch.float32 else None    # float32 logits land here
                for r in range(0, len(x), rows):
                    logits = self.head(x[r:r + rows], buf)
                    parts.append(score_from_logits(logits, ids[r:r + rows], top, overwrite=self.own_head))
            progress(stage, min(start + batch_size, n), n)
        return OutputScores.cat(parts, top)

    def score_naive(self, features: torch.Tensor, lens_ids: torch.Tensor,
                    progress: Progress = null_progress) -> torch.Tensor:
        """Reference output scores, one full forward pass per feature."""
        out = []
        for i, j in enumerate(features.tolist()):
            out.append(score_from_logits(self.naive_logits(j)[None], lens_ids[i:i + 1], top=0).scores)
            progress("output scores (naive)", i + 1, len(features))
        return torch.cat(out) if out else torch.empty(0, dtype=torch.float64)

    @torch.inference_mode()
    def continuations(self, features: torch.Tensor, n_tokens: int = 8, batch_size: int = 256,
                      progress: Progress = null_progress) -> list[list[int]]:
        """Greedy continuation of the prompt, ``n_tokens`` long, each feature amplified at every
        position from the prompt's last on (batched over features, from the cached prefix)."""
        from transformers import DynamicCache

        lm = self.lm
        n = len(features)
        result: list[list[int]] = []
        for start in range(0, n, batch_size):
            feats = features[start:start + batch_size]
            b = len(feats)
            cache = self._cache(b) if self.prefix_cache is not None else DynamicCache(config=lm.model.config)

            def edit(h: torch.Tensor) -> torch.Tensor:
                h = h.clone()
                h[:, -1] = self.steer(h[:, -1], feats).to(h.dtype)  # noqa: B023 (called within this iteration only)
                return h

            ids = self.prompt_ids[-1:].expand(b, 1)
            steps = []
            with edit_site(lm, self.site, edit):
                for _ in range(n_tokens):
                    out = lm.forward(ids, cache, use_cache=True)
                    ids = out.logits[:, -1].argmax(dim=-1, keepdim=True)
                    steps.append(ids)
            if steps:
                result.extend(torch.cat(steps, dim=1).tolist())
            else:
                result.extend([] for _ in range(b))
            progress("continuations", min(start + b, n), n)
        return result
