"""Negatives you can trust: with a model, the score job keeps as 'hard' negatives the top
contexts of the decoder-nearest features, and as 'other' negatives other features' top
contexts, only where the feature is silent (re-run and checked); the bench uses them."""
from __future__ import annotations

import torch

from saegold.engine.bench.examples import ExampleSelector
from saegold.engine.scoring.collect import candidate_negatives, collect, sae_acts
from saegold.engine.scoring import corpus as corpus_mod
from saegold.engine.scoring.job import score
from saegold.engine.scoring.models import load_model, load_sae, resolve_hook
from saegold.store.examples import examples as stored


def test_verified_and_hard_negatives(tiny, demo_corpus, project):
    model_dir, sae_dir = tiny
    score(project, model=str(model_dir), sae=str(sae_dir), corpus=str(demo_corpus), ctx_len=24,
          max_contexts=120, top_k=20, n_negatives=8, n_quantile=20, batch_size=32, verified_negatives=True,
          continuation_tokens=0, steering=False)
    lm = load_model(str(model_dir), "cpu", "float32")
    sae, _ = load_sae(str(sae_dir), lm.device)
    site = resolve_hook(lm, sae)
    spec = corpus_mod.resolve(str(demo_corpus))
    ctxs = list(corpus_mod.contexts(spec, lm.tokenizer, 24, lm.bos_id, max_contexts=120))
    col = collect(lm, sae, site, torch.arange(64), iter(ctxs), top_k=20, n_negatives=0)
    hard_c, other_c = candidate_negatives(col, sae.W_dec.detach(), n_hard=8, n_other=8)
    w = torch.nn.functional.normalize(sae.W_dec.detach(), dim=1)
    dropped = kept = 0
    for f in range(0, 64, 4):        # every 4th feature: each check re-runs contexts one by one
        fid = project.scalar("SELECT id FROM features WHERE idx = ?", [f])
        negs = stored(project, fid, "negative")
        for origin, cand in (("hard", hard_c), ("other", other_c)):
            got = [n for n in negs if n["origin"] == origin]
            kept += len(got)
            # every stored one: the feature is silent on it (checked here, context alone)
            for n in got:
                acts, _ = sae_acts(lm, sae, site, torch.tensor([f]), [n["token_ids"]], lm.bos_id)
                assert float(acts.max()) <= 1e-6
            # and every candidate the feature fires on (above rounding) was dropped
            ids = [c for c in cand[:, f].tolist() if c >= 0]
            fires = [c for c in ids
                     if float(sae_acts(lm, sae, site, torch.tensor([f]), [list(ctxs[c])], lm.bos_id)[0].max()) > 1e-4]
            dropped += len(fires)
            assert not {tuple(ctxs[c]) for c in fires} & {tuple(n["token_ids"]) for n in got}
        # hard ones come from the 3 decoder-nearest features' top contexts
        cos = w @ w[f]
        cos[f] = -2
        near = cos.topk(3).indices.tolist()
        near_tops = {tuple(ctxs[c]) for m in near for c, _ in col.top(m)}
        assert all(tuple(n["token_ids"]) in near_tops for n in negs if n["origin"] == "hard")
    assert kept > 0 and dropped > 0          # the check had something to drop, and left some
    # The bench's other-features negatives are the verified ones when there are any.
    fid = project.scalar("SELECT feature_id FROM examples WHERE kind = 'negative' AND origin = 'other' "
                         "ORDER BY feature_id LIMIT 1")
    es = ExampleSelector(project, seed=0, negatives="other-features", n_negatives=2).for_feature(fid)
    assert es.negatives_verified and all(e.kind == "negative" and e.feature_id == fid
                                         for e in es.examples if not e.truth)
    hfid = project.scalar("SELECT feature_id FROM examples WHERE kind = 'negative' AND origin = 'hard' "
                          "ORDER BY feature_id LIMIT 1")
    hard = ExampleSelector(project, seed=0, negatives="hard").for_feature(hfid)
    origins = {n["id"]: n["origin"] for n in stored(project, hfid, "negative")}
    assert hard.n_negative > 0 and {origins[e.example_id] for e in hard.examples if not e.truth} == {"hard"}
    origins = {n["id"]: n["origin"] for n in stored(project, fid, "negative")}
    scoring = ExampleSelector(project, seed=0).for_feature(fid)
    assert {origins[e.example_id] for e in scoring.examples if not e.truth} == {"scored"}
