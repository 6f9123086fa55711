"""Loading a causal LM (transformers) and an SAE (sae-lens), and hooking the SAE's site.

The model is any ``AutoModelForCausalLM`` (by Hugging Face name or local directory); the
SAE comes from sae-lens, as ``RELEASE:SAE_ID`` or a directory written by ``SAE.save_model``.
The SAE's hook name (TransformerLens style, ``blocks.L.hook_resid_post`` /
``blocks.L.hook_resid_pre``, or the name of one of the model's decoder-layer modules) is
mapped onto the Hugging Face decoder layers with forward hooks and pre-hooks.
"""
from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:   # transformers is imported where a model is loaded (a light `--help`)
    from jaxtyping import Float, Int   # shapes for readers and type checkers only (~1 s to import)
    from transformers import PreTrainedModel

from .errors import ModelLoadError, SAELoadError

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_LAYER_LIST_NAMES = ("layers", "h", "layer", "blocks")
_FINAL_NORM_NAMES = ("norm", "ln_f", "final_layernorm", "final_layer_norm", "final_norm")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def resolve_device(device: str | None) -> torch.device:
    """``None``/``auto`` picks CUDA when present, else the CPU."""
    if device in (None, "", "auto"):
        if not torch.cuda.is_available():
            return torch.device("cpu")
        local = os.environ.get("LOCAL_RANK")          # under torchrun: one GPU per process
        return torch.device(f"cuda:{int(local) % torch.cuda.device_count()}" if local else "cuda")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ModelLoadError(f"--device {device!r}: {_first_line(exc)}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"--device {device!r}: CUDA is not available on this machine")
    return dev


def resolve_dtype(dtype: str | None, device: torch.device) -> torch.dtype:
    """``None``/``auto``: bfloat16 on CUDA, float32 elsewhere."""
    if dtype in (None, "", "auto"):
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in DTYPES:
        raise ModelLoadError(f"--dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


def _looks_like_path(spec: str) -> bool:
    return spec.startswith((".", "/", "~")) or Path(spec).suffix in (".json", ".safetensors", ".bin", ".pt")


@dataclass
class LoadedModel:
    """A causal LM with the pieces the scorer needs located generically."""

    name: str
    model: PreTrainedModel
    tokenizer: Any
    layers: nn.ModuleList
    layer_names: list[str]
    final_norm: nn.Module
    unembed: nn.Module
    device: torch.device
    dtype: torch.dtype
    width: int
    vocab_size: int
    softcap: float | None
    _token_strings: dict[int, str] = field(default_factory=dict, repr=False)

    @property
    def bos_id(self) -> int | None:
        tok = self.tokenizer
        return tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id

    def token_str(self, token_id: int) -> str:
        """The token's text as a reader sees it (leading spaces kept)."""
        s = self._token_strings.get(token_id)
        if s is None:
            s = self.tokenizer.decode([int(token_id)], clean_up_tokenization_spaces=False)
            raw = self.tokenizer.convert_ids_to_tokens(int(token_id))
            if isinstance(raw, str) and raw.startswith("\u2581") and not s.startswith(" "):
                s = " " + s     # SentencePiece word start: decoding one token drops its space
            self._token_strings[token_id] = s
        return s

    def token_strs(self, ids: list[int]) -> list[str]:
        return [self.token_str(int(i)) for i in ids]

    def forward(self, input_ids: torch.Tensor, cache: Any = None, use_cache: bool = False) -> Any:
        """The model's forward pass with an optional KV cache (``cache`` in recent
        transformers, ``past_key_values`` before)."""
        kwargs: dict[str, Any] = {"input_ids": input_ids, "use_cache": use_cache}
        if cache is not None:
            kwargs[self._cache_kw] = cache
        return self.model(**kwargs)

    @property
    def _cache_kw(self) -> str:
        import inspect

        params = inspect.signature(self.model.forward).parameters
        return "cache" if "cache" in params else "past_key_values"

    def logits_from_normed(self, normed: Float[torch.Tensor, "b d"], out: Float[torch.Tensor, "b V"] | None = None
                           ) -> Float[torch.Tensor, "b V"]:
        """Unembed an already normalised residual; final logit soft-capping honoured.

        ``out`` (float32, at least ``b`` rows) receives the float32 logits when the head is a
        plain linear layer of the same dtype, which spares an allocation per call."""
        lin = self.unembed
        if out is None or not isinstance(lin, nn.Linear) or normed.dim() != 2 or normed.dtype != out.dtype \
                or lin.weight.dtype != out.dtype:
            logits = self.unembed(normed)
            if self.softcap:
                logits = torch.tanh(logits / self.softcap) * self.softcap
            return logits
        logits = torch.mm(normed, lin.weight.T, out=out[: len(normed)])   # mm: no copy into out
        if lin.bias is not None:
            logits.add_(lin.bias)
        if self.softcap:
            logits.div_(self.softcap).tanh_().mul_(self.softcap)
        return logits

    def encode_prompt(self, text: str) -> torch.Tensor:
        """Token ids of ``text`` with BOS prepended (once), as a 1-D tensor on the device."""
        ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        if text.strip() and not ids:
            raise ModelLoadError(f"the prompt {text!r} tokenizes to no tokens with {self.name}'s tokenizer "
                                 f"({type(self.tokenizer).__name__}); is it the model's own tokenizer?")
        if self.bos_id is not None and (not ids or ids[0] != self.bos_id):
            ids = [self.bos_id, *ids]
        if not ids:
            raise ModelLoadError(f"the prompt {text!r} tokenizes to nothing")
        return torch.tensor(ids, dtype=torch.long, device=self.device)


def load_model(spec: str, device: str | torch.device | None = None, dtype: str | None = None) -> LoadedModel:
    """Load a causal LM and tokenizer by Hugging Face name or local directory."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()      # the front door draws its own progress bars

    dev = device if isinstance(device, torch.device) else resolve_device(device)
    tdtype = resolve_dtype(dtype, dev)
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(f"{spec}: a model is a Hugging Face name or a directory, not a file")
        if not (path / "config.json").exists():
            raise ModelLoadError(f"{spec}: no config.json in this directory, not a saved transformers model")
    elif _looks_like_path(spec):
        raise ModelLoadError(f"{spec}: no such model directory")
    try:
        with _quiet_hub():
            tokenizer = AutoTokenizer.from_pretrained(str(path) if path.exists() else spec)
            model = AutoModelForCausalLM.from_pretrained(str(path) if path.exists() else spec, dtype=tdtype)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelLoadError(f"cannot load model {spec!r}: {_first_line(exc)}") from exc
    # transformers decorates PreTrainedModel.to with functools.wraps(nn.Module.to), whose typeshed
    # type (_Wrapped) then asks for the unbound self as the first argument: a stub limitation.
    model.to(dev)  # type: ignore[arg-type]
    return wrap_model(model, tokenizer, spec, dev, tdtype)


def wrap_model(model: PreTrainedModel, tokenizer: Any, name: str, device: torch.device, dtype: torch.dtype) -> LoadedModel:
    """Locate the layers, final norm and unembedding of an already built causal LM."""
    model.eval()
    model.requires_grad_(False)
    spec = name
    text_cfg = model.config.get_text_config()
    n_layers = getattr(text_cfg, "num_hidden_layers", None) or getattr(text_cfg, "n_layer", None)
    layers_name, layers = _find_layers(model, n_layers)
    final_norm = _find_final_norm(model, layers_name)
    unembed = model.get_output_embeddings()
    if unembed is None:
        raise ModelLoadError(f"model {spec!r} has no output embedding (not a causal LM head)")
    width = getattr(text_cfg, "hidden_size", None) or getattr(text_cfg, "n_embd", None)
    if width is None:
        raise ModelLoadError(f"model {spec!r}: its config gives no hidden size (hidden_size or n_embd)")
    softcap = getattr(text_cfg, "final_logit_softcapping", None)
    return LoadedModel(
        name=spec, model=model, tokenizer=tokenizer, layers=layers,
        layer_names=[f"{layers_name}.{i}" for i in range(len(layers))], final_norm=final_norm,
        unembed=unembed, device=device, dtype=dtype, width=int(width),
        vocab_size=int(unembed.weight.shape[0]), softcap=float(softcap) if softcap else None,
    )


@contextlib.contextmanager
def _quiet_hub() -> Iterator[None]:
    """Keep the hub client's retry warnings off the terminal: a failure becomes one line."""
    from huggingface_hub.utils import logging as hub_logging

    old = hub_logging.get_verbosity()
    hub_logging.set_verbosity_error()
    try:
        yield
    finally:
        hub_logging.set_verbosity(old)


def _find_layers(model: nn.Module, n_layers: int | None) -> tuple[str, nn.ModuleList]:
    """The decoder-layer list: the shallowest ModuleList named like ``layers``/``h``."""
    found = [
        (name, mod) for name, mod in model.named_modules()
        if isinstance(mod, nn.ModuleList) and name.rsplit(".", 1)[-1] in _LAYER_LIST_NAMES
        and (n_layers is None or len(mod) == n_layers)
    ]
    if not found:
        raise ModelLoadError(f"cannot find the decoder layers of {type(model).__name__}")
    return min(found, key=lambda nm: nm[0].count("."))


def _find_final_norm(model: nn.Module, layers_name: str) -> nn.Module:
    parent_name = layers_name.rsplit(".", 1)[0] if "." in layers_name else ""
    parent = model.get_submodule(parent_name) if parent_name else model
    for attr in _FINAL_NORM_NAMES:
        mod = getattr(parent, attr, None)
        if isinstance(mod, nn.Module):
            return mod
    raise ModelLoadError(f"cannot find the final norm of {type(model).__name__}")


# -- SAE -------------------------------------------------------------------------------

def load_sae(spec: str, device: torch.device, dtype: str = "float32") -> tuple[Any, str]:
    """Load an SAE by ``RELEASE:SAE_ID`` or a local ``SAE.save_model`` directory.

    Returns ``(sae, sae_id)`` where ``sae_id`` names the SAE in the store.
    """
    from sae_lens import SAE

    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir():
            raise SAELoadError(f"{spec}: an SAE is RELEASE:SAE_ID or a directory written by SAE.save_model")
        if not (path / "cfg.json").exists():
            raise SAELoadError(f"{spec}: no cfg.json in this directory, not an SAE saved by sae-lens")
        try:
            sae = SAE.load_from_disk(str(path), device=str(device), dtype=dtype)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise SAELoadError(f"cannot load SAE from {spec}: {_first_line(exc)}") from exc
        return sae.eval(), path.resolve().name
    if _looks_like_path(spec) or ":" not in spec:
        raise SAELoadError(f"{spec}: no such SAE directory (or give RELEASE:SAE_ID)")
    release, sae_id = spec.split(":", 1)
    try:
        with _quiet_hub():
            sae = SAE.from_pretrained(release, sae_id, device=str(device), dtype=dtype)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise SAELoadError(f"cannot load SAE {spec!r}: {_first_line(exc)}") from exc
    return sae.eval(), sae_id


# -- hook sites ------------------------------------------------------------------------

@dataclass(frozen=True)
class HookSite:
    """Where the SAE reads the residual stream.

    ``layer`` is the decoder layer, ``post`` whether the site is that layer's output (else its
    input).  ``start`` is the first layer that consumes the site (``n_layers`` = final norm).
    """

    name: str
    layer: int
    post: bool

    @property
    def start(self) -> int:
        return self.layer + 1 if self.post else self.layer


_TL_HOOK = re.compile(r"^blocks\.(\d+)\.hook_resid_(pre|post)$")


def resolve_hook(lm: LoadedModel, sae: Any) -> HookSite:
    """Map the SAE's hook name onto the model and check the SAE's width; one-line errors."""
    meta = sae.cfg.metadata
    hook = meta.get("hook_name") if hasattr(meta, "get") else getattr(meta, "hook_name", None)
    if not hook:
        raise SAELoadError("the SAE's metadata names no hook_name; cannot tell where it reads the model")
    m = _TL_HOOK.match(hook)
    if m:
        site = HookSite(hook, int(m.group(1)), m.group(2) == "post")
    elif hook in lm.layer_names:
        site = HookSite(hook, lm.layer_names.index(hook), True)
    else:
        raise SAELoadError(
            f"unknown hook {hook!r}: expected blocks.L.hook_resid_post / blocks.L.hook_resid_pre "
            f"or a decoder layer module such as {lm.layer_names[0]!r}"
        )
    if not 0 <= site.layer < len(lm.layers):
        raise SAELoadError(f"hook {hook!r}: the model has only {len(lm.layers)} layers")
    if int(sae.cfg.d_in) != lm.width:
        raise SAELoadError(
            f"SAE d_in {sae.cfg.d_in} does not match the model's residual width {lm.width} ({lm.name})"
        )
    return site


def _replace_first(args: tuple, kwargs: dict, value: torch.Tensor) -> tuple[tuple, dict]:
    if args:
        return (value, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": value}


def _first(args: tuple, kwargs: dict) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


@contextlib.contextmanager
def edit_site(lm: LoadedModel, site: HookSite, fn: Callable[[torch.Tensor], torch.Tensor | None]) -> Iterator[None]:
    """Run ``fn(h)`` on the residual at the site during forwards; a returned tensor replaces it."""
    layer = lm.layers[site.layer]
    if site.post:
        def hook(module, args, output):
            h = output[0] if isinstance(output, tuple) else output
            new = fn(h)
            if new is None:
                return None
            return (new, *output[1:]) if isinstance(output, tuple) else new
        handle = layer.register_forward_hook(hook)
    else:
        def pre_hook(module, args, kwargs):
            new = fn(_first(args, kwargs))
            return None if new is None else _replace_first(args, kwargs, new)
        handle = layer.register_forward_pre_hook(pre_hook, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


class _StopForward(Exception):
    pass


def stop_at(lm: LoadedModel, module: nn.Module, run: Callable[[], Any]) -> torch.Tensor:
    """``module``'s output during ``run()``, which is cut short there (nothing after it runs)."""
    captured: list[torch.Tensor] = []

    def grab(mod, args, output):
        captured.append(output[0] if isinstance(output, tuple) else output)
        raise _StopForward

    handle = module.register_forward_hook(grab)
    try:
        run()
    except _StopForward:
        pass
    finally:
        handle.remove()
    if not captured:
        raise ModelLoadError(f"{type(module).__name__} was never reached in a forward pass of {lm.name}")
    return captured[0]


def run_to_site(lm: LoadedModel, site: HookSite, input_ids: Int[torch.Tensor, "B T"]) -> Float[torch.Tensor, "B T d"]:
    """Residual at the site for ``input_ids``; layers after the site are not run."""
    captured: list[torch.Tensor] = []

    def grab(h: torch.Tensor) -> None:
        captured.append(h)
        raise _StopForward

    with edit_site(lm, site, grab), torch.inference_mode():
        try:
            lm.forward(input_ids)
        except _StopForward:
            pass
    if not captured:
        raise ModelLoadError(f"the hook {site.name} was never reached in a forward pass")
    return captured[0]


@contextlib.contextmanager
def start_at_site(lm: LoadedModel, site: HookSite, fn: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[None]:
    """Skip every layer before the site and feed ``fn(h)`` to the first layer after it.

    Layers below ``site.start`` become the identity, so a forward pass costs only the
    layers from the site on; ``fn`` receives whatever arrives (ignore it) and returns the
    residual to continue from.  Their KV cache is not extended: use for one step only.
    """
    skipped = list(lm.layers[: site.start])
    target = lm.layers[site.start] if site.start < len(lm.layers) else lm.final_norm

    def identity(*args: Any, **kwargs: Any) -> torch.Tensor:
        return _first(args, kwargs)

    def pre_hook(module, args, kwargs):
        return _replace_first(args, kwargs, fn(_first(args, kwargs)))

    for layer in skipped:
        layer.forward = identity
    handle = target.register_forward_pre_hook(pre_hook, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()
        for layer in skipped:
            del layer.forward
