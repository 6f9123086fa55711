"""Score-then-label routing: which label methods each category (tier) gets.

The table is the project setting ``label_routing`` (default: input -> eleuther_acts_top5 +
baez; output -> output_logits + baez; cross -> all four; obscure -> none)."""
from __future__ import annotations

from store import settings
from store.db import Project
from store.errors import SaegoldError
from store.features import CATEGORIES

from .methods import METHOD_NAMES


def routing_table(project: Project) -> dict[str, list[str]]:
    """The project's routing table, checked: every category present, known methods only."""
    table = settings.get(project, "label_routing")
    return check_routing(table)


def check_routing(table: object) -> dict[str, list[str]]:
    if not isinstance(table, dict):
        raise SaegoldError("setting label_routing must map each category to a list of methods")
    out: dict[str, list[str]] = {}
    for category in CATEGORIES:
        methods = table.get(category, [])
        if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
            raise SaegoldError(f"setting label_routing: {category!r} must be a list of method names")
        unknown = [m for m in methods if m not in METHOD_NAMES]
        if unknown:
            raise SaegoldError(f"setting label_routing: {category!r} names unknown method "
                               f"{unknown[0]!r} (known: {', '.join(METHOD_NAMES)})")
        out[category] = list(dict.fromkeys(methods))
    extra = sorted(set(table) - set(CATEGORIES))
    if extra:
        raise SaegoldError(f"setting label_routing: unknown category {extra[0]!r} "
                           f"(categories: {', '.join(CATEGORIES)})")
    return out


def parse_methods(text: str) -> list[str]:
    """``"eleuther_acts_top5,baez"`` -> checked list (order kept, duplicates dropped)."""
    names = [m.strip() for m in text.split(",") if m.strip()]
    if not names:
        raise SaegoldError("--methods needs at least one method name")
    unknown = [m for m in names if m not in METHOD_NAMES]
    if unknown:
        raise SaegoldError(f"unknown label method {unknown[0]!r} (known: {', '.join(METHOD_NAMES)})")
    return list(dict.fromkeys(names))
