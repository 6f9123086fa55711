"""Steered generation per second: the batched path vs the one-feature-at-a-time reference.

    .venv/bin/python tests/perf/perf_steering.py                         # CPU, GPT-2 small's shape
    .venv/bin/python tests/perf/perf_steering.py --shape gemma2-2b --device cuda

Per feature, both paths do the whole job of ``saegold score``'s steering step: find alpha for
each target KL (expansion + bisection) and sample ``--tokens`` tokens from each prompt at each
target.  The batched path runs ``--features`` features in batches (KL evaluations skip the
layers below the site and keep only the last position's logits; generation uses a KV cache);
the naive path is :meth:`Steerer.search_naive` (full forward passes, one feature at a time)
plus :meth:`Steerer.generate_naive` with a KV cache (one row at a time), on ``--naive-features``
of them.  Runs alternate (batched, then a slice of the naive set), ``--repeats`` times; the
batched figure is the median, the naive one the total over its slices.

Shapes (random weights, no download; see tests/perf/perf_output_score.py): ``gpt2-small``
(12 layers, d 768, vocabulary 50,257; 24,576-feature SAE at ``blocks.6.hook_resid_pre``) and
``gemma2-2b`` (26 layers, d 2304, vocabulary 256,000; 16k SAE at layer 12).  A random model's
KL grows with alpha much as a real one's, so the number of bisection steps is realistic.
Peak GPU memory is reported on CUDA.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from saegold.engine.scoring.models import resolve_dtype  # noqa: E402
from perf_shapes import build  # noqa: E402
from perf_shapes import sync as _sync  # noqa: E402
from saegold.engine.scoring.steering import Steerer, SteeringConfig, steer_chunk  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="gpt2-small", choices=["gpt2-small", "gemma2-2b"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    ap.add_argument("--features", type=int, help="features steered by the batched path (default 256; "
                                                 "all 16384 for gemma2-2b)")
    ap.add_argument("--naive-features", type=int, default=6, help="features for the naive path (default 6)")
    ap.add_argument("--batch-size", type=int, default=256, help="rows per batch (default 256)")
    ap.add_argument("--tokens", type=int, default=25)
    ap.add_argument("--repeats", type=int, default=3, help="batched runs; the median is reported")
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    dtype = resolve_dtype(None if args.dtype == "auto" else args.dtype, device)
    t = time.perf_counter()
    built = build(args.shape, device, dtype)
    lm, sae, site, label = built.lm, built.sae, built.site, built.label
    n = args.features or (16384 if args.shape == "gemma2-2b" else 256)
    # The planted word-level tokenizer stands in for the model's: the prompts' token ids differ
    # from the real model's, their lengths are alike (3-5 tokens with BOS).
    cfg = SteeringConfig(prompts=("The explanation is simple:", "I think", "We"), n_tokens=args.tokens)
    st = Steerer(lm, sae, site, cfg)
    print(f"model: {label}; device {device}, dtype {dtype}; built in {time.perf_counter() - t:.1f}s")
    print(f"{n} features x {len(cfg.targets)} targets x {len(cfg.prompts)} prompts x {cfg.n_tokens} tokens; "
          f"KL path {st.plan.name}")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    steer_chunk(st, list(range(min(n, 8))), batch_size=args.batch_size)        # warm-up
    _sync(device)

    rounds = max(1, args.repeats)
    n_naive = args.naive_features
    times, t_naive, evals = [], 0.0, []
    fast_alpha = None
    naive_alpha = []
    for r in range(rounds):
        t = time.perf_counter()
        out = []
        for s in range(0, n, args.batch_size):
            out.append(steer_chunk(st, list(range(s, min(n, s + args.batch_size))), batch_size=args.batch_size))
        _sync(device)
        times.append(time.perf_counter() - t)
        if fast_alpha is None:
            fast_alpha = torch.cat([o.search.alpha for o in out])
            reached = torch.cat([o.search.reached for o in out])
            evals = torch.cat([o.search.evals for o in out]).float()
        lo, hi = n_naive * r // rounds, n_naive * (r + 1) // rounds
        t = time.perf_counter()
        for j in range(lo, hi):
            found = st.search_naive(torch.tensor([j]))
            naive_alpha.append(found.alpha[0])
            for k, target in enumerate(cfg.targets):
                st.generate_naive(j, float(found.alpha[0, k]), target_key=float(target), use_cache=True)
        _sync(device)
        t_naive += time.perf_counter() - t
    t_fast = statistics.median(times)
    na = torch.stack(naive_alpha)
    rel = float(((na - fast_alpha[:n_naive]).abs() / fast_alpha[:n_naive].abs().clamp_min(1e-30)).max())
    fast_rate, naive_rate = n / t_fast, n_naive / t_naive
    print(f"batched : {n} features in {t_fast:.2f}s = {fast_rate:,.2f} features/s (median of {len(times)}; "
          f"range {min(times):.2f}-{max(times):.2f}s); {float(reached.float().mean()):.1%} of (feature, target) "
          f"within tolerance, {float(evals.mean()):.1f} KL evaluations per (feature, target)")
    print(f"naive   : {n_naive} features in {t_naive:.2f}s = {naive_rate:,.3f} features/s")
    print(f"speed-up: {fast_rate / naive_rate:.1f}x   (max relative alpha difference on the naive set: {rel:.1e})")
    # FLOP-bound estimate (multiply-adds of the weight matmuls; attention over <= 30 positions
    # and the norms are left out, < 2% here).  Per feature, with E = KL evaluations (the same
    # search both ways), P prompts of T tokens, K targets, N tokens generated:
    #   batched: E*P*(T*L_above*M + D)  [layers below the site skipped, last-position logits]
    #            + K*P*(T*L*M + D + (N-1)*(L*M + D))             [KV-cached generation]
    #   naive:   E*P*T*(L*M + D)        [every layer, every position's logits]
    #            + K*P*(T + N-1)*(L*M + D)                       [KV-cached, full logits]
    # M: one decoder layer's weights, D: d_model x vocabulary (the unembedding).
    layers = lm.layers
    m_layer = sum(p.numel() for p in layers[0].parameters() if p.dim() >= 2)
    n_layers, above = len(layers), len(layers) - site.start
    d_head = lm.width * int(lm.unembed.weight.shape[0]) if hasattr(lm.unembed, "weight") else 0
    t_avg = sum(len(ids) for ids in st.prompt_ids) / len(st.prompt_ids)
    e = float(torch.cat([o.search.evals for o in out]).sum(dim=1).float().mean())   # upper bound: grid counted per target
    k_, p_, n_ = len(cfg.targets), len(cfg.prompts), cfg.n_tokens
    full = n_layers * m_layer + d_head
    fast_macs = e * p_ * (t_avg * above * m_layer + d_head) + k_ * p_ * (t_avg * n_layers * m_layer + d_head
                                                                          + (n_ - 1) * full)
    naive_macs = e * p_ * t_avg * full + k_ * p_ * (t_avg + n_ - 1) * full
    print(f"work    : {fast_macs / 1e9:.1f} vs {naive_macs / 1e9:.1f} GMAC per feature (batched vs naive; "
          f"{e:.1f} KL evaluations, prompts of {t_avg:.1f} tokens): the naive path does {naive_macs / fast_macs:.2f}x "
          f"the arithmetic")
    print(f"rate    : batched {2 * fast_macs * fast_rate / 1e9:,.1f} GFLOP/s, naive {2 * naive_macs * naive_rate / 1e9:,.1f} "
          f"GFLOP/s; speed-up = {naive_macs / fast_macs:.2f} (less work) x "
          f"{(fast_macs * fast_rate) / (naive_macs * naive_rate):.2f} (faster arithmetic: batched matmuls vs "
          f"one row at a time)")
    if n < 16384 and args.shape == "gemma2-2b":
        print(f"all 16,384 features would take about {16384 / fast_rate / 60:.1f} min at this rate")
    if device.type == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
