"""Retries with exponential backoff and jitter for calls through the openai SDK.

Retried: 408 / 409 / 429 / 5xx answers, timeouts, connection errors and malformed bodies.
A ``Retry-After`` (or ``retry-after-ms``) header is honoured.  401 / 403 / 404 stop the
whole job (:class:`LLMError`: the key, endpoint or model is wrong); other 4xx answers fail
just that request (:class:`LLMRequestFailed`).
"""
from __future__ import annotations

import asyncio
import email.utils
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import openai

from .defaults import MAX_RETRIES
from .errors import LLMError, LLMRequestFailed, MalformedResponse

T = TypeVar("T")

RETRY_STATUSES = frozenset({408, 409, 429})
FATAL_STATUSES = frozenset({401, 403, 404})


@dataclass
class RetryPolicy:
    """How a failed request is retried (see the module docstring for what is retried)."""

    max_retries: int = MAX_RETRIES
    """Retries after the first attempt; 0: one attempt only."""
    backoff_base: float = 0.5
    """Seconds; after failed attempt n (from 0) the wait is ``backoff_base * 2**n`` x a jitter in [0.5, 1.5)."""
    backoff_cap: float = 30.0
    """Seconds; the nominal backoff never exceeds this (before jitter)."""
    retry_after_cap: float = 120.0
    """Seconds; a server's Retry-After is obeyed up to this, never longer."""

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter in [0.5, 1.5) x the nominal delay."""
        return min(self.backoff_cap, self.backoff_base * (2 ** attempt)) * (0.5 + random.random())


def retry_after_seconds(headers) -> float | None:
    """Seconds asked for by ``retry-after-ms`` / ``Retry-After`` (seconds or HTTP date)."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())


def classify(exc: BaseException) -> tuple[str, int | None, float | None]:
    """``(action, status, retry_after)`` with action one of retry / fail / fatal / raise."""
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        after = retry_after_seconds(getattr(exc.response, "headers", None))
        if status in RETRY_STATUSES or status >= 500:
            return "retry", status, after
        if status in FATAL_STATUSES:
            return "fatal", status, None
        return "fail", status, None
    if isinstance(exc, (openai.APITimeoutError, asyncio.TimeoutError, TimeoutError)):
        return "retry", None, None
    if isinstance(exc, (openai.APIConnectionError, openai.APIResponseValidationError,
                        MalformedResponse, json.JSONDecodeError)):
        return "retry", None, None
    return "raise", None, None


def describe(exc: BaseException) -> str:
    """A one-line description of a failed attempt (never holds headers)."""
    if isinstance(exc, openai.APIStatusError):
        body = exc.body if isinstance(exc.body, (str, dict)) else None
        msg = body.get("message") if isinstance(body, dict) else body
        return f"HTTP {exc.status_code}" + (f": {str(msg)[:200]}" if msg else "")
    if isinstance(exc, (openai.APITimeoutError, asyncio.TimeoutError, TimeoutError)):
        return "timed out"
    if isinstance(exc, openai.APIConnectionError):
        return f"connection error: {exc.__cause__ or exc}"[:240]
    return f"{type(exc).__name__}: {exc}"[:240]


async def with_retries(call: Callable[[], Awaitable[T]], policy: RetryPolicy, *, what: str,
                       on_attempt: Callable[[], None] = lambda: None,
                       on_retry: Callable[[str], None] = lambda reason: None,
                       on_wait: Callable[[str, float], None] = lambda reason, delay: None,
                       redact: Callable[[str], str] = lambda s: s) -> T:
    """Run ``call`` until it succeeds, retrying what is worth retrying."""
    attempt = 0
    while True:
        on_attempt()
        try:
            return await call()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - classified below
            action, status, after = classify(exc)
            reason = redact(describe(exc))
            if action == "raise":
                raise
            if action == "fatal":
                raise LLMError(f"{what}: {reason}") from None
            if action == "fail" or attempt >= policy.max_retries:
                tries = "" if action == "fail" else f" after {attempt + 1} attempts"
                unreachable = (isinstance(exc, openai.APIConnectionError)
                               and not isinstance(exc, openai.APITimeoutError))
                raise LLMRequestFailed(f"{what}: {reason}{tries}", status=status,
                                       attempts=attempt + 1, unreachable=unreachable) from None
            delay = policy.backoff(attempt)
            if after is not None:
                delay = min(after, policy.retry_after_cap)
            on_retry(reason)
            on_wait(reason, delay)
            attempt += 1
            await asyncio.sleep(delay)
