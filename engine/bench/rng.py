"""Seeded random generators derived from a run seed and stable names.

Every random choice of a bench run (which examples, which shuffled label, batch order,
wrong highlights) draws from a generator keyed by the run seed *and* by what it is for
(e.g. the feature's ``MODEL/SOURCE`` name and index), so results do not depend on the order
work happens to run in, and the same seed reproduces a run exactly.
"""
from __future__ import annotations

import hashlib

import numpy as np


def rng_for(seed: int, *parts: object) -> np.random.Generator:
    """A generator determined by ``seed`` and the string forms of ``parts``."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    words = [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, *words]))
