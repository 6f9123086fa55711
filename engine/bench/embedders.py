"""Text embeddings for the embedding benchmark.

Two real sources: an OpenAI-compatible ``/embeddings`` endpoint, called through the shared
LLM client (cache, retries, concurrency, cost accounting), or a local sentence-transformers
model directory (the optional extra ``embeddings``; imported only when used).  A plain
function (such as the demo stand-in :func:`engine.bench.demo_judge.demo_embed`) can also serve.
"""
from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from saegold.store.errors import SaegoldError


class Embedder(Protocol):
    name: str

    async def embed(self, texts: Sequence[str]) -> np.ndarray: ...


class ApiEmbedder:
    """Embeddings from the endpoint behind an :class:`engine.llm.client.LLMClient`."""

    def __init__(self, client: Any, model: str, *, tag: str = "bench/embedding"):
        self.client, self.name, self.tag = client, model, tag

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        vectors = await self.client.embed(list(texts), model=self.name, tag=self.tag)
        return _matrix(vectors, len(texts), self.name)


class LocalEmbedder:
    """Embeddings from a sentence-transformers model directory, computed in a worker thread."""

    def __init__(self, path: str | os.PathLike):
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise SaegoldError(
                f"--embedding-model {path}: a local model directory needs sentence-transformers "
                "(install the optional extra: .venv/bin/pip install -e '.[embeddings]')") from None
        self.name = f"local:{os.path.basename(os.path.normpath(str(path)))}"
        try:
            self.model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - any loading failure is one line for the user
            raise SaegoldError(f"--embedding-model {path}: cannot load as a sentence-transformers "
                               f"model ({type(exc).__name__}: {exc})") from None
        self._lock = asyncio.Lock()

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        async with self._lock:  # one encode at a time: the model is not shared across threads
            vectors = await asyncio.to_thread(self.model.encode, list(texts), convert_to_numpy=True)
        return _matrix(vectors, len(texts), self.name)


class FunctionEmbedder:
    """Embeddings from a synchronous function ``texts -> vectors`` (tests, the demo)."""

    def __init__(self, fn: Callable[[list[str]], Sequence[Sequence[float]]], name: str):
        self.fn, self.name = fn, name

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        return _matrix(self.fn(list(texts)), len(texts), self.name)


def looks_like_path(value: str) -> bool:
    return (value.startswith(("./", "../", "/", "~", ".\\")) or value in (".", "..")
            or value.endswith(("/", os.sep)))


def make_embedder(model: str, client: Any | None) -> Embedder:
    """A local model when ``model`` is an existing directory, else the endpoint's model.

    A value written as a path (``./x``, ``../x``, ``/x``, ``~/x``, or ending in ``/``) that is
    not a directory is an error, never sent to the endpoint as a model name; a bare
    ``org/name`` (as vLLM and OpenRouter name models) is a model name."""
    if os.path.isdir(os.path.expanduser(model)):
        return LocalEmbedder(os.path.expanduser(model))
    if looks_like_path(model):
        what = "is a file, not a model directory" if os.path.exists(os.path.expanduser(model)) \
            else "no such directory"
        raise SaegoldError(f"--embedding-model {model}: {what} (a local sentence-transformers model "
                           f"is a directory; an endpoint model is a bare name)")
    if client is None:
        raise SaegoldError(f"--embedding-model {model}: no such directory, and no endpoint to ask")
    return ApiEmbedder(client, model)


def _matrix(vectors: Any, n: int, name: str) -> np.ndarray:
    m = np.asarray(vectors, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != n:
        raise SaegoldError(f"embedding model {name}: expected {n} vectors, got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise SaegoldError(f"embedding model {name}: returned non-finite values")
    return m
