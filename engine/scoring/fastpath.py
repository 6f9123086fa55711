"""The plan a batched path runs on one model: which shortcuts it takes, and why.

The output score (:class:`engine.scoring.output.OutputScorer`) and steering
(:class:`engine.scoring.steering.Steerer`) each have a batched fast path and a per-feature
reference.  The fast path's shortcuts are exact only on some models, so each is decided by a
check on the model, not assumed: the plan holds the decisions and what the check against the
reference found.  A plan is immutable; a scorer runs the plan it holds, ``check`` returns a
new one (nothing is switched as a side effect), ``adopt`` makes the scorer run it, and the
score report says which plan ran.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FastPath:
    skip_layers: bool = True
    """Start the forward pass at the SAE's site (from the cached clean prefix) instead of
    running the layers below it: exact for decoders whose layers read only their own inputs
    and KV cache, checked against running them."""
    own_head: bool = False
    """Output score only: stop at the final norm and unembed blocks of rows itself (reducing
    each block while it is in cache); true where that reproduces the model's own head."""
    affine_decode: bool = False
    """Output score only: ``decode(f + d e_j) + err = h + d W_dec[j]`` holds for this SAE, so
    the steered residual needs no ``[b, d_sae] x [d_sae, d]`` product."""
    checked: float | None = None
    """Largest relative difference from the per-feature reference found by the check; None
    while unchecked."""

    @property
    def name(self) -> str:
        """How reports name it: ``skip-layers`` or ``full-layers``."""
        return "skip-layers" if self.skip_layers else "full-layers"
