"""Examples across the activation range: the score job keeps, per feature, a uniform sample of
its activating contexts in 10 activation-quantile bins, and the ``quantiles`` sampler draws
benchmark positives from every decile of the feature's activation distribution, where the
``top`` sampler sees only the top decile.

The "known distribution" is the exact one: every context's maximum activation, found by a
brute-force pass that keeps every context (top K = the number of contexts)."""
from __future__ import annotations

import numpy as np
import torch

from saegold.engine.bench.examples import ExampleSelector
from saegold.engine.scoring import corpus as corpus_mod
from saegold.engine.scoring.collect import collect
from saegold.engine.scoring.job import score
from saegold.engine.scoring.models import load_model, load_sae, resolve_hook
from saegold.store.examples import examples as stored

N_CONTEXTS, CTX_LEN = 400, 24
# Stored maxima come from re-running each context alone; the brute-force ones from a batch.
# Both are float32 sums of the same 32 products: they agree far inside this tolerance.
TOL = 1e-4


def test_quantile_examples_cover_the_activation_distribution(tiny, demo_corpus, project):
    model_dir, sae_dir = tiny
    lm = load_model(str(model_dir), "cpu", "float32")
    sae, _ = load_sae(str(sae_dir), lm.device)
    site = resolve_hook(lm, sae)
    spec = corpus_mod.resolve(str(demo_corpus))
    ctxs = list(corpus_mod.contexts(spec, lm.tokenizer, CTX_LEN, lm.bos_id, max_contexts=N_CONTEXTS))
    assert len(ctxs) == N_CONTEXTS
    feats = torch.arange(64)
    every = collect(lm, sae, site, feats, iter(ctxs), batch_size=50, top_k=N_CONTEXTS, n_negatives=0)

    score(project, model=str(model_dir), sae=str(sae_dir), corpus=str(demo_corpus), ctx_len=CTX_LEN,
          max_contexts=N_CONTEXTS, top_k=100, n_negatives=20, n_quantile=50, batch_size=32,
          continuation_tokens=0, steering=False)

    checked = 0
    for f in range(64):
        maxima = np.array([v for _, v in every.top(f)])
        fid = project.scalar("SELECT id FROM features WHERE idx = ?", [f])
        quant = stored(project, fid, "quantile")
        # The sample: min(50, firing contexts) distinct activating contexts, in 10 equal bins.
        assert len(quant) == min(50, len(maxima))
        assert len({tuple(q["token_ids"]) for q in quant}) == len(quant)
        vals = [q["max_act"] for q in quant]
        assert vals == sorted(vals, reverse=True) and all(v > 0 for v in vals)
        # bins placed by the 4x larger reservoir: about 5 kept examples in each
        bins = [q["bin"] for q in quant]
        assert set(bins) <= set(range(10)) and (len(quant) < 50 or len(set(bins)) >= 9)
        for q in quant:    # each is one of the feature's contexts, with its own maximum
            assert np.min(np.abs(maxima - q["max_act"])) <= TOL
        if len(maxima) < 250:        # top ranks 6-25 lie in the top decile only when 25 <= 10%
            continue
        checked += 1

        def positives(sampler: str) -> list[float]:
            es = ExampleSelector(project, seed=f, sampler=sampler).for_feature(fid)
            pos = [max(e.acts) for e in es.examples if e.truth]
            assert len(pos) == 20
            return pos

        def decile(v: float) -> int:
            # mid-rank percentile: equal maxima (contexts opening alike) share their middle rank
            below, at = np.sum(maxima < v - TOL), np.sum(np.abs(maxima - v) <= TOL)
            return min(9, int(10 * (below + at / 2) / len(maxima)))

        assert len({decile(v) for v in positives("quantiles")}) >= 8
        assert min(positives("top")) >= np.quantile(maxima, 0.9) - TOL     # the top decile only
    assert checked >= 5
