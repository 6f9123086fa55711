"""Fixtures shared by every test area.  Area-specific fixtures live in tests/<area>/conftest.py."""
from __future__ import annotations

import pytest

from store.db import open_project


@pytest.fixture
def project(tmp_path):
    """A fresh, real project database file in a temporary directory."""
    p = open_project(tmp_path / "project.db", create=True)
    yield p
    p.close()
