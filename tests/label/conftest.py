"""Fixtures of the labels area: an LLM client bound to a stand-in server."""
from __future__ import annotations

import asyncio

import pytest


def run(coro):
    """Run a coroutine to completion (tests stay synchronous, no asyncio plugin mode needed)."""
    return asyncio.run(coro)


@pytest.fixture
def arun():
    return run


# The label_builders module sits next to the tests (importlib import mode: make it importable).
import sys as _sys  # noqa: E402
from pathlib import Path as _Path  # noqa: E402

_sys.path.insert(0, str(_Path(__file__).parent))
