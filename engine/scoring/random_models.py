"""Randomly initialised causal LMs and SAEs of a chosen shape, built from a config (no
download): the tests' reference models and the benchmarks' stand-ins (e.g. a model of
Gemma-2-2B's shape with a 16k SAE)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def random_sae(d_in: int, d_sae: int, hook: str, seed: int = 0, bias: float = -0.3) -> Any:
    """A sae-lens ``StandardSAE`` with random weights reading ``hook``."""
    from sae_lens import StandardSAE, StandardSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    g = torch.Generator().manual_seed(seed)
    sae = StandardSAE(StandardSAEConfig(d_in=d_in, d_sae=d_sae, metadata=SAEMetadata(hook_name=hook)))
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(d_in, d_sae, generator=g) / d_in ** 0.5)
        sae.b_enc.copy_(bias + 0.3 * torch.randn(d_sae, generator=g))
        sae.W_dec.copy_(torch.randn(d_sae, d_in, generator=g) / d_in ** 0.5)
        sae.b_dec.copy_(0.1 * torch.randn(d_in, generator=g))
    return sae.eval()


def random_model(arch: str = "llama", *, vocab_size: int, d_model: int = 32, n_layers: int = 3,
                 seed: int = 0, init: float = 0.2, **overrides: Any) -> Any:
    """A random causal LM: ``llama``, ``gpt2``, ``qwen2``, ``gemma2`` / ``gemma3`` (sliding window,
    soft-capping), or one of two real models' exact shapes, ``gpt2-small`` and ``gemma2-2b``
    (``vocab_size``, ``d_model`` and ``n_layers`` ignored)."""
    from transformers import (Gemma2Config, Gemma2ForCausalLM, Gemma3ForCausalLM, Gemma3TextConfig, GPT2Config,
                              GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM)

    torch.manual_seed(seed)
    small = dict(vocab_size=vocab_size, hidden_size=d_model, intermediate_size=2 * d_model,
                 num_hidden_layers=n_layers, num_attention_heads=4, num_key_value_heads=2,
                 bos_token_id=0, eos_token_id=1, pad_token_id=2, initializer_range=init)
    gemma = dict(head_dim=8, sliding_window=3, final_logit_softcapping=5.0)
    decoders = {"llama": (LlamaConfig, LlamaForCausalLM, {}), "qwen2": (Qwen2Config, Qwen2ForCausalLM, {}),
                "gemma2": (Gemma2Config, Gemma2ForCausalLM, gemma),
                "gemma3": (Gemma3TextConfig, Gemma3ForCausalLM, gemma)}
    if arch in decoders:
        config, model, extra = decoders[arch]
        return model(config(**{**small, **extra, **overrides})).eval()
    if arch == "gpt2":
        cfg = GPT2Config(vocab_size=vocab_size, n_embd=d_model, n_layer=n_layers, n_head=4, bos_token_id=0,
                         eos_token_id=1, initializer_range=init, **overrides)
        return GPT2LMHeadModel(cfg).eval()
    if arch == "gpt2-small":
        # openai-community/gpt2's config.json shape, written out (no download).
        cfg = GPT2Config(vocab_size=50257, n_embd=768, n_layer=12, n_head=12, n_positions=1024,
                         bos_token_id=50256, eos_token_id=50256, initializer_range=0.02, **overrides)
        return GPT2LMHeadModel(cfg).eval()
    if arch == "gemma2-2b":
        # google/gemma-2-2b's config.json, written out (no download).
        gemma_cfg = Gemma2Config(vocab_size=256000, hidden_size=2304, intermediate_size=9216, num_hidden_layers=26,
                                 num_attention_heads=8, num_key_value_heads=4, head_dim=256, sliding_window=4096,
                                 query_pre_attn_scalar=256, final_logit_softcapping=30.0, attn_logit_softcapping=50.0,
                                 bos_token_id=2, eos_token_id=1, pad_token_id=0, initializer_range=0.02, **overrides)
        return Gemma2ForCausalLM(gemma_cfg).eval()
    raise ValueError(f"unknown architecture {arch!r}")


def save_random_model(directory: str | Path, arch: str = "llama", *, d_model: int = 32, n_layers: int = 3,
                      seed: int = 0) -> Path:
    """Save a random ``arch`` model over the planted word-level tokenizer; returns its directory."""
    from saegold.engine.planted import build_tokenizer, vocabulary

    path = Path(directory) / f"{arch}-model"
    random_model(arch, vocab_size=len(vocabulary()), d_model=d_model, n_layers=n_layers,
                 seed=seed).save_pretrained(path)
    build_tokenizer().save_pretrained(path)
    return path
