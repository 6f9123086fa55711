"""The streamed top-K collection equals a brute-force pass; input scores equal a recount."""
from __future__ import annotations

import torch

from saegold.engine.scoring import corpus as corpus_mod
from saegold.engine.scoring.collect import collect, per_token_acts, sae_acts
from saegold.engine.scoring.job import score
from saegold.engine.scoring.models import load_model, load_sae, resolve_hook
from saegold.store.db import loads
from saegold.store.features import examples
from tolerance import ATOL


def test_topk_collection_equals_brute_force(tiny, demo_corpus):
    model_dir, sae_dir = tiny
    lm = load_model(str(model_dir), "cpu", "float32")
    sae, _ = load_sae(str(sae_dir), lm.device)
    site = resolve_hook(lm, sae)
    spec = corpus_mod.resolve(str(demo_corpus))
    ctxs = list(corpus_mod.contexts(spec, lm.tokenizer, 16, lm.bos_id, max_tokens=61 * 16 - 5))
    assert len(ctxs) == 61 and all(c[0] == lm.bos_id for c in ctxs)
    feats = torch.tensor([0, 3, 5, 7, 11, 20, 31, 40, 63])
    k, r = 6, 4
    col = collect(lm, sae, site, feats, iter(ctxs), batch_size=7, top_k=k, n_negatives=r, seed=1)

    # Brute force: every context alone (no batching, no padding), with the pre-activations.
    pre: list[torch.Tensor] = []
    grab = sae.hook_sae_acts_pre.register_forward_hook(lambda m, a, o: pre.append(o[0][:, feats].clone()))
    try:
        per_ctx = [sae_acts(lm, sae, site, feats, [c], lm.bos_id)[0][0] for c in ctxs]   # [T, F] each
    finally:
        grab.remove()
    counted = [torch.tensor(c) != lm.bos_id for c in ctxs]
    pre = [p[m] for p, m in zip(pre, counted)]                                          # counted tokens
    cmax = torch.stack([a.amax(dim=0) for a in per_ctx])                               # [N, F]
    n_tokens = sum(sum(1 for t in c if t != lm.bos_id) for c in ctxs)
    assert col.n_tokens == n_tokens and col.n_contexts == len(ctxs)
    # A token fires when its pre-activation is > 0; batched (7 contexts, padded) and alone are
    # different products, so one within ATOL of 0 may go either way, and no other.
    surely = torch.stack([(p > ATOL).sum(dim=0) for p in pre]).sum(dim=0)
    maybe = torch.stack([(p > -ATOL).sum(dim=0) for p in pre]).sum(dim=0)
    assert bool(((surely <= col.fire_count) & (col.fire_count <= maybe)).all())
    assert int((maybe - surely).sum()) <= 2          # near-zero pre-activations stay rare here
    assert torch.allclose(col.max_act, cmax.amax(dim=0), atol=1e-5)
    some_short = False
    for f in range(len(feats)):
        order = sorted((i for i in range(len(ctxs)) if cmax[i, f] > 0), key=lambda i: -float(cmax[i, f]))[:k]
        got = col.top(f)
        # Equal maxima happen (same first tokens after BOS give the same activation), so
        # compare the values in order and check each kept context's own value.
        assert len(got) == len(order) and len({c for c, _ in got}) == len(got)
        assert torch.allclose(torch.tensor([v for _, v in got]), cmax[order, f], atol=1e-5)
        assert all(abs(float(cmax[c, f]) - v) <= 1e-5 for c, v in got)
        some_short |= len(order) < k
        negs = col.negatives(f)
        ctx_pre = torch.stack([p[:, f].max() if len(p) else torch.tensor(-1.0) for p in pre])   # [N]
        surely_off, maybe_off = int((ctx_pre < -ATOL).sum()), int((ctx_pre <= ATOL).sum())
        assert min(r, surely_off) <= len(negs) <= min(r, maybe_off) and len(set(negs)) == len(negs)
        assert all(float(ctx_pre[i]) <= ATOL for i in negs)
    assert some_short or all(len(col.top(f)) == k for f in range(len(feats)))
    assert any(len(col.top(f)) == k for f in range(len(feats)))
    # Per-token activations of the kept contexts equal the brute-force ones.
    acts = per_token_acts(lm, sae, site, col, list(range(len(feats))), batch_size=5)
    for (f, rank), a in acts.items():
        c = col.top(f)[rank][0]
        assert len(a) == len(ctxs[c])
        assert torch.allclose(torch.tensor(a), per_ctx[c][:, f], atol=1e-5)
    assert set(col.contexts) >= {c for f in range(len(feats)) for c, _ in col.top(f)}


def test_input_score_equals_recount_from_stored_examples(tiny, demo_corpus, project):
    model_dir, sae_dir = tiny
    report = score(project, model=str(model_dir), sae=str(sae_dir), corpus=str(demo_corpus), ctx_len=24,
                   top_k=12, n_negatives=3, max_contexts=150, batch_size=16, feature_batch=20,
                   continuation_tokens=2)
    assert report.input_scored == report.output_scored == 64
    rows = project.query(
        "SELECT f.id, f.idx, f.density, f.n_tokens_seen, t.input_score, t.details FROM features f "
        "JOIN taxonomy_scores t ON t.feature_id = f.id ORDER BY f.idx")
    assert len(rows) == 64
    nonzero = 0
    for row in rows:
        tops = examples(project, row["id"], "top")
        lens = {r["token_id"] for r in project.query(
            "SELECT token_id FROM logit_tokens WHERE feature_id = ? AND kind = 'promoted'", [row["id"]])}
        assert len(lens) == 20
        for ex in tops:
            assert ex["max_idx"] == max(range(len(ex["acts"])), key=ex["acts"].__getitem__)
            assert ex["max_act"] > 0 and ex["origin"] == "scored"
        hits = sum(ex["token_ids"][ex["max_idx"]] in lens for ex in tops[:100])
        expected = hits / len(tops) if tops else 0.0
        assert row["input_score"] == expected
        assert loads(row["details"])["input"]["contexts"] == len(tops) <= 12
        assert row["n_tokens_seen"] == report.n_tokens
        nonzero += expected > 0
    assert nonzero > 0          # the recount is not trivially all zeros
