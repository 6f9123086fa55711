"""Steered generation at a target KL (after Gur-Arieh et al. 2025, output-based evaluation).

Definition (what ``saegold score`` stores per feature ``j`` and target ``t``):

* **Steering.** At the SAE's hook site, ``h'[pos] = h[pos] + alpha * W_dec[j]`` at *every*
  position: each prompt token and each generated token.  Nothing else changes (the SAE's
  encoder is not run; ``alpha`` is in the units of the feature's activation).
* **KL.** ``KL(alpha) = mean over the steering prompts p of KL(P_clean(.|p) || P_alpha(.|p))``:
  the KL divergence *from the clean to the steered* next-token distribution (clean first:
  the expectation is under the clean model) at the *last prompt position*, in nats,
  computed in float32 from the model's own logits (final soft-capping included).  Prompts
  are the ``steering_prompts`` setting, each with BOS prepended.
* **Search.** Per feature, ``alpha_0 = mean ||h|| / ||W_dec[j]||`` (``||h||``: the clean
  residual norm at the site over the prompts' positions after BOS), i.e. a push as long as the
  typical residual.  ``alpha`` is doubled from ``alpha_0`` (at most ``max_doublings`` = 10
  times, up to 1024 ``alpha_0``) until ``KL >= max target``; each target is then bracketed
  by the two grid points around it (``[0, alpha_0]`` for the first) and bisected (at most
  ``max_bisections`` = 30 steps) until ``|KL - t| <= rel_tol * t`` (``rel_tol`` = 0.05).
  ``KL(0) = 0 < t``, and a bracket always has ``KL(lo) < t <= KL(hi)``, so it holds a
  crossing even where ``KL`` is not monotone in ``alpha``.
* **Unreachable.** When the grid never reaches ``t`` (the KL saturates below it: a very
  weak or dead decoder row), or bisection ends outside the tolerance, the ``alpha`` whose KL
  came closest to ``t`` is stored with that KL and ``reached = False``; it is never passed
  off as the target.  A zero decoder row stores ``alpha = 0``, ``KL = 0``, not reached.
* **Generation.** From each prompt, ``n_tokens`` (25) tokens sampled at ``temperature``
  (0.75) under the same steering, by inverse-CDF sampling with uniforms drawn from a
  ``torch.Generator`` seeded by ``(seed, feature, target, prompt)`` (:func:`row_seed`), so a
  continuation does not depend on which other features share its batch.  The clean
  continuations (``alpha = 0``) use the seed key ``"clean"``.  Temperature 0 is greedy.

The batched path (:meth:`Steerer.search`, :meth:`Steerer.generate`) runs many features at
once: the KL evaluations skip the layers below the site (their clean output is computed once
per prompt) and keep only the last position's logits; generation uses a KV cache.
:meth:`Steerer.search_naive` / :meth:`Steerer.generate_naive` are the one-feature-at-a-time
reference (full forward passes through every layer, the model's full logits; generation
without a cache by default), kept for the tests and ``tests/perf/perf_steering.py``.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:   # shapes for readers and type checkers only (jaxtyping costs ~1 s to import)
    from jaxtyping import Bool, Float, Int

from saegold.engine.progress import Progress, null_progress

from .errors import ScoringError
from .fastpath import FastPath
from .models import HookSite, LoadedModel, edit_site, run_to_site, start_at_site

STEERING_VERSION = "saegold-steer/1"


@dataclass(frozen=True)
class SteeringConfig:
    """How features are steered (the project settings ``steering_*``; :func:`config_from_settings`)."""

    targets: tuple[float, ...] = (0.25, 0.5)
    """KL(clean || steered) targets in nats; an alpha is sought for each (setting ``steering_targets``)."""
    prompts: tuple[str, ...] = ("The explanation is simple:", "I think", "We")
    """Prompts the steered continuations start from; the KL is the mean over them (``steering_prompts``)."""
    n_tokens: int = 25
    """Tokens sampled per steered continuation (``steering_tokens``)."""
    temperature: float = 0.75
    """Sampling temperature of the continuations; 0: greedy (``steering_temperature``)."""
    seed: int = 0
    """Seeds every continuation's sampling, with what it is (:func:`row_seed`), not where it ran."""
    rel_tol: float = 0.05
    """A target ``t`` is reached when ``|KL - t| <= rel_tol * t``."""
    max_doublings: int = 10
    """Doublings of alpha from ``alpha_0`` at most while seeking ``KL >= max(targets)``."""
    max_bisections: int = 30
    """Bisection steps at most per (feature, target) inside its bracket."""

    def __post_init__(self) -> None:
        if not self.targets or any(not (isinstance(t, (int, float)) and t > 0) for t in self.targets):
            raise ScoringError(f"steering_targets {list(self.targets)!r}: expected a non-empty list of KL "
                               "targets > 0 (nats)")
        if not self.prompts or any(not isinstance(p, str) or not p.strip() for p in self.prompts):
            raise ScoringError(f"steering_prompts {list(self.prompts)!r}: expected a non-empty list of "
                               "non-empty prompts")
        if not isinstance(self.n_tokens, int) or self.n_tokens < 1:
            raise ScoringError(f"steering_tokens {self.n_tokens!r}: expected an integer >= 1")
        if not isinstance(self.temperature, (int, float)) or self.temperature < 0:
            raise ScoringError(f"steering_temperature {self.temperature!r}: expected a number >= 0")

    def settings(self) -> dict[str, Any]:
        """What a stored result was made with (a re-run with other settings redoes it)."""
        return {"version": STEERING_VERSION, "prompts": list(self.prompts), "n_tokens": self.n_tokens,
                "temperature": float(self.temperature), "seed": int(self.seed), "rel_tol": self.rel_tol,
                "kl": "KL(clean || steered), next token at the last prompt position, mean over prompts"}


@dataclass
class Search:
    """Per (feature, target): the alpha found, its KL, whether it is within tolerance, and the
    KL evaluations it took (the expansion grid is shared by a feature's targets)."""

    alpha: Float[torch.Tensor, "B K"]      # float64
    kl: Float[torch.Tensor, "B K"]         # float64
    reached: Bool[torch.Tensor, "B K"]
    evals: Int[torch.Tensor, "B K"]        # int64
    alpha0: Float[torch.Tensor, " B"]      # float64


def row_seed(seed: int, feature: int | str, target: float | str, prompt: str) -> int:
    """The sampling seed of one continuation: a hash of what it is, not of where it ran."""
    key = "\x1f".join((str(int(seed)), str(feature), repr(float(target)) if not isinstance(target, str)
                       else target, prompt))
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "little") & (2**63 - 1)


def _uniforms(seeds: list[int], n: int) -> Float[torch.Tensor, "R n"]:
    out = torch.empty(len(seeds), n, dtype=torch.float64)
    for i, s in enumerate(seeds):
        out[i] = torch.rand(n, generator=torch.Generator().manual_seed(s), dtype=torch.float64)
    return out


def sample_tokens(logits: Float[torch.Tensor, "R V"], u: Float[torch.Tensor, " R"], temperature: float
                  ) -> Int[torch.Tensor, " R"]:
    """One token per row of float32 ``logits``: the argmax at temperature 0, else the
    inverse CDF of ``softmax(logits / temperature)`` at the row's uniform ``u``."""
    if temperature <= 0:
        return logits.argmax(dim=-1)
    p = torch.softmax(logits.float() / temperature, dim=-1)
    cdf = p.cumsum(dim=-1)
    at = (u.to(cdf.device, cdf.dtype) * cdf[:, -1])[:, None]
    return torch.searchsorted(cdf, at).clamp_(max=logits.shape[-1] - 1)[:, 0]


def _kl_rows(logp: Float[torch.Tensor, "R V"], logq: Float[torch.Tensor, "R V"]) -> Float[torch.Tensor, " R"]:
    """KL(p || q) per row from log-probabilities (terms where p = 0 are 0)."""
    p = logp.exp()
    return torch.where(p > 0, p * (logp - logq), torch.zeros_like(p)).sum(dim=-1)


class Steerer:
    """Steers features of one SAE on one model from the configured prompts.

    Constructing it runs the clean prompts (their residuals at the site and clean next-token
    distributions).  Its :class:`FastPath` plan (only ``skip_layers`` applies here) starts as
    asked; :meth:`check` tests it against the per-feature reference and returns the one to
    run, :meth:`adopt` runs it (:meth:`self_check` does both)."""

    def __init__(self, lm: LoadedModel, sae: Any, site: HookSite, config: SteeringConfig,
                 skip_layers: bool = True):
        self.lm, self.site, self.config = lm, site, config
        self.plan = FastPath(skip_layers=skip_layers)
        self.W = sae.W_dec.detach()
        self.prompt_ids = [lm.encode_prompt(p) for p in config.prompts]
        norms, self.site_h, self.clean_logp = [], [], []
        with torch.inference_mode():
            for ids in self.prompt_ids:
                h = run_to_site(lm, self.site, ids[None])[0]                   # [T, d]
                self.site_h.append(h)
                first = 1 if lm.bos_id is not None and int(ids[0]) == lm.bos_id and len(ids) > 1 else 0
                norms.append(h[first:].float().norm(dim=-1))
                logits = self._logits(ids[None])
                self.clean_logp.append(torch.log_softmax(logits[0, -1].float(), dim=-1))
        self.resid_norm = float(torch.cat(norms).mean())

    @property
    def skip_layers(self) -> bool:
        return self.plan.skip_layers

    def adopt(self, plan: FastPath) -> None:
        """Run ``plan`` from now on (one returned by :meth:`check`)."""
        self.plan = plan

    # -- forward passes ------------------------------------------------------------------
    def _logits(self, ids: torch.Tensor, cache: Any = None, last_only: bool = True) -> torch.Tensor:
        kwargs: dict[str, Any] = {"input_ids": ids, "use_cache": cache is not None}
        if cache is not None:
            kwargs[self.lm._cache_kw] = cache
        if last_only:
            kwargs["logits_to_keep"] = 1
        return self.lm.model(**kwargs).logits

    def _delta(self, features: Int[torch.Tensor, " r"], alphas: Float[torch.Tensor, " r"]) -> Float[torch.Tensor, "r d"]:
        w = self.W[features.to(self.W.device)].float()
        return (alphas.to(w.device, torch.float32)[:, None] * w).to(self.lm.dtype)

    @torch.inference_mode()
    def kl(self, features: Int[torch.Tensor, " R"], alphas: Float[torch.Tensor, " R"], batch_size: int = 256,
           plan: FastPath | None = None) -> Float[torch.Tensor, " R"]:
        """Batched ``KL(alpha)`` (float64) of rows ``(features[r], alphas[r])``, by this
        steerer's plan or ``plan``."""
        skip = (plan or self.plan).skip_layers
        out = []
        for s in range(0, len(features), batch_size):
            delta = self._delta(features[s:s + batch_size], alphas[s:s + batch_size])      # [r, d]
            total = torch.zeros(len(delta), dtype=torch.float64, device=delta.device)
            for ids, h, logp in zip(self.prompt_ids, self.site_h, self.clean_logp):
                steered = h[None].to(self.lm.dtype) + delta[:, None, :]                  # [r, T, d]
                batch_ids = ids[None].expand(len(delta), -1)
                if skip:
                    with start_at_site(self.lm, self.site, lambda _: steered):  # noqa: B023 (hook lives for this iteration only)
                        logits = self._logits(batch_ids)
                else:
                    with edit_site(self.lm, self.site, lambda x: x + delta[:, None, :].to(x.dtype)):  # noqa: B023 (hook lives for this iteration only)
                        logits = self._logits(batch_ids)
                logq = torch.log_softmax(logits[:, -1].float(), dim=-1)
                total += _kl_rows(logp[None], logq).double()
            out.append((total / len(self.prompt_ids)).cpu())
        return torch.cat(out) if out else torch.empty(0, dtype=torch.float64)

    @torch.inference_mode()
    def kl_naive(self, feature: int, alpha: float) -> float:
        """Reference ``KL(alpha)``: one full forward pass per prompt through every layer, the
        model's full logits, steering added by a hook at the site."""
        delta = self._delta(torch.tensor([feature]), torch.tensor([float(alpha)]))[0]
        total = 0.0
        for ids, logp in zip(self.prompt_ids, self.clean_logp):
            with edit_site(self.lm, self.site, lambda x: x + delta.to(x.dtype)):
                logits = self._logits(ids[None], last_only=False)
            total += float(_kl_rows(logp[None], torch.log_softmax(logits[0, -1:].float(), dim=-1))[0])
        return total / len(self.prompt_ids)

    # -- the search ----------------------------------------------------------------------
    def alpha0(self, features: Int[torch.Tensor, " B"]) -> Float[torch.Tensor, " B"]:
        wn = self.W[features.to(self.W.device)].float().norm(dim=-1).double().cpu()
        return torch.where(wn > 0, self.resid_norm / wn.clamp_min(1e-30), torch.zeros_like(wn))

    def search(self, features: Int[torch.Tensor, " B"], batch_size: int = 256,
               kl_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> Search:
        """Alpha per (feature, target) by expansion then bisection, all features at once."""
        cfg = self.config
        kl_fn = kl_fn or (lambda f, a: self.kl(f, a, batch_size))
        targets = torch.tensor(cfg.targets, dtype=torch.float64)
        b, k = len(features), len(targets)
        a0 = self.alpha0(features)
        alive = a0 > 0
        # Expansion grid: column 0 is alpha = 0 (KL 0), column i is alpha_0 * 2^(i-1).
        n_grid = cfg.max_doublings + 2
        grid_a = torch.zeros(b, n_grid, dtype=torch.float64)
        grid_kl = torch.full((b, n_grid), float("nan"), dtype=torch.float64)
        grid_kl[:, 0] = 0.0
        evals = torch.zeros(b, dtype=torch.long)
        active = alive.clone()
        top = float(targets.max())
        for i in range(1, n_grid):
            grid_a[:, i] = a0 * 2.0 ** (i - 1)
            if not active.any():
                break
            rows = active.nonzero()[:, 0]
            grid_kl[rows, i] = kl_fn(features[rows], grid_a[rows, i]).double()
            evals[rows] += 1
            active[rows] = grid_kl[rows, i] < top
        # Brackets per (feature, target).
        alpha = torch.zeros(b, k, dtype=torch.float64)
        kl = torch.zeros(b, k, dtype=torch.float64)
        lo = torch.zeros(b, k, dtype=torch.float64)
        hi = torch.zeros(b, k, dtype=torch.float64)
        done = torch.zeros(b, k, dtype=torch.bool)
        reached = torch.zeros(b, k, dtype=torch.bool)
        n_evals = evals[:, None].expand(b, k).clone()
        known = ~grid_kl.isnan()
        for fi in range(b):
            for ti in range(k):
                t = float(targets[ti])
                ks = grid_kl[fi]
                cols = [c for c in range(n_grid) if known[fi, c]]
                best = min(cols, key=lambda c: abs(float(ks[c]) - t))
                alpha[fi, ti], kl[fi, ti] = grid_a[fi, best], ks[best]
                if abs(float(ks[best]) - t) <= cfg.rel_tol * t:
                    done[fi, ti] = reached[fi, ti] = True
                    continue
                above = [c for c in cols if float(ks[c]) >= t]
                if not above or not alive[fi]:
                    done[fi, ti] = True             # unreachable: the closest grid point stays
                    continue
                c = above[0]
                lo[fi, ti], hi[fi, ti] = grid_a[fi, c - 1], grid_a[fi, c]
        # Bisection, every pending (feature, target) in one batch per step.
        tgt = targets[None].expand(b, k)
        for _ in range(cfg.max_bisections):
            pend = (~done).nonzero()
            if len(pend) == 0:
                break
            pf, pt = pend[:, 0], pend[:, 1]     # the pending (feature, target) cells
            mid = (lo[pf, pt] + hi[pf, pt]) / 2
            got = kl_fn(features[pf], mid).double()
            n_evals[pf, pt] += 1
            goal = tgt[pf, pt]
            closer = (got - goal).abs() < (kl[pf, pt] - goal).abs()
            alpha[pf[closer], pt[closer]] = mid[closer]
            kl[pf[closer], pt[closer]] = got[closer]
            hit = (got - goal).abs() <= cfg.rel_tol * goal
            alpha[pf[hit], pt[hit]] = mid[hit]
            kl[pf[hit], pt[hit]] = got[hit]
            reached[pf[hit], pt[hit]] = True
            done[pf[hit], pt[hit]] = True
            below = got < goal
            lo[pf[below], pt[below]] = mid[below]
            hi[pf[~below], pt[~below]] = mid[~below]
        return Search(alpha, kl, reached, n_evals, a0)

    def search_naive(self, features: torch.Tensor) -> Search:
        """The reference: the same search, one feature at a time, with :meth:`kl_naive`."""
        parts = []
        for j in features.tolist():
            fn = lambda f, a: torch.tensor([self.kl_naive(int(x), float(y)) for x, y in zip(f.tolist(), a.tolist())],  # noqa: E731
                                           dtype=torch.float64)
            parts.append(self.search(torch.tensor([j]), kl_fn=fn))
        return Search(*(torch.cat(x) for x in zip(*((p.alpha, p.kl, p.reached, p.evals, p.alpha0) for p in parts))))

    # -- generation ----------------------------------------------------------------------
    def seeds(self, keys: Sequence[int | str], targets: Sequence[float | str], prompt: str) -> list[int]:
        return [row_seed(self.config.seed, f, t, prompt) for f, t in zip(keys, targets)]

    @torch.inference_mode()
    def generate(self, features: Int[torch.Tensor, " R"], alphas: Float[torch.Tensor, " R"], batch_size: int = 256,
                 keys: Sequence[int | str] | None = None, target_keys: Sequence[float | str] | None = None,
                 progress: Progress = null_progress) -> list[list[list[int]]]:
        """Sampled continuations [R][prompt][token] of rows ``(features[r], alphas[r])``,
        batched over rows with a KV cache.  ``keys``/``target_keys`` name each row for its
        seed (default: the feature index and its alpha)."""
        from transformers import DynamicCache

        cfg = self.config
        n = len(features)
        keys = keys if keys is not None else [int(f) for f in features.tolist()]
        target_keys = target_keys if target_keys is not None else [float(a) for a in alphas.tolist()]
        out: list[list[list[int]]] = [[] for _ in range(n)]
        for pi, (prompt, ids) in enumerate(zip(cfg.prompts, self.prompt_ids)):
            for s in range(0, n, batch_size):
                rows = range(s, min(n, s + batch_size))
                u = _uniforms(self.seeds([keys[r] for r in rows], [target_keys[r] for r in rows], prompt),
                              cfg.n_tokens)
                delta = self._delta(features[s:s + batch_size], alphas[s:s + batch_size])
                cache = DynamicCache(config=self.lm.model.config)
                steps = []
                with edit_site(self.lm, self.site, lambda x: x + delta[:, None, :].to(x.dtype)):  # noqa: B023 (hook lives for this iteration only)
                    logits = self._logits(ids[None].expand(len(delta), -1), cache)
                    for step in range(cfg.n_tokens):
                        tok = sample_tokens(logits[:, -1].float(), u[:, step], cfg.temperature)
                        steps.append(tok)
                        if step + 1 < cfg.n_tokens:
                            logits = self._logits(tok[:, None], cache)
                toks = torch.stack(steps, dim=1).tolist()
                for r, t in zip(rows, toks):
                    out[r].append(t)
                progress("steered generation", pi * n + rows.stop, n * len(cfg.prompts))
        return out

    @torch.inference_mode()
    def generate_naive(self, feature: int, alpha: float, key: int | str | None = None,
                       target_key: float | str | None = None, use_cache: bool = False
                       ) -> tuple[list[list[int]], list[list[float]]]:
        """The reference for one row: per prompt, the continuation and, per step, the gap
        between the two largest logits (to tell near-ties).  Without ``use_cache`` every step
        runs the whole sequence again, steering added at every position."""
        from transformers import DynamicCache

        cfg = self.config
        delta = self._delta(torch.tensor([feature]), torch.tensor([float(alpha)]))[0]
        key = int(feature) if key is None else key
        target_key = float(alpha) if target_key is None else target_key
        conts, gaps = [], []
        for prompt, ids in zip(cfg.prompts, self.prompt_ids):
            u = _uniforms(self.seeds([key], [target_key], prompt), cfg.n_tokens)[0]
            seq = ids[None]
            cache = DynamicCache(config=self.lm.model.config) if use_cache else None
            toks, gap = [], []
            with edit_site(self.lm, self.site, lambda x: x + delta.to(x.dtype)):
                logits = self._logits(seq, cache, last_only=False)
                for step in range(cfg.n_tokens):
                    last = logits[:, -1].float()
                    top2 = last.topk(2, dim=-1).values[0]
                    gap.append(float(top2[0] - top2[1]))
                    tok = sample_tokens(last, u[step:step + 1], cfg.temperature)
                    toks.append(int(tok[0]))
                    if step + 1 < cfg.n_tokens:
                        if use_cache:
                            logits = self._logits(tok[:, None], cache, last_only=False)
                        else:
                            seq = torch.cat([seq, tok[:, None]], dim=1)
                            logits = self._logits(seq, None, last_only=False)
            conts.append(toks)
            gaps.append(gap)
        return conts, gaps

    # -- checks --------------------------------------------------------------------------
    def check(self, features: torch.Tensor) -> FastPath:
        """The plan to run on this model, checked on a few features at ``alpha_0`` against
        :meth:`kl_naive` (nothing is changed here): the layers below the site are run where
        skipping them changes the numbers (a model whose layers share KV caches), and a model
        where even that disagrees is refused."""
        alphas = self.alpha0(features)
        keep = alphas > 0
        features, alphas = features[keep], alphas[keep]
        if len(features) == 0:
            return replace(self.plan, checked=0.0)
        ref = torch.tensor([self.kl_naive(int(f), float(a)) for f, a in zip(features.tolist(), alphas.tolist())],
                           dtype=torch.float64)
        half = self.lm.dtype != torch.float32
        tol = 0.05 if half else 1e-3

        def rel(plan: FastPath) -> float:
            got = self.kl(features, alphas, plan=plan)
            return float(((got - ref).abs() / ref.abs().clamp_min(1e-6)).max())

        plan = self.plan
        err = rel(plan)
        if err > tol and plan.skip_layers:
            plan = replace(plan, skip_layers=False)
            err = rel(plan)
        if err > tol:
            raise ScoringError(f"the batched steering path disagrees with the per-feature reference on this model "
                               f"(relative KL difference {err:.2e} > {tol:g}); cannot steer it reliably")
        return replace(plan, checked=err)

    def self_check(self, features: torch.Tensor) -> float:
        """:meth:`check`, then :meth:`adopt` its plan; returns the largest relative difference."""
        self.adopt(self.check(features))
        return float(self.plan.checked or 0.0)


@dataclass
class SteeringChunk:
    """One chunk's results, ready to store."""

    features: list[int]
    search: Search
    continuations: list[list[list[list[int]]]] = field(default_factory=list)   # [B][K][P][tokens]


def steer_chunk(steerer: Steerer, features: list[int], batch_size: int = 256,
                progress: Progress = null_progress) -> SteeringChunk:
    """Search and generate for a chunk of features (batched)."""
    feats = torch.tensor(features, dtype=torch.long)
    found = steerer.search(feats, batch_size=batch_size)
    k = len(steerer.config.targets)
    rows_f = feats.repeat_interleave(k)
    rows_a = found.alpha.reshape(-1)
    keys = [int(f) for f in rows_f.tolist()]
    tkeys = [float(t) for _ in features for t in steerer.config.targets]
    gen = steerer.generate(rows_f, rows_a, batch_size=batch_size, keys=keys, target_keys=tkeys)
    conts = [gen[i * k:(i + 1) * k] for i in range(len(features))]
    return SteeringChunk(features, found, conts)


def clean_continuations(steerer: Steerer) -> list[list[int]]:
    """The unsteered continuations of each prompt (seed key ``"clean"``)."""
    gen = steerer.generate(torch.tensor([0]), torch.tensor([0.0]), keys=["clean"], target_keys=["clean"])
    return gen[0]
