"""Fixtures for the robustness tests (concurrency, crashes, merge, backup, hostile input)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # robust_harness, annotator_sim

from robust_harness import seed_project  # noqa: E402


@pytest.fixture
def seeded(tmp_path) -> Path:
    """Path of a project with 40 features and two candidate labels each."""
    return seed_project(tmp_path / "seeded.db")


@pytest.fixture
def cli(capsys):
    """Run ``saegold ARGS`` in-process; return (exit code, stdout, stderr)."""
    from saegold.tui.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        rc = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return rc, out, err

    return run
