"""Activation collection throughput vs a bare forward pass to the hook plus SAE encode.

    .venv/bin/python tests/perf/perf_collect.py                      # CPU, random Llama
    .venv/bin/python tests/perf/perf_collect.py --gemma2-shape --device cuda

Both runs see the same batches of the bundled demo corpus (contexts of ``--ctx-len``
tokens).  The bare run does only what any collection must: run the model to the SAE's site
and encode.  The full run is the collector of :func:`engine.scoring.collect.collect` (masking,
density and max counts, the top-K merge, the negative and activating reservoirs, context bookkeeping).  The overhead is
full / bare - 1; the target is at most 30%.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from saegold.engine.planted import demo_corpus_path  # noqa: E402
from saegold.engine.scoring import corpus as corpus_mod  # noqa: E402
from saegold.engine.scoring.collect import Collector, pad_batch  # noqa: E402
from saegold.engine.scoring.models import resolve_dtype, run_to_site  # noqa: E402
from perf_shapes import build  # noqa: E402
from perf_shapes import sync as _sync  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gemma2-shape", action="store_true", help="Gemma-2-2B-shaped model, 16k SAE at layer 12")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--contexts", type=int, default=384, help="contexts per run (default 384)")
    ap.add_argument("--quantile-examples", type=int, default=50,
                    help="activating reservoir kept per feature, as `saegold score` (default 50; 0: none)")
    ap.add_argument("--ctx-len", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--top-k", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3, help="timed passes (median reported)")
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    built = (build("gemma2-2b", device, dtype, bias=-0.5) if args.gemma2_shape
             else build("llama", device, dtype, d_sae=4096, bias=-0.5, llama_vocab=None))
    lm, sae, site, tok, label = built.lm, built.sae, built.site, built.tok, built.label
    spec = corpus_mod.resolve(str(demo_corpus_path()))
    ctxs = list(corpus_mod.contexts(spec, tok, args.ctx_len, lm.bos_id, max_contexts=args.contexts))
    ctxs = [c for c in ctxs if len(c) == args.ctx_len]
    batches = [ctxs[i:i + args.batch_size] for i in range(0, len(ctxs), args.batch_size)]
    n_tokens = sum(len(c) for c in ctxs)
    feats = torch.arange(int(sae.cfg.d_sae))
    print(f"model: {label}; device {device}, dtype {dtype}; {len(ctxs)} contexts x {args.ctx_len} tokens, "
          f"batch {args.batch_size}, top-K {args.top_k}, activating reservoir {args.quantile_examples}")

    @torch.inference_mode()
    def bare(batch: list[list[int]]) -> None:
        ids, _ = pad_batch(batch, lm.bos_id, device)
        acts = sae.encode(run_to_site(lm, site, ids).to(sae.W_dec.dtype))
        float(acts[0, 0, 0])                                  # the result is used
        _sync(device)

    # The machine may be shared: time bare and full batch by batch, interleaved, so that load
    # changes hit both alike; report the median over repeats.
    ratios, rates = [], []
    for rep in range(args.repeats + 1):
        col = Collector(lm, sae, site, feats, top_k=args.top_k, n_negatives=20, n_sample=args.quantile_examples)
        t_bare = t_full = 0.0
        for batch in batches:
            t = time.perf_counter()
            bare(batch)
            t_bare += time.perf_counter() - t
            t = time.perf_counter()
            col.add(batch)
            _sync(device)
            t_full += time.perf_counter() - t
        t = time.perf_counter()
        col.result()
        t_full += time.perf_counter() - t
        if rep:                                               # the first pass warms up
            ratios.append(t_full / t_bare)
            rates.append((n_tokens / t_bare, n_tokens / t_full))
    order = sorted(range(len(ratios)), key=ratios.__getitem__)
    mid = order[len(order) // 2]
    print(f"bare forward-to-hook + encode : {rates[mid][0]:,.0f} tokens/s")
    print(f"collection (top-K bookkeeping): {rates[mid][1]:,.0f} tokens/s")
    print(f"overhead: {100 * (ratios[mid] - 1):.1f}% (median of {len(ratios)}; all: "
          f"{', '.join(f'{100 * (r - 1):.0f}%' for r in ratios)}; target <= 30%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
