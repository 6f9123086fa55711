"""Logit lens of SAE features: ``W_U · final_norm(W_dec[j])``, top and bottom k tokens."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:   # shapes for readers and type checkers only (jaxtyping costs ~1 s to import)
    from jaxtyping import Float, Int

from saegold.engine.progress import Progress, null_progress

from .models import LoadedModel


@dataclass
class Lens:
    """Per feature (rows, in the order asked): the k most promoted / suppressed token ids and
    their logit-lens values (logits, soft-capped where the model caps its logits)."""

    features: Int[torch.Tensor, " n"]
    top_ids: Int[torch.Tensor, "n k"]
    top_vals: Float[torch.Tensor, "n k"]
    bottom_ids: Int[torch.Tensor, "n k"]
    bottom_vals: Float[torch.Tensor, "n k"]


@torch.inference_mode()
def lens_logits(lm: LoadedModel, sae: Any, features: Int[torch.Tensor, " n"]) -> Float[torch.Tensor, "n V"]:
    """Logit-lens logits of the given features' decoder rows (float32)."""
    w = sae.W_dec[features.to(sae.W_dec.device)].to(lm.device, lm.dtype)
    return lm.logits_from_normed(lm.final_norm(w)).float()


@torch.inference_mode()
def logit_lens(lm: LoadedModel, sae: Any, features: torch.Tensor, k: int = 20, chunk: int = 512,
               progress: Progress = null_progress) -> Lens:
    """Top-k promoted and suppressed tokens of every feature, ``chunk`` features at a time on
    the model's device; results are kept on the CPU."""
    features = features.cpu()
    n = len(features)
    k = min(k, lm.vocab_size)
    parts: list[tuple[torch.Tensor, ...]] = []
    for start in range(0, n, chunk):
        logits = lens_logits(lm, sae, features[start:start + chunk])
        tv, ti = logits.topk(k, dim=-1)
        bv, bi = logits.topk(k, dim=-1, largest=False)
        parts.append((ti.cpu(), tv.cpu(), bi.cpu(), bv.cpu()))
        progress("logit lens", min(start + chunk, n), n)
    if not parts:
        empty_i, empty_v = torch.empty(0, k, dtype=torch.long), torch.empty(0, k)
        return Lens(features, empty_i, empty_v, empty_i, empty_v)
    ti, tv, bi, bv = (torch.cat(p) for p in zip(*parts))
    return Lens(features, ti, tv, bi, bv)
