"""Score-then-label routing: which label methods each category (tier) gets.

The table is the project setting ``label_routing`` (default: input -> eleuther_acts_top5 +
baez; output -> output_logits + baez; cross -> all four; obscure -> none)."""
from __future__ import annotations

from saegold.store import settings
from saegold.store.db import Project
from saegold.store.errors import SaegoldError

from .methods import METHOD_NAMES


def routing_table(project: Project) -> dict[str, list[str]]:
    """The project's routing table (checked by :mod:`store.settings`, its one owner)."""
    return {category: list(methods) for category, methods in settings.load(project).label_routing.items()}


def parse_methods(text: str) -> list[str]:
    """``"eleuther_acts_top5,baez"`` -> checked list (order kept, duplicates dropped)."""
    names = [m.strip() for m in text.split(",") if m.strip()]
    if not names:
        raise SaegoldError("--methods needs at least one method name")
    unknown = [m for m in names if m not in METHOD_NAMES]
    if unknown:
        raise SaegoldError(f"unknown label method {unknown[0]!r} (known: {', '.join(METHOD_NAMES)})")
    return list(dict.fromkeys(names))
