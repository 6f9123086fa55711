"""Fixtures shared by every test area.  Area-specific fixtures live in tests/<area>/conftest.py."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from store.db import open_project

# tests/tolerance.py (float comparisons shared by every area) is importable as ``tolerance``.
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def project(tmp_path):
    """A fresh, real project database file in a temporary directory."""
    p = open_project(tmp_path / "project.db", create=True)
    yield p
    p.close()


@pytest.fixture
def llm_server():
    """Factory for local OpenAI-compatible stand-in servers on 127.0.0.1 (real HTTP).

    ``server = llm_server(chat_handler=..., embed_handler=..., nla_handler=...)`` starts
    one (see :class:`engine.llm.standin_server.StandinServer`); all are stopped at teardown.
    Use ``server.base_url`` with ``engine.llm.client.LLMClient``, ``server.inject(Fault(...))``
    to script failures and ``server.requests`` / ``server.count`` to inspect what was sent.
    """
    from engine.llm.standin_server import StandinServer

    servers: list[StandinServer] = []

    def start(chat_handler=None, embed_handler=None, nla_handler=None) -> StandinServer:
        server = StandinServer(chat_handler, embed_handler, nla_handler).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
