"""Errors of LLM access, each one line fit for a user."""
from __future__ import annotations

from saegold.store.errors import SaegoldError


class LLMError(SaegoldError):
    """LLM access cannot go on at all (missing key, bad endpoint, wrong model, auth)."""


class LLMRequestFailed(SaegoldError):
    """One request failed for good (retries spent, or refused as invalid); others may go on."""

    def __init__(self, message: str, *, status: int | None = None, attempts: int = 1,
                 unreachable: bool = False):
        super().__init__(message)
        self.status, self.attempts = status, attempts
        self.unreachable = unreachable  # no connection could be made (not a slow answer)


class MalformedResponse(Exception):
    """The endpoint answered 2xx with a body that is not the expected shape (retried)."""
