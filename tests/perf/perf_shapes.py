"""The model shapes the torch perf scripts measure on (perf_collect, perf_output_score,
perf_steering): random weights built from a config, no download.

* ``gpt2-small``: GPT-2 small's exact shape (12 layers, d_model 768, vocabulary 50,257), the
  model most public SAEs were trained on, with a 24,576-feature SAE (the width of the public
  ``gpt2-small-res-jb`` SAEs) at the middle layer, ``blocks.6.hook_resid_pre``;
* ``gemma2-2b``: Gemma-2-2B's shape (26 layers, d_model 2304, vocabulary 256,000) with a
  16,384-feature SAE at layer 12 (``resid_post``);
* ``llama``: an invented small shape, 8 layers, d_model 512 (vocabulary as asked: the planted
  tokenizer's, or 32k), with a 1,024-feature SAE at layer 4 (``resid_post``).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from saegold.engine.planted import build_tokenizer  # noqa: E402
from saegold.engine.scoring.models import resolve_hook, wrap_model  # noqa: E402
from saegold.engine.scoring.random_models import random_model, random_sae  # noqa: E402

SHAPES = ("gpt2-small", "gemma2-2b", "llama")


@dataclass
class Built:
    lm: Any          # the wrapped model (engine.scoring.models.wrap_model)
    sae: Any         # a sae-lens StandardSAE on the device
    site: Any        # where the SAE reads (engine.scoring.models.resolve_hook)
    tok: Any         # the planted word-level tokenizer, standing in for the model's
    label: str       # what was built, for the script's first line


def build(shape: str, device: torch.device, dtype: torch.dtype, *, d_sae: int | None = None,
          bias: float = 0.0, llama_vocab: int | None = 32000) -> Built:
    """The random model of ``shape`` with its random SAE (``d_sae`` features, default the
    shape's; encoder bias ``bias``), wrapped as ``saegold score`` wraps a model.
    ``llama_vocab`` None: the planted tokenizer's vocabulary."""
    tok = build_tokenizer()
    llama_vocab = llama_vocab or len(tok)
    with torch.device(device):
        if shape == "gpt2-small":
            d_sae = d_sae or 24576
            model = random_model("gpt2-small", vocab_size=0, seed=0)
            sae = random_sae(768, d_sae, "blocks.6.hook_resid_pre", seed=1, bias=bias)
            label = (f"random GPT-2 small shape (12 layers, d 768, vocab 50257), {d_sae:,}-feature SAE "
                     f"at layer 6 (resid_pre)")
        elif shape == "gemma2-2b":
            d_sae = d_sae or 16384
            model = random_model("gemma2-2b", vocab_size=0, seed=0)
            sae = random_sae(2304, d_sae, "blocks.12.hook_resid_post", seed=1, bias=bias)
            label = f"random Gemma-2-2B shape (26 layers, d 2304, vocab 256000), {d_sae:,}-feature SAE at layer 12"
        elif shape == "llama":
            d_sae = d_sae or 1024
            model = random_model("llama", vocab_size=llama_vocab, d_model=512, n_layers=8, seed=0, init=0.05)
            sae = random_sae(512, d_sae, "blocks.4.hook_resid_post", seed=1, bias=bias)
            label = f"random Llama (8 layers, d 512, vocab {llama_vocab}), {d_sae:,}-feature SAE at layer 4"
        else:
            raise ValueError(f"unknown shape {shape!r} (choose {', '.join(SHAPES)})")
    model = model.to(dtype)
    sae = sae.to(device)
    lm = wrap_model(model, tok, "random", device, dtype)
    return Built(lm, sae, resolve_hook(lm, sae), tok, label)


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA is asynchronous), so a timing covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
