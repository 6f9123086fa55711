"""What LLM work spent: requests sent, cache hits, retries and tokens, per tag.

A *tag* names what a call was for (``"input/baez"``, ``"detection"``...); callers choose
it and read totals per tag or grouped by a prefix.  Dry runs count what they *would* send
in the ``est_*`` fields and leave the spent ones at zero.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields


def estimate_tokens(text: str) -> int:
    """A cheap token estimate (about 4 characters per token), used only for dry runs
    and when an endpoint reports no usage."""
    return max(1, math.ceil(len(text) / 4)) if text else 0


@dataclass
class TagUsage:
    """Counters for one tag (or a total)."""

    calls: int = 0                 # logical requests answered by the endpoint
    requests: int = 0              # HTTP requests sent, retries included
    cache_hits: int = 0            # answered from llm_cache, nothing sent
    retries: int = 0               # extra attempts after 429 / 5xx / timeouts / bad bodies
    failures: int = 0              # logical requests that gave up after all retries
    prompt_tokens: int = 0         # spent (as reported by the endpoint)
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0  # what the cache hits had cost when first sent
    cached_completion_tokens: int = 0
    est_calls: int = 0             # dry run: requests it would send
    est_prompt_tokens: int = 0
    est_completion_tokens: int = 0

    def add(self, other: TagUsage) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class Usage:
    """Usage of one client, per tag; ``total`` sums every tag."""

    by_tag: dict[str, TagUsage] = field(default_factory=dict)

    def tag(self, tag: str) -> TagUsage:
        if tag not in self.by_tag:
            self.by_tag[tag] = TagUsage()
        return self.by_tag[tag]

    def count(self, tag: str, **amounts: int) -> None:
        u = self.tag(tag)
        for name, amount in amounts.items():
            setattr(u, name, getattr(u, name) + amount)

    @property
    def total(self) -> TagUsage:
        out = TagUsage()
        for u in self.by_tag.values():
            out.add(u)
        return out

    def grouped(self, key: Callable[[str], str]) -> dict[str, TagUsage]:
        """Sum tags into groups, e.g. ``key=lambda t: t.split('/')[0]`` for categories."""
        out: dict[str, TagUsage] = {}
        for tag, u in self.by_tag.items():
            out.setdefault(key(tag), TagUsage()).add(u)
        return out

    # Convenience totals, so callers can write ``client.usage.calls``.
    def __getattr__(self, name: str) -> int:
        if name in TagUsage.__dataclass_fields__ or name == "total_tokens":
            return getattr(self.total, name)
        raise AttributeError(name)

    def as_dict(self) -> dict:
        return {"total": asdict(self.total), "by_tag": {t: asdict(u) for t, u in self.by_tag.items()}}
