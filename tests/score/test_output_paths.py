"""The fast shared-prefix output score equals the naive per-feature reference."""
from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache

from engine.scoring.lens import lens_logits, logit_lens
from engine.scoring.models import edit_site, load_model, resolve_hook
from engine.scoring.output import OutputScorer, score_from_probs
from engine.scoring.random_models import random_sae, save_random_model

CASES = [
    ("llama", "blocks.1.hook_resid_post", "From my experience,"),
    ("llama", "blocks.0.hook_resid_pre", "From my experience,"),
    ("llama", "blocks.2.hook_resid_post", "the ocean"),          # last layer: straight to the final norm
    ("gpt2", "blocks.1.hook_resid_post", "From my experience,"),
    ("gemma2", "blocks.1.hook_resid_post", "we ate bread and cheese at the market after the storm ,"),
    ("gemma2", "blocks.1.hook_resid_pre", "ocean"),               # BOS + one token
]


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b).abs() / b.abs().clamp_min(1e-30)).max())


@pytest.mark.parametrize("arch,hook,prompt", CASES)
def test_fast_equals_naive_for_every_feature(arch, hook, prompt, tmp_path):
    model_dir = save_random_model(tmp_path, arch, d_model=32, n_layers=3, seed=3)
    lm = load_model(str(model_dir), "cpu", "float32")
    sae = random_sae(32, 64, hook, seed=4, bias=0.0)
    site = resolve_hook(lm, sae)
    feats = torch.arange(64)
    lens = logit_lens(lm, sae, feats, k=20, chunk=40)
    scorer = OutputScorer(lm, sae, site, prompt, amplification=10.0)
    assert scorer.f_max > 0
    fast = scorer.score(feats, lens.top_ids, batch_size=37)
    naive = scorer.score_naive(feats, lens.top_ids)
    assert _rel_err(fast.scores, naive) <= 1e-4
    assert fast.scores.min() > 0 and fast.scores.max() <= 1
    # The amplification changes the output (else fast == naive would prove nothing).
    clean = score_from_probs(scorer.clean_p[None].expand(64, -1), lens.top_ids)[0]
    assert _rel_err(clean, naive) > 1e-2


def test_score_formula_on_known_probabilities():
    p = torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.1, 0.2, 0.3, 0.4]])
    ids = torch.tensor([[2, 3], [0, 1]])
    s, rank, max_p = score_from_probs(p, ids)
    # row 0: best lens token is 2 (p .15, rank 2); row 1: token 1 (p .2, rank 2)
    assert rank.tolist() == [2, 2]
    assert torch.allclose(s, torch.tensor([(1 - 2 / 4) * 0.15, (1 - 2 / 4) * 0.2], dtype=torch.float64))
    assert torch.allclose(max_p, torch.tensor([0.15, 0.2], dtype=torch.float64))


def test_logit_lens_matches_definition_with_softcap(tmp_path):
    """W_U . final_norm(W_dec[j]) through the model's own modules; Gemma 2's final logit
    soft-capping is applied (monotone, so the ranking holds, but the values change)."""
    model_dir = save_random_model(tmp_path, "gemma2", d_model=32, n_layers=2, seed=5)
    lm = load_model(str(model_dir), "cpu", "float32")
    assert lm.softcap == 5.0
    sae = random_sae(32, 10, "blocks.0.hook_resid_post", seed=6)
    lens = logit_lens(lm, sae, torch.arange(10), k=20, chunk=3)
    with torch.no_grad():
        raw = lm.model.lm_head(lm.model.model.norm(sae.W_dec))
    capped = torch.tanh(raw / 5.0) * 5.0
    assert torch.equal(lens.top_ids, capped.topk(20, dim=-1).indices)
    assert torch.equal(lens.bottom_ids, capped.topk(20, dim=-1, largest=False).indices)
    assert torch.allclose(lens.top_vals, capped.topk(20, dim=-1).values, atol=1e-5)
    assert lens.top_vals.max() <= 5.0
    assert torch.allclose(lens_logits(lm, sae, torch.tensor([3])), capped[3:4], atol=1e-5)


def test_continuations_equal_one_feature_at_a_time(tmp_path):
    """Batched greedy continuations under amplification equal a one-feature generation."""
    model_dir = save_random_model(tmp_path, "llama", d_model=32, n_layers=3, seed=7)
    lm = load_model(str(model_dir), "cpu", "float32")
    sae = random_sae(32, 40, "blocks.1.hook_resid_post", seed=8, bias=0.0)
    site = resolve_hook(lm, sae)
    scorer = OutputScorer(lm, sae, site, "From my experience,", 10.0)
    feats = torch.arange(40)
    conts = scorer.continuations(feats, n_tokens=8, batch_size=16)
    assert all(len(c) == 8 for c in conts)
    assert [c[0] for c in conts] == scorer.fast_probs(feats).argmax(dim=-1).tolist()
    assert len({tuple(c) for c in conts}) > 1
    for j in (5, 33):
        def edit(h, j=j):
            h = h.clone()
            h[:, -1] = scorer.steer(h[:, -1], torch.tensor([j])).to(h.dtype)
            return h

        seq = scorer.prompt_ids.tolist()
        cache = DynamicCache(config=lm.model.config)
        out = []
        with torch.no_grad():
            lm.forward(torch.tensor([seq[:-1]]), cache, use_cache=True)
            ids = torch.tensor([[seq[-1]]])
            with edit_site(lm, site, edit):
                for _ in range(8):
                    nxt = lm.forward(ids, cache, use_cache=True).logits[0, -1].argmax()
                    out.append(int(nxt))
                    ids = nxt.view(1, 1)
        assert conts[j] == out


def test_self_check_falls_back_to_running_all_layers(tmp_path, monkeypatch):
    """Where skipping the early layers is wrong for a model, the self-check notices and the
    full-layer batched path (still exact) takes over; if that fails too, a clear error."""
    import engine.scoring.output as output_mod
    from engine.scoring.errors import ScoringError

    model_dir = save_random_model(tmp_path, "llama", d_model=32, n_layers=3, seed=9)
    lm = load_model(str(model_dir), "cpu", "float32")
    sae = random_sae(32, 24, "blocks.1.hook_resid_post", seed=10, bias=0.0)
    site = resolve_hook(lm, sae)
    feats = torch.arange(24)
    lens = logit_lens(lm, sae, feats)
    scorer = OutputScorer(lm, sae, site, "From my experience,", 10.0)
    assert scorer.self_check(feats[:4], lens.top_ids[:4]) <= 1e-4 and scorer.skip_layers

    real = output_mod.start_at_site

    def broken(lm_, site_, fn):                      # feeds a perturbed residual
        return real(lm_, site_, lambda h: fn(h) * 1.5)

    monkeypatch.setattr(output_mod, "start_at_site", broken)
    scorer = OutputScorer(lm, sae, site, "From my experience,", 10.0)
    assert scorer.self_check(feats[:4], lens.top_ids[:4]) <= 1e-4
    assert not scorer.skip_layers
    full = scorer.score(feats, lens.top_ids, batch_size=10).scores
    assert _rel_err(full, scorer.score_naive(feats, lens.top_ids)) <= 1e-4

    scorer = OutputScorer(lm, sae, site, "From my experience,", 10.0)
    real_fast = scorer.fast_probs

    def wrong(features):                              # both batched paths now disagree
        p = real_fast(features) ** 2
        return p / p.sum(dim=-1, keepdim=True)

    monkeypatch.setattr(scorer, "fast_probs", wrong)
    with pytest.raises(ScoringError, match="disagrees with the per-feature reference"):
        scorer.self_check(feats[:4], lens.top_ids[:4])
