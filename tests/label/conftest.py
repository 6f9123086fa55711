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
