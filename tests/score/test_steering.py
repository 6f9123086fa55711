"""Steered generation at a target KL (engine.scoring.steering): planted behaviour, the bisection,
batched vs the one-feature-at-a-time reference, seeds independent of batch composition, and
the score job's resume / redo / Ctrl+C."""
from __future__ import annotations

import pytest
import torch

from saegold.engine.planted import STEERING_PROMPTS, STEERING_TARGETS
from saegold.engine.scoring.job import score
from saegold.engine.scoring.models import load_model, load_sae, resolve_hook
from saegold.engine.scoring.steering import Steerer, SteeringConfig, steer_chunk
from saegold.store import settings
from saegold.store.db import open_project
from saegold.store.steering import clean_for_feature, for_feature

# Batched and naive KLs are the same float32 computation in another batch shape (and, for the
# batched path, with the layers below the site replaced by their stored clean output): they
# differ by float32 rounding, ~1e-7 relative at these sizes; 1e-4 leaves room for any BLAS.
KL_RTOL = 1e-4
# Greedy tokens may differ only where the top two logits are this close (rounding scale x 100).
NEAR_TIE = 1e-3


def _load(model_dir, sae_dir):
    lm = load_model(str(model_dir), "cpu")
    sae, _ = load_sae(str(sae_dir), lm.device)
    return lm, sae, resolve_hook(lm, sae)


@pytest.fixture(scope="module")
def planted_project(planted, tmp_path_factory):
    """The planted model's 24 planted features steered through the real score job."""
    model_dir, sae_dir, expected = planted
    with open_project(tmp_path_factory.mktemp("steer") / "p.db", create=True) as project:
        settings.set(project, "steering_targets", STEERING_TARGETS)
        settings.set(project, "steering_prompts", STEERING_PROMPTS)
        report = score(project, model=str(model_dir), sae=str(sae_dir), features="0-23", device="cpu",
                       continuation_tokens=0, feature_batch=16)
        yield project, expected, report


def _count(project, idx: int, token: str) -> tuple[int, int, list]:
    fid = project.scalar("SELECT id FROM features WHERE idx = ?", [idx])
    rows = for_feature(project, fid)
    steered = sum(c["text"].split().count(token) for r in rows for c in r.continuations)
    clean = sum(t.split().count(token) for t in clean_for_feature(project, fid).values())
    return steered, clean * len(rows), rows      # clean counted once per target: same number of texts


def test_planted_output_features_promote_their_token_and_input_ones_do_not(planted_project):
    project, expected, report = planted_project
    assert report.steering.steered == 24 and report.steering.skipped == 0
    from saegold.engine.planted import CROSS_WORDS, INPUT_WORDS, OUTPUT_WORDS

    words = dict(zip(range(0, 6), CROSS_WORDS)) | dict(zip(range(6, 12), INPUT_WORDS)) \
        | dict(zip(range(12, 18), OUTPUT_WORDS))
    for j, cat in expected.items():
        lens_top = project.scalar(
            "SELECT l.token FROM logit_tokens l JOIN features f ON f.id = l.feature_id "
            "WHERE f.idx = ? AND l.kind = 'promoted' AND l.rank = 0", [j]).strip()
        if j in words:
            assert lens_top == words[j]
        steered, clean, rows = _count(project, j, lens_top)
        assert len(rows) == len(STEERING_TARGETS)
        assert all(len(r.continuations) == len(STEERING_PROMPTS) for r in rows)
        assert all(len(c["token_ids"]) == 25 for r in rows for c in r.continuations)
        if cat in ("output", "cross"):
            # 150 sampled tokens; the clean model says any one word about once in 290 (0.5 here).
            assert steered >= 5 * max(1, clean) and steered >= 10, (j, steered, clean)
            assert all(r.reached and abs(r.kl - r.target_kl) <= 0.05 * r.target_kl for r in rows)
        else:
            assert steered <= clean + 6, (j, cat, steered, clean)
    # Input features' decoders point mostly where no logit reads: the KL saturates below the
    # targets, and that is stored as it is (the KL reached, flagged), never as the target.
    for j in (j for j, c in expected.items() if c == "input"):
        for r in for_feature(project, project.scalar("SELECT id FROM features WHERE idx = ?", [j])):
            assert not r.reached and r.kl < 0.95 * r.target_kl and r.alpha > 0


def test_bisection_reaches_every_target_and_batched_matches_naive(tiny):
    lm, sae, site = _load(*tiny)
    cfg = SteeringConfig()                                    # the default targets 0.25 and 0.5
    st = Steerer(lm, sae, site, cfg)
    feats = torch.arange(64)
    fast = st.search(feats, batch_size=24)
    assert bool(fast.reached.all())
    tgt = torch.tensor(cfg.targets, dtype=torch.float64)
    assert bool(((fast.kl - tgt).abs() <= cfg.rel_tol * tgt).all())
    some = torch.tensor([0, 17, 40, 63])
    naive = st.search_naive(some)
    # Identical decisions wherever no evaluated KL lies within rounding of a target, i.e. here:
    # the same alphas (to the rounding of the bracket arithmetic) and the same KLs.
    assert torch.allclose(naive.alpha, fast.alpha[some], rtol=1e-9, atol=0)
    assert torch.allclose(naive.kl, fast.kl[some], rtol=KL_RTOL, atol=1e-7)
    # The batched KL at the stored alpha is what the naive reference says it is.
    for i, j in enumerate(some.tolist()):
        for k in range(len(cfg.targets)):
            ref = st.kl_naive(j, float(fast.alpha[j, k]))
            assert abs(ref - float(fast.kl[j, k])) <= KL_RTOL * ref


def test_greedy_batched_tokens_equal_naive_except_near_ties(tiny):
    lm, sae, site = _load(*tiny)
    cfg = SteeringConfig(temperature=0.0, n_tokens=12)
    st = Steerer(lm, sae, site, cfg)
    feats = [3, 9, 21, 50]
    chunk = steer_chunk(st, feats, batch_size=3)         # rows split unevenly over batches
    compared = 0
    for i, j in enumerate(feats):
        for k in range(len(cfg.targets)):
            alpha = float(chunk.search.alpha[i, k])
            for use_cache in (False, True):
                conts, gaps = st.generate_naive(j, alpha, target_key=float(cfg.targets[k]), use_cache=use_cache)
                for p, (got, ref, gap) in enumerate(zip(chunk.continuations[i][k], conts, gaps)):
                    for step, (a, b, g) in enumerate(zip(got, ref, gap)):
                        if g < NEAR_TIE:
                            break                     # a near-tie: the rest may rightly differ
                        assert a == b, (j, k, p, step)
                        compared += 1
    assert compared > 0.9 * len(feats) * 2 * 2 * 3 * 12


def test_sampled_continuations_do_not_depend_on_the_batch(tiny):
    lm, sae, site = _load(*tiny)
    st = Steerer(lm, sae, site, SteeringConfig(n_tokens=10))
    feats = torch.tensor([5, 6, 7, 8, 9])
    alphas = torch.tensor([20.0, 10.0, 15.0, 12.0, 30.0], dtype=torch.float64)
    keys = [int(f) for f in feats.tolist()]
    together = st.generate(feats, alphas, batch_size=5, keys=keys, target_keys=[0.25] * 5)
    alone = st.generate(feats[3:4], alphas[3:4], keys=[8], target_keys=[0.25])
    assert together[3] == alone[0]
    naive, _ = st.generate_naive(8, 12.0, target_key=0.25)
    assert naive == together[3]
    # Another seed key gives other samples (the seed is really used).
    other = st.generate(feats[3:4], alphas[3:4], keys=[8], target_keys=[0.5])
    assert other[0] != together[3]


def test_score_job_skips_done_features_redoes_on_request_and_keeps_chunks_on_ctrl_c(tiny, tmp_path):
    model_dir, sae_dir = tiny
    run = dict(model=str(model_dir), sae=str(sae_dir), device="cpu", continuation_tokens=0,
               feature_batch=8, features="0-23")

    def stop_after(n):
        def progress(stage, done, total):
            if stage == "steering" and done >= n:
                raise KeyboardInterrupt
        return progress

    with open_project(tmp_path / "p.db", create=True) as project:
        settings.set(project, "steering_tokens", 5)
        with pytest.raises(KeyboardInterrupt):
            score(project, progress=stop_after(8), **run)
        assert project.scalar("SELECT COUNT(DISTINCT feature_id) FROM steering") == 8
        first = {r["feature_id"]: r["created_at"] for r in project.query("SELECT * FROM steering")}
        rep = score(project, **run).steering
        assert (rep.steered, rep.skipped) == (16, 8)
        assert project.scalar("SELECT COUNT(*) FROM steering") == 24 * 2
        kept = {r["feature_id"]: r["created_at"] for r in project.query("SELECT * FROM steering")}
        assert all(kept[f] == t for f, t in first.items())
        assert score(project, **run).steering.steered == 0
        # New settings make stored results stale: they are redone, not mixed in.
        settings.set(project, "steering_targets", [0.3])
        rep = score(project, **run).steering
        assert rep.steered == 24
        assert {r["target_kl"] for r in project.query("SELECT target_kl FROM steering")} == {0.3}
        rep = score(project, redo=True, **run).steering
        assert (rep.steered, rep.skipped) == (24, 0)
        assert score(project, steering=False, **run).steering is None


def test_steering_settings_are_checked(tmp_path):
    from saegold.store.errors import StoreError

    with open_project(tmp_path / "p.db", create=True) as project:
        for key, bad in (("steering_targets", [0.25, 0]), ("steering_targets", []), ("steering_targets", [0.5, 0.5]),
                         ("steering_prompts", ["I think", ""]), ("steering_tokens", 0),
                         ("steering_temperature", -1)):
            with pytest.raises(StoreError, match=key):
                settings.set(project, key, bad)
        assert settings.from_text("steering_targets", "0.1,0.2") == (0.1, 0.2)
        assert settings.load(project).steering_targets == (0.25, 0.5)


def test_merge_brings_steered_continuations_of_features_we_lack(tmp_path):
    from saegold.store.features import get_or_create_source, upsert_feature
    from saegold.store.merge import merge
    from saegold.store.steering import SteeredRow, put_clean, replace_feature

    def fill(path, idxs, alpha):
        with open_project(path, create=True) as project:
            with project.write() as db:
                sid = get_or_create_source(db, "m", "s")
                put_clean(db, sid, "We", " the clean text", [5, 6], {"settings": {}})
                for j in idxs:
                    replace_feature(db, upsert_feature(db, sid, j), [SteeredRow(
                        0, 0.5, alpha, 0.49, True, [{"prompt": "We", "text": f" steered {j}", "token_ids": [j]}],
                        {"settings": {}})])

    fill(tmp_path / "a.db", [0, 1], 2.0)
    fill(tmp_path / "b.db", [1, 2], 3.0)
    with open_project(tmp_path / "a.db") as project:
        report = merge(project, tmp_path / "b.db")
        rows = {r["idx"]: (r["alpha"], loads_text(r["continuations"])) for r in project.query(
            "SELECT f.idx, st.alpha, st.continuations FROM steering st JOIN features f ON f.id = st.feature_id")}
        assert rows == {0: (2.0, " steered 0"), 1: (2.0, " steered 1"), 2: (3.0, " steered 2")}
        assert report.added["steering"] == 1 and report.present["steering"] == 1
        assert [c.table for c in report.conflicts] == ["steering"]          # feature 1 differs: ours kept
        assert project.scalar("SELECT COUNT(*) FROM steering_clean") == 1


def loads_text(continuations: str) -> str:
    import json

    return json.loads(continuations)[0]["text"]


def test_the_steering_plan_is_checked_not_switched(planted, monkeypatch):
    """Where skipping the layers below the site changes the KL, the check returns a plan that
    runs them (the steerer keeps its own until it adopts one); where even that disagrees with
    the reference, the model is refused."""
    import saegold.engine.scoring.steering as steering_mod
    from saegold.engine.scoring.errors import ScoringError

    model_dir, sae_dir, _ = planted
    lm, sae, site = _load(model_dir, sae_dir)
    cfg = SteeringConfig(prompts=("I think",), n_tokens=2)
    feats = torch.tensor([12, 13])
    good = Steerer(lm, sae, site, cfg).check(feats)
    assert good.name == "skip-layers" and good.checked <= 1e-3

    real = steering_mod.start_at_site
    monkeypatch.setattr(steering_mod, "start_at_site", lambda lm_, site_, fn: real(lm_, site_, lambda h: fn(h) * 1.5))
    st = Steerer(lm, sae, site, cfg)
    plan = st.check(feats)
    assert st.plan.skip_layers and st.plan.checked is None
    assert plan.name == "full-layers" and plan.checked <= 1e-3
    assert st.self_check(feats) == plan.checked and st.plan == plan and not st.skip_layers

    real_naive = Steerer.kl_naive                    # a reference both batched plans disagree with
    monkeypatch.setattr(Steerer, "kl_naive", lambda self, f, a: 2 * real_naive(self, f, a) + 1.0)
    st = Steerer(lm, sae, site, cfg)
    with pytest.raises(ScoringError, match="disagrees with the per-feature reference"):
        st.check(feats)
