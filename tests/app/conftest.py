"""Fixtures for the annotation app: a small deterministic project with every kind of evidence."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

# Helper modules of this folder (apphelp, appdata) import by name under --import-mode=importlib.
sys.path.insert(0, str(Path(__file__).parent))

from appdata import fill  # noqa: E402


@pytest.fixture
def filled(project):
    fill(project)
    return project
