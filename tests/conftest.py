"""Fixtures shared by every test area.  Area-specific fixtures live in tests/<area>/conftest.py."""
from __future__ import annotations

import sys
from pathlib import Path

import importlib.abc

import pytest

from saegold.store.db import open_project


class _OnlySaegold(importlib.abc.MetaPathFinder):
    """The code is imported as ``saegold.store``, ``saegold.engine`` and ``saegold.tui`` only (the
    wheel's one name; tests/cli/test_wheel.py).  From the repository root the folders would also
    import under their generic names, loading a second copy of each module (two ``Project``
    classes, two error hierarchies): in the test process that import is refused, loudly."""

    def find_spec(self, name, path=None, target=None):  # noqa: ANN001 - the finder protocol
        if name.split(".")[0] in ("store", "engine", "tui"):
            raise ImportError(f"import saegold.{name}, not {name} (see tests/conftest.py)")
        return None


sys.meta_path.insert(0, _OnlySaegold())

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
    from saegold.engine.llm.standin_server import StandinServer

    servers: list[StandinServer] = []

    def start(chat_handler=None, embed_handler=None, nla_handler=None) -> StandinServer:
        server = StandinServer(chat_handler, embed_handler, nla_handler).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def _hypothesis_without_timing() -> None:
    """Hypothesis's deadline and too-slow health check are timing assertions: on a loaded
    2-core machine (CI, or a developer's running other jobs) input generation alone can
    take over a second and fail a property that holds.  The properties keep their example
    counts; only the clocks are off, for every test that does not set its own."""
    from hypothesis import HealthCheck, settings

    settings.register_profile("saegold", deadline=None,
                              suppress_health_check=[HealthCheck.too_slow])
    settings.load_profile("saegold")


_hypothesis_without_timing()
