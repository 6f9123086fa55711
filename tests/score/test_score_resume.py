"""Ctrl+C keeps finished chunks, a re-run skips them, --redo redoes, shards merge cleanly."""
from __future__ import annotations

import json

import pytest

from scorekit import assert_same_results, snapshot

from saegold.engine.scoring.errors import ScoringError
from saegold.engine.scoring.job import parse_shard, score, shard_of
from saegold.store.db import open_project

RUN = dict(ctx_len=20, top_k=8, n_negatives=3, max_contexts=80, batch_size=16, feature_batch=16,
           continuation_tokens=3)


@pytest.fixture(scope="module")
def reference(tiny, demo_corpus, tmp_path_factory):
    """One uninterrupted, unsharded run."""
    model_dir, sae_dir = tiny
    with open_project(tmp_path_factory.mktemp("ref") / "ref.db", create=True) as project:
        score(project, model=str(model_dir), sae=str(sae_dir), corpus=str(demo_corpus), **RUN)
        return snapshot(project)


def _interrupt_at(stage: str, after: int):
    def progress(s: str, done: int, total: int | None) -> None:
        if s == stage and done >= after:
            raise KeyboardInterrupt
    return progress


def test_interrupt_keeps_finished_chunks_and_rerun_completes(tiny, demo_corpus, project, reference):
    model_dir, sae_dir = tiny
    args = dict(model=str(model_dir), sae=str(sae_dir), corpus=str(demo_corpus), **RUN)
    with pytest.raises(KeyboardInterrupt):
        score(project, progress=_interrupt_at("output scores", 32), **args)
    assert project.scalar("SELECT COUNT(*) FROM taxonomy_scores WHERE output_score IS NOT NULL") == 32
    assert project.scalar("SELECT COUNT(*) FROM taxonomy_scores WHERE input_score IS NOT NULL") == 0
    # Interrupted in the corpus pass: the output scores are all kept, no input score yet.
    with pytest.raises(KeyboardInterrupt):
        score(project, progress=_interrupt_at("activations (contexts)", 48), **args)
    assert project.scalar("SELECT COUNT(*) FROM taxonomy_scores WHERE output_score IS NOT NULL") == 64
    assert project.scalar("SELECT COUNT(*) FROM examples") == 0
    # Interrupted while writing input scores: finished chunks stay.
    with pytest.raises(KeyboardInterrupt):
        score(project, progress=_interrupt_at("input scores", 16), **args)
    assert project.scalar("SELECT COUNT(*) FROM taxonomy_scores WHERE input_score IS NOT NULL") == 16
    report = score(project, **args)
    assert (report.output_skipped, report.output_scored) == (64, 0)
    assert (report.input_skipped, report.input_scored) == (16, 48)
    # Resumed in other feature chunks (the logit lens of 48 features, not 64, say): equal
    # within float tolerance (scorekit.assert_same_results says what is exact and why).
    assert assert_same_results(reference, snapshot(project)) <= 2
    again = score(project, **args)
    assert (again.output_scored, again.input_scored) == (0, 0)
    live = {r["feature_id"]: r for r in project.query("SELECT * FROM taxonomy_scores")}
    redo = score(project, redo=True, **args)
    assert (redo.output_scored, redo.input_scored) == (64, 64)
    assert assert_same_results(reference, snapshot(project)) <= 2
    # --redo supersedes: one live row per feature, and the row it replaced kept whole, once
    # (not the half-written row between the run's output and input passes)
    assert project.scalar("SELECT count(*) FROM taxonomy_scores") == 64
    kept = project.query("SELECT feature_id, row FROM superseded_results WHERE tbl = 'taxonomy_scores'")
    assert sorted(r["feature_id"] for r in kept) == sorted(live)
    assert all(json.loads(r["row"]) == live[r["feature_id"]] for r in kept)


def test_shards_fill_one_project_without_duplicates(tiny, demo_corpus, project, reference):
    model_dir, sae_dir = tiny
    args = dict(model=str(model_dir), sae=str(sae_dir), corpus=str(demo_corpus), **RUN)
    sizes = [score(project, shard=f"{i}/3", **args).features for i in (2, 0, 1)]
    assert sorted(sizes) == [21, 21, 22]
    assert project.scalar("SELECT COUNT(*) FROM features") == 64
    assert project.scalar("SELECT COUNT(DISTINCT idx) FROM features") == 64
    assert project.scalar("SELECT COUNT(*) FROM sources") == 1
    # Shards score other batches of features than one run: equal within float tolerance.
    assert assert_same_results(reference, snapshot(project)) <= 2
    assert score(project, shard="1/3", **args).output_scored == 0


def test_shard_ranges_are_disjoint_and_cover(monkeypatch):
    feats = list(range(1000))
    parts = [shard_of(feats, (i, 7)) for i in range(7)]
    assert sorted(sum(parts, [])) == feats
    assert parse_shard("3/8") == (3, 8)
    for var in ("RANK", "WORLD_SIZE", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ScoringError, match="neither torchrun"):
        parse_shard("auto")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "5")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "4")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "3")
    assert parse_shard("auto") == (2, 4)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert parse_shard("auto") == (1, 2)
