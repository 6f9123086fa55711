"""Taxonomy scores recomputed from the definitions in DESIGN.md, independently of engine.scoring.

Only the raw transformers model, the sae-lens SAE's encode/decode and the corpus cutting are
shared with the code under test.  Everything else (the residual at the site, the logit lens
softmax over the full vocabulary, soft-capping, amplification with the clean max(f) and the
error term kept, min_rank with rank 0 = most probable, the input score's top-N contexts and
max-activating token ids, the density) is written here from the definitions.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from engine.scoring import corpus as corpus_mod
from engine.scoring.job import score
from engine.scoring.models import load_sae
from engine.scoring.random_models import random_sae, save_random_model
from store.db import loads

PROMPT = "From my experience,"
K = 20


def _layer_list(model):
    return model.model.layers if hasattr(model, "model") else model.transformer.h


def _final_norm(model):
    return model.model.norm if hasattr(model, "model") else model.transformer.ln_f


def _residual(model, ids: list[int], layer: int, post: bool) -> torch.Tensor:
    """Residual [T, d] at blocks.L.hook_resid_post (output of decoder layer L) or
    hook_resid_pre (its input), by a hook written here."""
    got = []
    mod = _layer_list(model)[layer]
    if post:
        h = mod.register_forward_hook(lambda m, a, o: got.append((o[0] if isinstance(o, tuple) else o).detach()))
    else:
        h = mod.register_forward_pre_hook(
            lambda m, a, kw: got.append((a[0] if a else kw["hidden_states"]).detach()), with_kwargs=True)
    try:
        with torch.no_grad():
            model(input_ids=torch.tensor([ids]))
    finally:
        h.remove()
    return got[0][0]


def _steered_probs(model, sae, ids: list[int], layer: int, post: bool, j: int, amp: float) -> torch.Tensor:
    """softmax over the full vocabulary of the last logits, with f[j] += amp * max(f) at the
    site's last position, h' = decode(f) + (h - decode(f_clean))."""
    def edit(h: torch.Tensor) -> torch.Tensor:
        h = h.clone()
        x = h[0, -1]
        f = sae.encode(x[None])[0]
        err = x - sae.decode(f[None])[0]
        f2 = f.clone()
        f2[j] = f2[j] + amp * f.max()
        h[0, -1] = sae.decode(f2[None])[0] + err
        return h

    mod = _layer_list(model)[layer]
    if post:
        def hook(m, a, o):
            if isinstance(o, tuple):
                return (edit(o[0]), *o[1:])
            return edit(o)
        handle = mod.register_forward_hook(hook)
    else:
        def pre(m, a, kw):
            if a:
                return (edit(a[0]), *a[1:]), kw
            return a, {**kw, "hidden_states": edit(kw["hidden_states"])}
        handle = mod.register_forward_pre_hook(pre, with_kwargs=True)
    try:
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0, -1].double()
    finally:
        handle.remove()
    return torch.softmax(logits, dim=-1)


def _lens_top(model, sae, j: int) -> list[int]:
    with torch.no_grad():
        logits = model.lm_head(_final_norm(model)(sae.W_dec[j][None]))[0].double()
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    p = torch.softmax(logits, dim=-1)
    return np.argsort(-p.numpy(), kind="stable")[:K].tolist()


# amp 10 is the default; a small amp leaves the lens tokens below the top (min_rank > 0).
CASES = [("llama", "blocks.1.hook_resid_post", 10.0), ("gemma2", "blocks.1.hook_resid_pre", 10.0),
         ("gpt2", "blocks.0.hook_resid_post", 0.2), ("gemma3", "blocks.1.hook_resid_post", 10.0)]


@pytest.mark.parametrize("arch,hook,amp", CASES)
def test_scores_equal_the_definitions(arch, hook, amp, tmp_path, project, demo_corpus):
    from store import settings

    settings.set(project, "amplification", amp)
    model_dir = save_random_model(tmp_path, arch, d_model=32, n_layers=3, seed=11)
    sae_dir = tmp_path / "sae"
    random_sae(32, 24, hook, seed=12).save_model(sae_dir)
    report = score(project, model=str(model_dir), sae=str(sae_dir), corpus=str(demo_corpus), ctx_len=16,
                   top_k=100, n_negatives=2, max_contexts=40, batch_size=8, continuation_tokens=0)
    assert report.output_scored == report.input_scored == 24

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    sae, _ = load_sae(str(sae_dir), torch.device("cpu"))
    layer, post = int(hook.split(".")[1]), hook.endswith("post")
    bos = tok.bos_token_id
    prompt_ids = [bos] + tok(PROMPT, add_special_tokens=False)["input_ids"]
    vocab = model.lm_head.weight.shape[0]

    # Activations of every context, from the definition; BOS positions are not tokens.
    ctxs = list(corpus_mod.contexts(corpus_mod.resolve(str(demo_corpus)), tok, 16, bos, max_contexts=40))
    assert len(ctxs) == 40
    acts = []
    with torch.no_grad():
        for c in ctxs:
            a = sae.encode(_residual(model, c, layer, post)).numpy().astype(np.float64)   # [T, F]
            a[np.array(c) == bos] = 0.0
            acts.append(a)
    n_tokens = sum(int((np.array(c) != bos).sum()) for c in ctxs)

    rows = {r["idx"]: r for r in project.query(
        "SELECT f.idx, f.id, f.density, f.max_act, t.input_score, t.output_score FROM features f "
        "JOIN taxonomy_scores t ON t.feature_id = f.id")}
    some_input = some_rank = 0
    for j in range(24):
        row = rows[j]
        lens = _lens_top(model, sae, j)
        stored_lens = [r["token_id"] for r in project.query(
            "SELECT token_id FROM logit_tokens WHERE feature_id = ? AND kind = 'promoted' ORDER BY rank",
            [row["id"]])]
        assert stored_lens == lens

        p = _steered_probs(model, sae, prompt_ids, layer, post, j, amp)
        order = np.argsort(-p.numpy(), kind="stable")
        rank_of = np.empty(vocab, dtype=int)
        rank_of[order] = np.arange(vocab)            # rank 0 = most probable
        min_rank = min(int(rank_of[t]) for t in lens)
        s_out = (1 - min_rank / vocab) * max(float(p[t]) for t in lens)
        assert row["output_score"] == pytest.approx(s_out, rel=1e-4)
        some_rank += min_rank > 0

        fires = sum(int((a[:, j] > 0).sum()) for a in acts)
        assert row["density"] == pytest.approx(fires / n_tokens, rel=1e-12)
        cmax = np.array([a[:, j].max() for a in acts])
        assert row["max_act"] == pytest.approx(cmax.max(), rel=1e-4, abs=1e-6)
        active = [i for i in np.argsort(-cmax, kind="stable") if cmax[i] > 0][:100]
        hits = sum(ctxs[i][int(np.argmax(acts[i][:, j]))] in set(lens) for i in active)
        expected = hits / len(active) if active else 0.0
        assert row["input_score"] == pytest.approx(expected, abs=1e-12)
        some_input += expected > 0
    assert some_input > 0                       # the comparisons are not all trivially zero
    assert some_rank > 0 or amp >= 10


def test_input_score_uses_only_the_top_100_contexts(project, planted, demo_corpus):
    """With more than 100 activating contexts, only the 100 best count (N <= 100)."""
    model_dir, sae_dir, _ = planted
    score(project, model=str(model_dir), sae=str(sae_dir), corpus=str(demo_corpus), ctx_len=16,
          top_k=150, n_negatives=0, max_contexts=400, batch_size=32, continuation_tokens=0)
    checked = 0
    for row in project.query("SELECT f.id, t.input_score, t.details FROM features f "
                             "JOIN taxonomy_scores t ON t.feature_id = f.id"):
        tops = project.query("SELECT token_ids, max_idx, max_act FROM examples WHERE feature_id = ? "
                             "AND kind = 'top' ORDER BY rank", [row["id"]])
        if len(tops) <= 100:
            continue
        lens = {r["token_id"] for r in project.query(
            "SELECT token_id FROM logit_tokens WHERE feature_id = ? AND kind = 'promoted'", [row["id"]])}
        acts = [t["max_act"] for t in tops]
        assert acts == sorted(acts, reverse=True)
        first = tops[:100]
        expected = sum(loads(t["token_ids"])[t["max_idx"]] in lens for t in first) / 100
        assert row["input_score"] == expected
        assert loads(row["details"])["input"]["contexts"] == 100
        checked += 1
    assert checked > 0
