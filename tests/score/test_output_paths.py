"""The fast shared-prefix output score equals the naive per-feature reference."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import DynamicCache

from saegold.engine.scoring.lens import lens_logits, logit_lens
from saegold.engine.planted import build_tokenizer, vocabulary
from saegold.engine.scoring.models import edit_site, load_model, resolve_hook, wrap_model
from saegold.engine.scoring.output import OutputScorer, score_from_logits, top_logits
from saegold.engine.scoring.random_models import random_model, random_sae, save_random_model
from tolerance import ATOL, P_RTOL, assert_topk, rank_range

CASES = [
    ("llama", "blocks.1.hook_resid_post", "From my experience,"),
    ("llama", "blocks.0.hook_resid_pre", "From my experience,"),
    ("llama", "blocks.2.hook_resid_post", "the ocean"),          # last layer: straight to the final norm
    ("gpt2", "blocks.1.hook_resid_post", "From my experience,"),
    ("gemma2", "blocks.1.hook_resid_post", "we ate bread and cheese at the market after the storm ,"),
    ("gemma2", "blocks.1.hook_resid_pre", "ocean"),               # BOS + one token
    ("qwen2", "blocks.1.hook_resid_post", "From my experience,"),
    ("gemma3", "blocks.0.hook_resid_pre", "From my experience,"),
]


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b).abs() / b.abs().clamp_min(1e-30)).max())


def _lm(arch, tmp_path, seed):
    """The model through the real loader, from a saved directory; Qwen2 in code, because
    transformers gives a saved qwen2 directory its own BPE tokenizer class, which cannot read
    the planted word-level vocabulary."""
    if arch == "qwen2":
        model = random_model(arch, vocab_size=len(vocabulary()), d_model=32, n_layers=3, seed=seed)
        return wrap_model(model, build_tokenizer(), arch, torch.device("cpu"), torch.float32)
    return load_model(str(save_random_model(tmp_path, arch, d_model=32, n_layers=3, seed=seed)), "cpu", "float32")


@pytest.mark.parametrize("arch,hook,prompt", CASES)
def test_fast_equals_naive_for_every_feature(arch, hook, prompt, tmp_path):
    lm = _lm(arch, tmp_path, seed=3)
    sae = random_sae(32, 64, hook, seed=4, bias=0.0)
    site = resolve_hook(lm, sae)
    feats = torch.arange(64)
    lens = logit_lens(lm, sae, feats, k=20, chunk=40)
    scorer = OutputScorer(lm, sae, site, prompt, amplification=10.0)
    assert len(scorer.prompt_ids) >= 1 + len(prompt.split())     # BOS + at least a token per word
    assert scorer.f_max > 0
    fast = scorer.score(feats, lens.top_ids, batch_size=37)
    naive = scorer.score_naive(feats, lens.top_ids)
    assert _rel_err(fast.scores, naive) <= 1e-4
    assert fast.scores.min() > 0 and fast.scores.max() <= 1
    # The amplification changes the output (else fast == naive would prove nothing).
    clean = score_from_logits(scorer.clean_p.log()[None].expand(64, -1), lens.top_ids).scores
    assert _rel_err(clean, naive) > 1e-2
    # The fast path did its own unembedding (not the model's head) and steered by adding the
    # decoder row (sae-lens decoders are affine), and still agrees.
    assert scorer.own_head and scorer.linear_decode


def test_score_formula_on_known_probabilities():
    p = torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.1, 0.2, 0.3, 0.4]], dtype=torch.float64)
    ids = torch.tensor([[2, 3], [0, 1]])
    logits = (p.log() + torch.tensor([[3.0], [-7.0]], dtype=torch.float64)).float()   # softmax-invariant shift
    out = score_from_logits(logits, ids, top=3)
    # row 0: best lens token is 2 (p .15, rank 2); row 1: token 1 (p .2, rank 2)
    assert out.min_rank.tolist() == [2, 2]
    assert torch.allclose(out.scores, torch.tensor([(1 - 2 / 4) * 0.15, (1 - 2 / 4) * 0.2], dtype=torch.float64))
    assert torch.allclose(out.max_p, torch.tensor([0.15, 0.2], dtype=torch.float64))
    assert out.next_ids.tolist() == [[0, 1, 2], [3, 2, 1]]
    assert torch.allclose(out.next_p, p.float().topk(3).values)


def test_blocks_of_rows_equal_one_block(tmp_path, monkeypatch):
    """Reducing the logits a few rows at a time gives what one block gives.  The unembedding of
    7 rows and of 50 rows are different float32 products (another kernel blocking), so the
    logits may differ in their last bits: scores agree to P_RTOL, and the ranks and top next
    tokens exactly except where the one-block logits themselves are tied within ATOL."""
    import saegold.engine.scoring.output as output_mod
    model_dir = save_random_model(tmp_path, "gpt2", d_model=32, n_layers=2, seed=11)
    lm = load_model(str(model_dir), "cpu", "float32")
    sae = random_sae(32, 50, "blocks.0.hook_resid_post", seed=12, bias=0.0)
    scorer = OutputScorer(lm, sae, resolve_hook(lm, sae), "From my experience,", 10.0)
    feats = torch.arange(50)
    lens = logit_lens(lm, sae, feats, k=2)
    whole = scorer.score(feats, lens.top_ids, batch_size=50)
    ref = scorer.fast_logits(feats)                                  # the one-block logits
    monkeypatch.setattr(output_mod, "tail_rows", lambda vocab, device: 7)
    parts = scorer.score(feats, lens.top_ids, batch_size=50)
    assert torch.allclose(parts.max_p, whole.max_p, rtol=P_RTOL, atol=0)
    for i in range(50):
        best = float(ref[i, lens.top_ids[i]].max())
        lo, hi = rank_range(ref[i], best, ATOL)
        assert lo <= int(parts.min_rank[i]) <= hi and lo <= int(whole.min_rank[i]) <= hi
        if lo == hi:                                                 # no near-tie: the same rank
            assert parts.min_rank[i] == whole.min_rank[i]
            assert abs(float(parts.scores[i] - whole.scores[i])) <= P_RTOL * float(whole.scores[i])
        assert_topk(parts.next_ids[i].tolist(), ref[i], ATOL, what=f"row {i}")
    assert len(set(whole.min_rank.tolist())) > 1


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
    # Chunks of 3 rows vs one product of 10: the same ids except where values tie within ATOL.
    for j in range(10):
        assert_topk(lens.top_ids[j].tolist(), capped[j], what=f"top of {j}")
        assert_topk(lens.bottom_ids[j].tolist(), capped[j], largest=False, what=f"bottom of {j}")
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
    # The first token is the fast path's argmax (the steering and the batch differ: a token
    # whose logit ties the maximum within ATOL is right too).
    first = scorer.fast_logits(feats)
    assert all(float(first[i, c[0]]) >= float(first[i].max()) - ATOL for i, c in enumerate(conts))
    assert len({tuple(c) for c in conts}) > 1
    for j in (5, 33):
        def edit(h, j=j):
            h = h.clone()
            h[:, -1] = scorer.steer(h[:, -1], torch.tensor([j])).to(h.dtype)
            return h

        seq = scorer.prompt_ids.tolist()
        cache = DynamicCache(config=lm.model.config)
        out, steps = [], []
        with torch.no_grad():
            lm.forward(torch.tensor([seq[:-1]]), cache, use_cache=True)
            ids = torch.tensor([[seq[-1]]])
            with edit_site(lm, site, edit):
                for _ in range(8):
                    logits = lm.forward(ids, cache, use_cache=True).logits[0, -1]
                    nxt = logits.argmax()
                    out.append(int(nxt))
                    steps.append(logits)
                    ids = nxt.view(1, 1)
        # One feature alone vs a batch of 16: the same greedy tokens, unless two logits tie
        # within ATOL at a step (then the batch may take the other; the rest follows from it).
        for t, (a, b) in enumerate(zip(conts[j], out)):
            if a != b:
                assert float(steps[t][a]) >= float(steps[t].max()) - ATOL, (j, t, conts[j], out)
                break


def test_self_check_falls_back_to_running_all_layers(tmp_path, monkeypatch):
    """Where skipping the early layers is wrong for a model, the self-check notices and the
    full-layer batched path (still exact) takes over; if that fails too, a clear error."""
    import saegold.engine.scoring.output as output_mod
    from saegold.engine.scoring.errors import ScoringError

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
    plan = scorer.check(feats[:4], lens.top_ids[:4])          # the plan is returned, nothing switched
    assert scorer.plan.skip_layers and scorer.plan.checked is None
    assert plan.name == "full-layers" and not plan.skip_layers and plan.checked <= 1e-4
    assert plan.own_head == scorer.plan.own_head and plan.affine_decode == scorer.plan.affine_decode
    assert scorer.self_check(feats[:4], lens.top_ids[:4]) <= 1e-4
    assert scorer.plan == plan
    assert not scorer.skip_layers
    full = scorer.score(feats, lens.top_ids, batch_size=10).scores
    assert _rel_err(full, scorer.score_naive(feats, lens.top_ids)) <= 1e-4

    scorer = OutputScorer(lm, sae, site, "From my experience,", 10.0)
    real_head = scorer.head

    def wrong(x, out=None):                           # both batched paths now disagree
        return real_head(x, out) * 2

    monkeypatch.setattr(scorer, "head", wrong)
    with pytest.raises(ScoringError, match="disagrees with the per-feature reference"):
        scorer.self_check(feats[:4], lens.top_ids[:4])


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 6), vocab=st.integers(1, 700), k=st.integers(0, 12), block=st.sampled_from([1, 4, 64]),
       levels=st.integers(2, 1000), seed=st.integers(0, 2**31 - 1))
def test_top_logits_equals_topk(rows, vocab, k, block, levels, seed):
    """The block search returns the same top values as a full top-k (ties included: coarse
    integer logits make many), with ids that hold those values and never repeat."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randint(0, levels, (rows, vocab), generator=g).float()
    vals, ids = top_logits(logits, k, block)
    ref = logits.topk(min(k, vocab), dim=-1).values
    assert torch.equal(vals, ref)
    assert torch.equal(logits.gather(1, ids), vals)
    assert all(len(set(r)) == len(r) for r in ids.tolist())


def test_model_head_is_used_where_saegold_cannot_reproduce_it(tmp_path, monkeypatch):
    """A head that the final norm plus the unembedding does not reproduce (extra scaling,
    say) is noticed at start, and the fast path then reduces the model's own logits."""
    model_dir = save_random_model(tmp_path, "llama", d_model=32, n_layers=3, seed=13)
    lm = load_model(str(model_dir), "cpu", "float32")
    sae = random_sae(32, 30, "blocks.1.hook_resid_post", seed=14, bias=0.0)
    feats = torch.arange(30)
    lens = logit_lens(lm, sae, feats)
    real = type(lm).logits_from_normed
    monkeypatch.setattr(type(lm), "logits_from_normed", lambda self, x, out=None: real(self, x, out) * 1.01)
    scorer = OutputScorer(lm, sae, resolve_hook(lm, sae), "From my experience,", 10.0)
    assert not scorer.own_head
    fast = scorer.score(feats, lens.top_ids, batch_size=11)
    assert _rel_err(fast.scores, scorer.score_naive(feats, lens.top_ids)) <= 1e-4
    assert scorer.fast_logits(feats[:3]).shape == (3, lm.vocab_size)


def test_a_head_with_its_own_forward_is_noticed_through_the_fast_paths_product(tmp_path):
    """An output embedding that is an ``nn.Linear`` subclass with its own forward (here: a
    scale) is what the model runs; the fast path's plain product into its float32 buffer
    does not reproduce it.  The start-up check goes through that product, so the model's own
    logits are used, and the model is scored (not refused by the self-check)."""
    from torch import nn

    class ScaledHead(nn.Linear):
        def forward(self, x):
            return super().forward(x) * 1.5

    model = random_model("llama", vocab_size=len(vocabulary()), d_model=32, n_layers=3, seed=17)
    head = ScaledHead(32, model.lm_head.out_features, bias=False)
    head.weight = model.lm_head.weight
    model.lm_head = head
    lm = wrap_model(model, build_tokenizer(), "llama", torch.device("cpu"), torch.float32)
    sae = random_sae(32, 30, "blocks.1.hook_resid_post", seed=18, bias=0.0)
    feats = torch.arange(30)
    lens = logit_lens(lm, sae, feats)
    scorer = OutputScorer(lm, sae, resolve_hook(lm, sae), "From my experience,", 10.0)
    assert not scorer.own_head
    assert scorer.self_check(feats[:4], lens.top_ids[:4]) <= 1e-4
    fast = scorer.score(feats, lens.top_ids, batch_size=11)
    assert _rel_err(fast.scores, scorer.score_naive(feats, lens.top_ids)) <= 1e-4


def test_full_decode_where_the_decoder_is_not_affine(tmp_path):
    """An SAE whose decode is not affine in f (here: clipped) is noticed at start; the fast
    path then decodes the whole amplified code, as the definition says, and still agrees."""
    model_dir = save_random_model(tmp_path, "llama", d_model=32, n_layers=3, seed=15)
    lm = load_model(str(model_dir), "cpu", "float32")
    sae = random_sae(32, 30, "blocks.1.hook_resid_post", seed=16, bias=0.0)
    plain = sae.decode
    sae.decode = lambda f: plain(f).clamp(-0.2, 0.2)
    feats = torch.arange(30)
    lens = logit_lens(lm, sae, feats)
    scorer = OutputScorer(lm, sae, resolve_hook(lm, sae), "From my experience,", 10.0)
    assert not scorer.linear_decode
    fast = scorer.score(feats, lens.top_ids, batch_size=11)
    assert _rel_err(fast.scores, scorer.score_naive(feats, lens.top_ids)) <= 1e-4


def test_a_prompt_the_tokenizer_drops_is_refused(tmp_path):
    """A saved qwen2 directory gets transformers' Qwen2 BPE tokenizer class, which reads the
    planted word-level vocabulary as nothing: scoring on a BOS-only prompt would be silently
    wrong, so it is one clear error instead."""
    from saegold.engine.scoring.errors import ModelLoadError

    lm = load_model(str(save_random_model(tmp_path, "qwen2", d_model=32, n_layers=2, seed=1)), "cpu", "float32")
    with pytest.raises(ModelLoadError, match="tokenizes to no tokens"):
        lm.encode_prompt("From my experience,")


def test_a_model_whose_config_gives_no_width_is_one_clear_error():
    """It used to fail with "TypeError: int() argument must be ... not 'NoneType'"."""
    from types import SimpleNamespace

    from saegold.engine.scoring.errors import ModelLoadError

    model = random_model("gpt2", vocab_size=len(vocabulary()), d_model=32, n_layers=2, seed=0)
    model.config.get_text_config = lambda *a, **k: SimpleNamespace(n_layer=2)   # no hidden_size, no n_embd
    with pytest.raises(ModelLoadError, match="no hidden size"):
        wrap_model(model, build_tokenizer(), "gpt2", torch.device("cpu"), torch.float32)
