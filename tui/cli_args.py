"""Command-line options shared by several commands: the LLM endpoint (label, bench) and
checked integer types."""
from __future__ import annotations

import argparse
import importlib

from saegold.engine.llm import defaults as llm_defaults
from saegold.store.errors import SaegoldError


class Later:
    """A default that lives in a heavier module (``Later("saegold.engine.stats.resample",
    "DEFAULT_BOOT")``), read only when needed: when that command's ``--help`` shows it
    (``%(default)s``) or when the command runs (:func:`tui.cli.main` resolves it), so
    ``saegold --help`` imports no statistics or model stack."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def value(self):
        return getattr(importlib.import_module(self.module), self.name)

    def __str__(self) -> str:
        return str(self.value())


def resolve_later(args: argparse.Namespace) -> None:
    """Replace every :class:`Later` default left in ``args`` by its value."""
    for key, value in vars(args).items():
        if isinstance(value, Later):
            setattr(args, key, value.value())


def at_least(lowest: int):
    """An argparse ``type``: an integer no smaller than ``lowest`` (refused, not clamped)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < lowest:
            raise argparse.ArgumentTypeError(f"must be at least {lowest} (got {value})")
        return value
    parse.__name__ = "int"
    return parse


def add_endpoint_args(group: argparse._ActionsContainer, *, role: str = "") -> None:
    """``--base-url --model --api-key-env --concurrency --timeout --max-retries --max-tokens
    --temperature``.

    Defaults for the first three come from the project settings at run time.
    """
    who = f"{role} " if role else ""
    group.add_argument("--base-url", help=f"OpenAI-compatible base URL of the {who}endpoint "
                                          "(default: setting llm_base_url, else OpenAI)")
    group.add_argument("--model", help=f"{who}model name (default: setting llm_model)")
    group.add_argument("--api-key-env", help="NAME of the environment variable holding the key; the key "
                                             "itself is never stored (default: setting llm_api_key_env)")
    group.add_argument("--concurrency", type=int, default=llm_defaults.CONCURRENCY,
                       help="requests in flight at most (default %(default)s)")
    group.add_argument("--timeout", type=float, default=llm_defaults.TIMEOUT_S,
                       help=f"seconds per request (default {llm_defaults.TIMEOUT_S:g})")
    group.add_argument("--max-retries", type=at_least(0), default=llm_defaults.MAX_RETRIES,
                       help="retries on 429/5xx/timeouts (default %(default)s)")
    group.add_argument("--max-tokens", type=at_least(0), default=llm_defaults.MAX_TOKENS,
                       help=f"longest {who}answer in tokens, sent as max_tokens; 0: not sent (default %(default)s). "
                            "An answer over 32,000 characters is refused whatever the endpoint sends")
    group.add_argument("--temperature", default="0",
                       help=f"{who}sampling temperature, or 'none' to not send one (default 0)")


def parse_temperature(text: str) -> float | None:
    if text.strip().lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise SaegoldError(f"--temperature: {text!r} is not a number or 'none'") from None
