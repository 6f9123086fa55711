"""Output scores per second: the fast shared-prefix path vs the naive reference, same model.

    .venv/bin/python tests/perf/perf_output_score.py                      # CPU, random Llama
    .venv/bin/python tests/perf/perf_output_score.py --gemma2-shape --device cuda

The default is a random Llama (8 layers, d_model 512, 32k vocabulary) with a random
1,024-feature SAE at layer 4 on the CPU, in float32; every feature is scored both ways and
the two agree to a relative error <= 1e-4.  ``--gemma2-shape`` builds a random model of
Gemma-2-2B's shape (26 layers, d_model 2304, vocabulary 256,000, from its config, no
download) with a 16,384-feature SAE at layer 12, and scores all 16,384 features; the naive
path is then timed on ``--naive-features`` of them (default 64) and the rate is reported for
those.  Peak GPU memory is reported on CUDA.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.planted import build_tokenizer  # noqa: E402
from engine.scoring.lens import logit_lens  # noqa: E402
from engine.scoring.models import resolve_dtype, resolve_hook, wrap_model  # noqa: E402
from engine.scoring.output import OutputScorer  # noqa: E402
from engine.scoring.random_models import random_model, random_sae  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gemma2-shape", action="store_true", help="Gemma-2-2B-shaped model, 16k SAE at layer 12")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--features", type=int, help="features to score (default 1024; 16384 with --gemma2-shape)")
    ap.add_argument("--naive-features", type=int, help="features for the naive path (default: all; 64 for gemma)")
    ap.add_argument("--batch-size", type=int, default=512, help="features per fast batch")
    ap.add_argument("--prompt", default="From my experience,")
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    tok = build_tokenizer()
    t = time.perf_counter()
    with torch.device(device):
        if args.gemma2_shape:
            model = random_model("gemma2-2b", vocab_size=0, seed=0).to(dtype)
            sae = random_sae(2304, args.features or 16384, "blocks.12.hook_resid_post", seed=1, bias=0.0)
            label = "random Gemma-2-2B shape (26 layers, d 2304, vocab 256000), 16k SAE at layer 12"
        else:
            model = random_model("llama", vocab_size=32000, d_model=512, n_layers=8, seed=0, init=0.05).to(dtype)
            sae = random_sae(512, args.features or 1024, "blocks.4.hook_resid_post", seed=1, bias=0.0)
            label = f"random Llama (8 layers, d 512, vocab 32000), {args.features or 1024}-feature SAE at layer 4"
    sae = sae.to(device)
    lm = wrap_model(model, tok, "random", device, dtype)
    site = resolve_hook(lm, sae)
    n = int(sae.cfg.d_sae)
    feats = torch.arange(n)
    print(f"model: {label}; device {device}, dtype {dtype}; built in {time.perf_counter() - t:.1f}s")

    lens = logit_lens(lm, sae, feats, k=20)
    scorer = OutputScorer(lm, sae, site, args.prompt, 10.0)
    print(f"prompt {args.prompt!r}: {len(scorer.prompt_ids)} tokens; f_max {scorer.f_max:.3f}")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    scorer.score(feats[: min(n, args.batch_size)], lens.top_ids[: args.batch_size], batch_size=args.batch_size)
    _sync(device)
    t = time.perf_counter()
    fast = scorer.score(feats, lens.top_ids, batch_size=args.batch_size)
    _sync(device)
    t_fast = time.perf_counter() - t
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None

    n_naive = args.naive_features or (64 if args.gemma2_shape else n)
    t = time.perf_counter()
    naive = scorer.score_naive(feats[:n_naive], lens.top_ids[:n_naive])
    _sync(device)
    t_naive = time.perf_counter() - t
    rel = float(((fast.scores[:n_naive] - naive).abs() / naive.abs().clamp_min(1e-30)).max())

    fast_rate, naive_rate = n / t_fast, n_naive / t_naive
    print(f"fast path : {n} output scores in {t_fast:.3f}s = {fast_rate:,.0f} features/s")
    print(f"naive     : {n_naive} output scores in {t_naive:.3f}s = {naive_rate:,.1f} features/s")
    print(f"speed-up  : {fast_rate / naive_rate:.1f}x   (max relative difference on the naive set: {rel:.2e})")
    if peak is not None:
        print(f"peak GPU memory during the fast path: {peak:.2f} GiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
