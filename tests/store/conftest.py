"""Fixtures for the store tests (helpers live in store_samples.py, importable from here)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from saegold.store.db import open_project  # noqa: E402
from saegold.store.importers.neuronpedia import import_neuronpedia  # noqa: E402
from store_samples import NP_DIR  # noqa: E402


@pytest.fixture(scope="module")
def np_project(tmp_path_factory):
    """One project with every shared sample imported (read-only for the tests using it)."""
    p = open_project(tmp_path_factory.mktemp("np") / "np.db", create=True)
    report = import_neuronpedia(p, [NP_DIR])
    p.report = report
    yield p
    p.close()
