"""Output scores per second: the fast shared-prefix path vs the naive reference, same model.

    .venv/bin/python tests/perf/perf_output_score.py                      # CPU, GPT-2 small's shape
    .venv/bin/python tests/perf/perf_output_score.py --shape llama        # CPU, a small random Llama
    .venv/bin/python tests/perf/perf_output_score.py --shape gemma2-2b --device cuda

Shapes (random weights, built from a config, no download):

* ``gpt2-small`` (default): GPT-2 small's exact shape (12 layers, d_model 768, vocabulary
  50,257), the model most public SAEs were trained on, with a 24,576-feature SAE (the width of
  the public ``gpt2-small-res-jb`` SAEs) at the middle layer, ``blocks.6.hook_resid_pre``;
  ``--features`` of them (default 1,024) are scored both ways.
* ``llama``: an invented small shape, 8 layers, d_model 512, 32k vocabulary, MLP 2x, with a
  1,024-feature SAE at layer 4.  Its vocabulary is large for its width, so the unembedding,
  which no sharing of the prefix can skip, is about two thirds of the fast path's work.
* ``gemma2-2b``: Gemma-2-2B's shape (26 layers, d_model 2304, vocabulary 256,000) with a
  16,384-feature SAE at layer 12; all 16,384 are scored, the naive path on
  ``--naive-features`` of them (default 64).  Peak GPU memory is reported on CUDA.

Every feature timed both ways is compared: the two agree to a relative error <= 1e-4.  The
fast path is timed ``--repeats`` times and the median is reported (it takes well under a
second on the CPU, so one timing is at the mercy of the machine's noise); the naive path is
timed once, over all its features.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from saegold.engine.scoring.lens import logit_lens  # noqa: E402
from saegold.engine.scoring.models import resolve_dtype  # noqa: E402
from saegold.engine.scoring.output import OutputScorer  # noqa: E402
from perf_shapes import build  # noqa: E402
from perf_shapes import sync as _sync  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="gpt2-small", choices=["gpt2-small", "llama", "gemma2-2b"])
    ap.add_argument("--gemma2-shape", action="store_true", help="the same as --shape gemma2-2b")
    ap.add_argument("--repeats", type=int, default=5, help="fast-path timings; the median is reported")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--features", type=int, help="features to score (default 1024; 16384 for gemma2-2b)")
    ap.add_argument("--naive-features", type=int, help="features for the naive path (default: all; 64 for gemma)")
    ap.add_argument("--batch-size", type=int, default=512, help="features per fast batch")
    ap.add_argument("--prompt", default="From my experience,")
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    shape = "gemma2-2b" if args.gemma2_shape else args.shape
    t = time.perf_counter()
    built = build(shape, device, dtype, d_sae=None if shape == "gpt2-small" else args.features)
    lm, sae, site, label = built.lm, built.sae, built.site, built.label
    n = min(int(sae.cfg.d_sae), args.features or (16384 if shape == "gemma2-2b" else 1024))
    feats = torch.arange(n)
    print(f"model: {label}; device {device}, dtype {dtype}; built in {time.perf_counter() - t:.1f}s")

    lens = logit_lens(lm, sae, feats, k=20)
    scorer = OutputScorer(lm, sae, site, args.prompt, 10.0)
    print(f"prompt {args.prompt!r}: {len(scorer.prompt_ids)} tokens; f_max {scorer.f_max:.3f}")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    scorer.score(feats[: min(n, args.batch_size)], lens.top_ids[: args.batch_size], batch_size=args.batch_size)
    _sync(device)
    # The fast runs and slices of the naive run alternate, so both see the same machine.
    n_naive = args.naive_features or (64 if shape == "gemma2-2b" else n)
    rounds = max(1, args.repeats)
    times, t_naive, naive_parts = [], 0.0, []
    peak = None
    for r in range(rounds):
        t = time.perf_counter()
        fast = scorer.score(feats, lens.top_ids, batch_size=args.batch_size)
        _sync(device)
        times.append(time.perf_counter() - t)
        if device.type == "cuda" and peak is None:
            peak = torch.cuda.max_memory_allocated(device) / 2**30
        lo, hi = n_naive * r // rounds, n_naive * (r + 1) // rounds
        t = time.perf_counter()
        naive_parts.append(scorer.score_naive(feats[lo:hi], lens.top_ids[lo:hi]))
        _sync(device)
        t_naive += time.perf_counter() - t
    t_fast = statistics.median(times)
    naive = torch.cat(naive_parts)
    rel = float(((fast.scores[:n_naive] - naive).abs() / naive.abs().clamp_min(1e-30)).max())

    fast_rate, naive_rate = n / t_fast, n_naive / t_naive
    print(f"fast path : {n} output scores in {t_fast:.3f}s = {fast_rate:,.0f} features/s "
          f"(median of {len(times)}; range {min(times):.3f}-{max(times):.3f}s; head: "
          f"{'own blocks of rows' if scorer.own_head else 'model logits'})")
    print(f"naive     : {n_naive} output scores in {t_naive:.3f}s = {naive_rate:,.1f} features/s")
    print(f"speed-up  : {fast_rate / naive_rate:.1f}x   (max relative difference on the naive set: {rel:.2e})")
    if peak is not None:
        print(f"peak GPU memory during the fast path: {peak:.2f} GiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
