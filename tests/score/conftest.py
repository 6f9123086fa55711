"""Fixtures of the scoring tests: the planted model and tiny random models, built in code."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from saegold.engine.scoring.random_models import random_sae, save_random_model


@pytest.fixture(scope="session")
def planted(tmp_path_factory):
    """(model_dir, sae_dir, expected categories) of the planted model."""
    from saegold.engine.planted import build_planted

    return build_planted(tmp_path_factory.mktemp("planted"))


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """A random tiny Llama and a random 64-feature SAE at blocks.1.hook_resid_post, saved."""
    d = tmp_path_factory.mktemp("tiny")
    model_dir = save_random_model(d, "llama", d_model=32, n_layers=3, seed=1)
    sae_dir = d / "sae"
    random_sae(32, 64, "blocks.1.hook_resid_post", seed=2).save_model(sae_dir)
    return model_dir, sae_dir


@pytest.fixture(scope="session")
def demo_corpus():
    from saegold.engine.planted import demo_corpus_path

    return demo_corpus_path()


@pytest.fixture
def table_counts():
    """A function: row counts of every table of a project (to show nothing was written)."""
    def counts(project) -> dict[str, int]:
        names = [r["name"] for r in project.query("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {n: project.scalar(f"SELECT COUNT(*) FROM [{n}]") for n in names}
    return counts


# scorekit (what a score job wrote, compared between runs) sits next to the tests.
sys.path.insert(0, str(Path(__file__).parent))
