"""The same checks on a CUDA device, where one exists."""
from __future__ import annotations

import pytest
import torch

from saegold.engine.scoring.job import score
from saegold.engine.scoring.lens import logit_lens
from saegold.engine.scoring.models import load_model, resolve_hook
from saegold.engine.scoring.output import OutputScorer
from saegold.engine.scoring.random_models import random_sae, save_random_model

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine"),
]


def test_fast_equals_naive_on_cuda(tmp_path):
    model_dir = save_random_model(tmp_path, "gemma2", d_model=32, n_layers=3, seed=3)
    lm = load_model(str(model_dir), "cuda", "float32")
    sae = random_sae(32, 64, "blocks.1.hook_resid_post", seed=4, bias=0.0).to("cuda")
    site = resolve_hook(lm, sae)
    feats = torch.arange(64)
    lens = logit_lens(lm, sae, feats)
    scorer = OutputScorer(lm, sae, site, "From my experience,", 10.0)
    fast = scorer.score(feats, lens.top_ids, batch_size=64)
    naive = scorer.score_naive(feats, lens.top_ids)
    assert float(((fast.scores - naive).abs() / naive.abs()).max()) <= 1e-4


def test_planted_categories_on_cuda(planted, demo_corpus, project):
    model_dir, sae_dir, expected = planted
    report = score(project, model=str(model_dir), sae=str(sae_dir), corpus=str(demo_corpus), ctx_len=32,
                   max_contexts=500, device="cuda", dtype="float32")
    assert report.device.startswith("cuda")
    got = {r["idx"]: r["category"] for r in project.query(
        "SELECT f.idx, t.category FROM features f JOIN taxonomy_scores t ON t.feature_id = f.id")}
    assert {j: got[j] for j in expected} == expected
