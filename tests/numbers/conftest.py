"""Fixtures of the independent numeric checks (tests/numbers)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def planted(tmp_path_factory):
    """(model_dir, sae_dir, expected categories) of the planted model."""
    from saegold.engine.planted import build_planted

    return build_planted(tmp_path_factory.mktemp("planted"))


@pytest.fixture(scope="session")
def demo_corpus():
    from saegold.engine.planted import demo_corpus_path

    return demo_corpus_path()
