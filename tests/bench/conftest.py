"""Fixtures of the bench area; the helpers live in benchkit.py."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # for benchkit (importlib import mode)

from benchkit import build_project  # noqa: E402


@pytest.fixture
def bench_project(project):
    """12 features (one per category in turn), methods m_true and m_vague."""
    build_project(project)
    return project
