"""Comparing two computations of the same floats, and what is derived from them.

Two different computations of one float (another code path, block, batch or shard size,
thread count, CPU maker, AVX-512 vs AVX2 kernels) sum in another order and round
differently; they are compared with a tolerance sized to the computation.  Exact equality
stays for the same computation re-run, integers and stored-then-read values.

A value derived from floats by a comparison (a rank, a top-k list, an argmax, a count of
activations above zero, a category at a threshold) may legitimately differ only where the
floats it comes from lie within that tolerance of a tie; it is compared exactly everywhere
else, and near-ties are excluded by looking at the floats, never by loosening the whole check.

The tests' models are tiny float32 models (d_model 32, logits and activations of size <= ~10).
A float32 dot product over n terms of size s rounds by about eps32 * sqrt(n) * s; two summation
orders differ by a few times that, and a few layers add a few more:
3 * 1.2e-7 * sqrt(32) * 10 ~ 2e-5.  Seen on AMD EPYC (AVX-512 and AVX2) and Intel: <= 1e-6.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

#: Absolute tolerance for a logit, a logit-lens value or an SAE activation of the tiny models.
ATOL = 2e-5
#: Relative tolerance for a probability ``p = exp(logit - logsumexp)`` (and a score made of one
#: times an exact factor): an absolute error d in the logit is a relative error d in p.
P_RTOL = 2e-5


def close(a: float, b: float, rtol: float = 0.0, atol: float = ATOL) -> bool:
    return abs(a - b) <= atol + rtol * max(abs(a), abs(b))


def assert_close_lists(a: Sequence[float], b: Sequence[float], rtol: float = 0.0, atol: float = ATOL,
                       what: str = "") -> None:
    assert len(a) == len(b), f"{what}: {len(a)} values vs {len(b)}"
    bad = [(i, x, y) for i, (x, y) in enumerate(zip(a, b)) if not close(x, y, rtol, atol)]
    assert not bad, f"{what}: differ beyond rtol={rtol:g} atol={atol:g} at {bad[:3]}"


def assert_topk(ids: Sequence[int], ref: torch.Tensor, tol: float = ATOL, largest: bool = True,
                what: str = "") -> None:
    """``ids`` (distinct) are a correct top-k of the reference values ``ref`` [V] in order, up to
    ``tol``: the i-th id holds the i-th largest (smallest) reference value within ``tol``.  Where
    reference values lie within ``tol`` of each other, either order (or either id at the end of
    the list) is right; any other id or order is not."""
    ids = list(ids)
    assert len(set(ids)) == len(ids), f"{what}: repeated ids {ids}"
    want = ref.double().sort(descending=largest).values[: len(ids)]
    got = ref.double()[torch.tensor(ids, dtype=torch.long)]
    worst = float((got - want).abs().max()) if ids else 0.0
    assert worst <= tol, f"{what}: ids {ids} are not the reference top-{len(ids)} (off by {worst:.3g})"


def rank_range(ref: torch.Tensor, best: float, tol: float = ATOL) -> tuple[int, int]:
    """The ranks (0 = largest) a value ``best`` of ``ref`` can take when every value may move
    by ``tol``: from the values surely above it to the values possibly above it (itself not)."""
    ref = ref.double()
    return int((ref > best + tol).sum()), max(0, int((ref > best - tol).sum()) - 1)


def ranked_lists_agree(a: Sequence[tuple[int, float]], b: Sequence[tuple[int, float]], rtol: float = 0.0,
                       atol: float = ATOL, what: str = "") -> bool:
    """Two runs' ranked ``(id, value)`` lists (top tokens and their logits or probabilities):
    the values agree within tolerance rank by rank, and the ids agree except where a
    near-tie (two values within tolerance, or the last rank against an unlisted one) lets
    either order be right.  Returns whether a near-tie was used."""
    assert len(a) == len(b), f"{what}: {len(a)} entries vs {len(b)}"
    assert_close_lists([v for _, v in a], [v for _, v in b], rtol, atol, what)
    tied = False
    vals = {i: v for i, v in a}
    for r, ((ia, va), (ib, vb)) in enumerate(zip(a, b)):
        if ia == ib:
            continue
        if ib in vals:       # listed in a at another rank: at a value within tolerance of this one
            ok = close(vals[ib], va, rtol, atol)
        else:                # not listed in a: the boundary with the first unlisted value
            ok = r == len(a) - 1 or close(a[-1][1], va, rtol, atol)
        assert ok, f"{what}: rank {r} holds {ib} instead of {ia} with no tie to explain it ({a} vs {b})"
        tied = True
    return tied
