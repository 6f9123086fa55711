"""What produced a source's scores: a fingerprint of the model, the SAE and the settings.

A source is identified by what it is, not by its folder names.  The fingerprint is a JSON
object of parts, each compared on its own (:func:`store.features.fingerprint_differences`);
a run that leaves a part out (no ``--corpus``: no ``input`` part) neither checks nor records it.

- ``model``: ``name`` (a Hugging Face id; None for a local directory) and ``revision`` (the Hub
  commit the weights were loaded from, which names them exactly), or for a local directory
  ``files``, a digest of its files (:func:`directory_digest`); ``path`` is provenance only, so
  a moved or copied model directory is the same model.
- ``sae``: ``architecture``, ``hook``, ``d_in``, ``d_sae``, ``normalize_activations`` and
  ``weights``, a digest of its tensors (:func:`tensor_digest`); ``name`` and ``path`` are
  provenance only.
- ``dtype``: the model's dtype (bfloat16 and float32 scores differ).
- ``output``: the settings the output score and its evidence depend on: ``neutral_prompt``,
  ``amplification``, ``logit_lens_k``, ``continuation_tokens``.
- ``input``: those the corpus pass depends on: the corpus (``files``: digest of its files, or
  ``dataset``: ``NAME:SPLIT``; ``corpus``, the argument, is provenance), ``text_field``,
  ``doc_sep``, ``ctx_len``, ``top_k``, ``n_negatives``, ``n_quantile``, ``verified_negatives``, ``seed``, ``max_contexts``,
  ``max_tokens`` (a key a stored fingerprint lacks, from an older saegold, is unknown, not different).
- ``steering``: the settings steered generation ran with (:meth:`SteeringConfig.settings`:
  targets, prompts, tokens, temperature, seed, tolerances).  Recorded, not compared: every
  stored steering result carries its own settings and a run with other ones recomputes it
  (``engine/scoring/steering_job.py``), so a change here never leaves a result skipped.

Not in it, because they change no result beyond float rounding: device, batch sizes,
feature batch, shard, thread count.  The category thresholds are not either: categories are
re-derived from them (``saegold settings``).

Hashing must stay cheap for a 50 GB model: whole files are not read (see the digests' rules).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

FULL_FILE = 4 << 20        # files up to 4 MiB are hashed whole
HEAD = 1 << 20             # of larger ones: the first MiB (a safetensors header lies there) ...
BLOCK = 64 << 10           # ... BLOCKS evenly spaced 64 KiB blocks, and the last 64 KiB
BLOCKS = 16
SAMPLES = 4096             # elements sampled from each SAE tensor
SKIPPED_SUFFIXES = (".md", ".lock")


def directory_digest(path: Path) -> str:
    """Digest of a model directory's (or corpus's) files, cheap whatever their size.

    Rule: every regular file under ``path`` (recursively; names starting with ``.`` and
    ``*.md`` / ``*.lock`` skipped), in sorted order of relative path, contributes its relative
    path, its size and its content: the whole file up to 4 MiB (configs, tokenizers), else the
    first MiB (for safetensors: the header, naming every tensor with its dtype, shape and
    offsets), 16 evenly spaced 64 KiB blocks and the last 64 KiB.  A 50 GB checkpoint costs
    about 2 MiB of reads per file.  Another checkpoint of the same shapes (fine-tuned, another
    step) differs in every tensor, so in the sampled blocks.  Modification times are not used:
    a copied directory is the same model."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(
        p for p in path.rglob("*") if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(path).parts)
        and p.suffix not in SKIPPED_SUFFIXES)
    h = hashlib.sha256()
    for f in files:
        rel = f.name if f == path else f.relative_to(path).as_posix()
        size = f.stat().st_size
        h.update(f"{rel}\0{size}\0".encode())
        with open(f, "rb") as fh:
            if size <= FULL_FILE:
                h.update(fh.read())
                continue
            h.update(fh.read(HEAD))
            for i in range(BLOCKS):
                fh.seek(HEAD + (size - HEAD - BLOCK) * i // BLOCKS)
                h.update(fh.read(BLOCK))
            fh.seek(size - BLOCK)
            h.update(fh.read(BLOCK))
    return h.hexdigest()


@torch.inference_mode()
def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """Digest of named tensors (an SAE's state dict), cheap whatever their size.

    Rule: per tensor, in sorted order of name: its name, dtype and shape, and up to 4096
    elements at evenly spaced flat positions (every element of a smaller tensor), as float32
    bytes.  Biases of an SAE are whole (d_sae <= a few million is sampled too); another SAE
    (other training run, width or hook) differs in the sampled elements."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach()
        h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        flat = t.reshape(-1)
        if flat.numel() > SAMPLES:
            idx = torch.linspace(0, flat.numel() - 1, SAMPLES, device=flat.device).round().long()
            flat = flat[idx]
        h.update(flat.float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def model_part(spec: str, model: Any) -> dict[str, Any]:
    """The ``model`` part for a model loaded from ``spec`` (Hub id or local directory)."""
    path = Path(spec).expanduser()
    if path.exists():
        return {"name": None, "revision": None, "files": directory_digest(path), "path": str(path.resolve())}
    revision = getattr(getattr(model, "config", None), "_commit_hash", None)
    return {"name": spec, "revision": revision, "files": None, "path": None}


def sae_part(spec: str, sae: Any, hook: str) -> dict[str, Any]:
    """The ``sae`` part for an SAE loaded from ``spec`` (``RELEASE:SAE_ID`` or a directory)."""
    cfg = sae.cfg
    arch = cfg.architecture() if callable(getattr(cfg, "architecture", None)) else getattr(cfg, "architecture", None)
    path = Path(spec).expanduser()
    local = path.exists()
    return {"name": None if local else spec, "path": str(path.resolve()) if local else None,
            "architecture": arch, "hook": hook, "d_in": int(cfg.d_in), "d_sae": int(cfg.d_sae),
            "normalize_activations": str(getattr(cfg, "normalize_activations", None)),
            "weights": tensor_digest(dict(sae.state_dict()))}


def corpus_part(corpus_spec: Any, *, ctx_len: int, top_k: int, n_negatives: int, seed: int,
                max_contexts: int | None, max_tokens: int | None, n_quantile: int = 0,
                verified_negatives: bool = False) -> dict[str, Any]:
    """The ``input`` part: the corpus (by content, for local files) and the pass's settings."""
    files = None
    if corpus_spec.files:
        h = hashlib.sha256()
        for f in corpus_spec.files:
            h.update(directory_digest(f).encode())
        files = h.hexdigest()
    return {"corpus": corpus_spec.description, "files": files,
            "dataset": f"{corpus_spec.dataset}:{corpus_spec.split}" if corpus_spec.dataset else None,
            "text_field": corpus_spec.text_field, "doc_sep": corpus_spec.doc_sep, "ctx_len": int(ctx_len), "top_k": int(top_k),
            "n_negatives": int(n_negatives), "n_quantile": int(n_quantile),
            "verified_negatives": bool(verified_negatives), "seed": int(seed),
            "max_contexts": max_contexts, "max_tokens": max_tokens}


def steering_part(config: Any) -> dict[str, Any]:
    """The ``steering`` part: what a steering run's results are made with (incl. its targets)."""
    return {**config.settings(), "targets": sorted(float(t) for t in config.targets)}


def run_fingerprint(*, model_spec: str, model: Any, dtype: torch.dtype, sae_spec: str, sae: Any, hook: str,
                    neutral_prompt: str, amplification: float, logit_lens_k: int, continuation_tokens: int,
                    input_part: dict[str, Any] | None,
                    steering_part: dict[str, Any] | None = None) -> dict[str, Any]:
    """The fingerprint of one score run (``input_part`` None: the run has no corpus;
    ``steering_part`` None: it does not steer)."""
    fp: dict[str, Any] = {
        "model": model_part(model_spec, model),
        "sae": sae_part(sae_spec, sae, hook),
        "dtype": str(dtype).removeprefix("torch."),
        "output": {"neutral_prompt": neutral_prompt, "amplification": float(amplification),
                   "logit_lens_k": int(logit_lens_k), "continuation_tokens": int(continuation_tokens)},
    }
    if input_part is not None:
        fp["input"] = input_part
    if steering_part is not None:
        fp["steering"] = steering_part
    return fp

