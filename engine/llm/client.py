"""The one LLM client every area uses: openai SDK, concurrency limit, retries, cache, usage.

>>> client = LLMClient(project, base_url="http://127.0.0.1:8000/v1", model="gpt-4o-mini")
>>> result = await client.chat([{"role": "user", "content": "hi"}], tag="input/baez")
>>> client.usage.calls, client.usage.cache_hits
>>> await client.aclose()

* Any OpenAI-compatible endpoint (``base_url``; None means OpenAI's own).
* The API key is read from the environment variable *named* ``api_key_env`` when the
  first request is about to be sent.  It is never stored, logged or put in an error; a
  local endpoint (127.0.0.1 / localhost) gets a dummy key when the variable is unset.
* ``concurrency`` requests in flight at most (an ``asyncio.Semaphore``); retries with
  exponential backoff and jitter on 429 / 5xx / timeouts / connection errors / malformed
  bodies, honouring ``Retry-After``.  The SDK's own retries are off so that every attempt
  is counted here.  ``timeout`` bounds each request.
* Every usable answer is cached in ``llm_cache`` under the sha256 of what determines it
  (model, messages, sampling parameters), not of the endpoint, which is kept as
  provenance: re-running a finished job sends zero requests, from any address of the same
  server.  The answer's length limit (``max_tokens``) is checked on a hit instead of being
  keyed: a complete cached answer within the limit serves any limit.  Identical requests
  in flight at the same time are sent once.
* Never reported as done when it was not: a reply without content (``content: null``)
  comes back with ``text=None`` and ``no_content=True`` and is never cached; a reply over
  :data:`MAX_REPLY_CHARS` comes back cut to that length with ``oversize`` set to its full
  length and is never cached.  Waiting out a backoff releases the concurrency slot, and
  each wait is told to ``notify`` (at most one line a second).
* ``dry_run``: nothing is sent; cache hits are still recognised, and the rest is counted
  with estimated tokens (``usage.est_*``).
"""
from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlparse

import openai

from saegold.store.db import Project
from saegold.store.settings import DEFAULTS as SETTINGS_DEFAULTS

from . import defaults
from .cache import LLMCache, request_key
from .errors import LLMError, LLMRequestFailed, MalformedResponse
from .retry import RetryPolicy, with_retries
from .usage import Usage, estimate_tokens

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam

OPENAI_DEFAULT_URL = "https://api.openai.com/v1"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
LOCAL_DUMMY_KEY = "sk-local-no-key"
DRY_RUN_COMPLETION_TOKENS = 60  # completion estimate when the caller gives none
# A hard cap on a reply kept (cached, stored, shown): a label or a judge's answer is a few
# hundred characters; 32,000 holds any sane answer with room to spare, and keeps a server
# that ignores max_tokens from filling the project (a 5 MB answer was cached and stored whole).
MAX_REPLY_CHARS = 32_000
WAIT_NOTE_INTERVAL = 1.0        # seconds between two "waiting" lines at most
LIMIT_PARAMS = ("max_tokens", "max_completion_tokens")


@dataclass
class ChatResult:
    text: str | None          # None in a dry run, or when the reply had no content
    prompt_tokens: int
    completion_tokens: int
    cached: bool
    request_key: str          # the cache key
    finish_reason: str | None = None
    dry_run: bool = False     # nothing was sent (the counts are estimates)
    oversize: int | None = None   # the reply's full length when ``text`` is cut to MAX_REPLY_CHARS

    @property
    def no_content(self) -> bool:
        """The endpoint answered, but with no text (``content: null``): not an answer."""
        return self.text is None and not self.dry_run


def is_local(url: str) -> bool:
    return (urlparse(url).hostname or "") in LOCAL_HOSTS


def check_url(url: str, what: str = "endpoint") -> str:
    """``url`` if it is a usable http(s) URL, else a one-line :class:`LLMError` (a port out
    of range, a missing host...)."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise LLMError(f"{what} {url!r} is not an http:// or https:// URL")
    try:
        port = parsed.port   # raises ValueError for a port that is not a number in range
    except ValueError:
        raise LLMError(f"{what} {url!r}: the port is not a number from 1 to 65535") from None
    if port == 0 or not parsed.hostname:
        raise LLMError(f"{what} {url!r}: " + ("port 0 is not a port" if port == 0 else "no host"))
    return url


class LLMClient:
    """Cached, retrying, rate-limited access to one OpenAI-compatible endpoint."""

    def __init__(self, project: Project | None, *, base_url: str | None, model: str,
                 api_key_env: str | None = SETTINGS_DEFAULTS["llm_api_key_env"],
                 concurrency: int = defaults.CONCURRENCY, timeout: float = defaults.TIMEOUT_S,
                 max_retries: int = defaults.MAX_RETRIES, dry_run: bool = False,
                 backoff_base: float = 0.5, extra_headers: dict[str, str] | None = None,
                 read_cache: bool = True, notify: Callable[[str], None] | None = None):
        if concurrency < 1:
            raise LLMError(f"concurrency must be at least 1 (got {concurrency})")
        if timeout <= 0:
            raise LLMError(f"timeout must be positive (got {timeout})")
        if base_url:
            check_url(base_url)
        self.project = project
        self.endpoint = (base_url or OPENAI_DEFAULT_URL).rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.concurrency = concurrency
        self.timeout = float(timeout)
        self.dry_run = dry_run
        self.policy = RetryPolicy(max_retries=max_retries, backoff_base=backoff_base)
        self.usage = Usage()
        self.cache = LLMCache(project, read=read_cache)
        self._extra_headers = dict(extra_headers or {})
        self._sem = asyncio.Semaphore(concurrency)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sdk: openai.AsyncOpenAI | None = None
        self._inflight: dict[str, asyncio.Future] = {}
        self.notify = notify   # one-line notices for the user (backoff waits, no key)
        self._last_note = float("-inf")
        self._said_no_key = False
        self._reached = False  # some request got an answer
        self._unnoted = 0

    # -- the SDK client, created on the first real request ---------------------------------
    def _key(self) -> str:
        key = os.environ.get(self.api_key_env, "").strip() if self.api_key_env else ""
        if key:
            return key
        if not self.api_key_env:
            return LOCAL_DUMMY_KEY  # an endpoint that needs no key (e.g. the NLA service)
        if is_local(self.endpoint):
            # A local server may need no key: go on, but say so (once: the SDK client is made
            # once per event loop), so a forgotten export is not silent.
            if self.notify is not None and not self._said_no_key:
                self._said_no_key = True
                self.notify(f"${self.api_key_env} is not set: sending requests to {self.endpoint} "
                            f"without an API key")
            return LOCAL_DUMMY_KEY
        raise LLMError(
            f"the API key variable ${self.api_key_env} is not set (needed for {self.endpoint}); "
            f"export it, or name another variable with --api-key-env"
        )

    def _redact(self, text: str) -> str:
        key = os.environ.get(self.api_key_env, "").strip() if self.api_key_env else ""
        return text.replace(key, "[key]") if len(key) >= 4 else text

    def _bind_loop(self) -> None:
        """Semaphore and SDK client belong to one event loop; a client reused under a new
        ``asyncio.run`` gets fresh ones (the old connection pool is dropped)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            self._sem = asyncio.Semaphore(self.concurrency)
            self._sdk = None
            self._inflight = {}

    @property
    def sdk(self) -> openai.AsyncOpenAI:
        self._bind_loop()
        if self._sdk is None:
            self._sdk = openai.AsyncOpenAI(
                api_key=self._key(), base_url=self.endpoint, timeout=self.timeout,
                max_retries=0, default_headers=self._extra_headers or None,
            )
        return self._sdk

    async def aclose(self) -> None:
        if self._sdk is not None and self._loop is asyncio.get_running_loop():
            await self._sdk.close()
        self._sdk = None  # one made under an earlier (now closed) loop is just dropped

    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- generic cached + retried request ---------------------------------------------------
    async def _send(self, call: Callable[[openai.AsyncOpenAI], Awaitable[Any]], *, tag: str,
                    what: str) -> Any:
        """One logical request with retries and a hard timeout.  Each attempt holds a
        concurrency slot; waiting out a backoff does not (others go on meanwhile)."""
        sdk = self.sdk  # raises LLMError at once when the key is missing
        u = self.usage

        async def attempt() -> Any:
            async with self._sem:
                # The SDK's timeout covers connect/read/write; this bounds a trickling server too.
                return await asyncio.wait_for(call(sdk), timeout=self.timeout + 1.0)

        try:
            result = await with_retries(
                attempt, self.policy, what=what,
                on_attempt=lambda: u.count(tag, requests=1),
                on_retry=lambda reason: u.count(tag, retries=1),
                on_wait=lambda reason, delay: self._note_wait(what, reason, delay),
                redact=self._redact,
            )
        except LLMRequestFailed as exc:
            u.count(tag, failures=1)
            if exc.unreachable and not self._reached:
                # Never reached at all: the endpoint is wrong or down, not this request.
                raise LLMError(f"cannot reach {self.endpoint} ({exc}); no request got an answer: "
                               f"check --base-url and that the server is up") from None
            raise
        except Exception:
            u.count(tag, failures=1)
            raise
        self._reached = True
        u.count(tag, calls=1)
        return result

    def _note_wait(self, what: str, reason: str, delay: float) -> None:
        """Tell ``notify`` about a backoff wait: one line a second at most, with a count of
        the waits it stands for."""
        if self.notify is None:
            return
        self._unnoted += 1
        now = time.monotonic()
        if now - self._last_note < WAIT_NOTE_INTERVAL:
            return
        more = f" (and {self._unnoted - 1} other waits since the last line)" if self._unnoted > 1 else ""
        self._last_note, self._unnoted = now, 0
        self.notify(f"{what}: {reason}; retrying in {delay:.1f} s{more}")

    async def _dedup(self, key: str, produce: Callable[[], Awaitable[Any]]) -> tuple[Any, bool]:
        """Run ``produce`` once per key at a time; a concurrent twin waits for the first.
        Returns ``(value, shared)`` with ``shared`` True for a twin."""
        self._bind_loop()
        running = self._inflight.get(key)
        while running is not None:
            try:
                return await asyncio.shield(running), True
            except asyncio.CancelledError:
                if not running.cancelled():
                    raise  # this twin itself was cancelled
                running = self._inflight.get(key)  # the first was cancelled: go on ourselves
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            value = await produce()
        except BaseException as exc:
            if not fut.done():
                if isinstance(exc, Exception):
                    fut.set_exception(exc)
                    fut.exception()  # mark retrieved: twins re-raise it themselves
                else:
                    fut.cancel()
            raise
        else:
            fut.set_result(value)
            return value, False
        finally:
            self._inflight.pop(key, None)

    # -- chat ------------------------------------------------------------------------------
    def chat_key(self, messages: list[dict], **params: Any) -> str:
        """The cache key: what determines the answer (model, messages, sampling
        parameters), never the endpoint's address nor the length limit (checked on a hit)."""
        return request_key(self.model, "chat", messages, params)

    async def chat(self, messages: list[dict], *, tag: str = "",
                   est_completion_tokens: int | None = None, **params: Any) -> ChatResult:
        """One chat completion (cached).  ``params`` go to the API as they are
        (temperature, max_tokens...).  ``est_completion_tokens`` only feeds dry-run
        estimates (default: ``max_tokens``, else 60)."""
        key = self.chat_key(messages, **params)
        hit = self.cache.get(key)
        if hit is not None and _serves(hit, params):
            return self._chat_hit(key, hit, tag)
        if self.dry_run:
            prompt = sum(estimate_tokens(str(m.get("content") or "")) + 4 for m in messages)
            completion = est_completion_tokens or params.get("max_tokens") or DRY_RUN_COMPLETION_TOKENS
            self.usage.count(tag, est_calls=1, est_prompt_tokens=prompt,
                             est_completion_tokens=int(completion))
            return ChatResult(None, prompt, int(completion), False, key, dry_run=True)

        async def produce() -> dict:
            async def call(sdk: openai.AsyncOpenAI) -> dict:
                return _chat_json(await sdk.chat.completions.create(   # messages: OpenAI chat dicts
                    model=self.model, messages=cast("list[ChatCompletionMessageParam]", messages), **params))

            data = await self._send(call, tag=tag,
                                    what=f"chat request to {self.endpoint} (model {self.model})")
            message = data["choices"][0]["message"]
            text = message.get("content")
            full = len(text) if text is not None and len(text) > MAX_REPLY_CHARS else None
            if full is not None:
                # Kept cut: never cached, stored or sent back whole.
                message["content"] = text = text[:MAX_REPLY_CHARS]
            usage = data.get("usage") or {}
            pt = usage.get("prompt_tokens")
            ct = usage.get("completion_tokens")
            if pt is None:
                pt = sum(estimate_tokens(str(m.get("content") or "")) for m in messages)
            if ct is None:
                ct = estimate_tokens(text or "")
            self.usage.count(tag, prompt_tokens=int(pt), completion_tokens=int(ct))
            if text is not None and full is None:  # only a usable answer is cached
                self.cache.put(key, endpoint=self.endpoint, model=self.model,
                               request={"messages": messages, "params": params}, response=data,
                               prompt_tokens=int(pt), completion_tokens=int(ct))
            return {"response": data, "prompt_tokens": int(pt), "completion_tokens": int(ct),
                    "oversize": full}

        value, shared = await self._dedup(key, produce)
        if shared:
            return self._chat_hit(key, value, tag)
        return _chat_result(key, value, cached=False)

    def _chat_hit(self, key: str, hit: dict, tag: str) -> ChatResult:
        self.usage.count(tag, cache_hits=1, cached_prompt_tokens=hit["prompt_tokens"],
                         cached_completion_tokens=hit["completion_tokens"])
        return _chat_result(key, hit, cached=True)

    # -- embeddings ------------------------------------------------------------------------
    async def embed(self, texts: list[str], *, model: str, tag: str = "",
                    batch_size: int = 256) -> list[list[float]]:
        """Embeddings of ``texts`` in order, each text cached on its own (so any batching
        of a re-run hits the cache).  Dry run: uncached texts come back as ``[]``."""
        keys = [request_key(model, "embedding", t, {}) for t in texts]
        out: list[list[float] | None] = [None] * len(texts)
        missing: dict[str, list[int]] = {}
        for i, key in enumerate(keys):
            hit = self.cache.get(key)
            if hit is not None:
                out[i] = hit["response"]["embedding"]
                self.usage.count(tag, cache_hits=1, cached_prompt_tokens=hit["prompt_tokens"])
            else:
                missing.setdefault(key, []).append(i)
        todo = list(missing)
        if self.dry_run:
            for key in todo:
                text = texts[missing[key][0]]
                for i in missing[key]:
                    out[i] = []
                self.usage.count(tag, est_prompt_tokens=estimate_tokens(text))
            if todo:
                self.usage.count(tag, est_calls=-(-len(todo) // batch_size))
            return [v if v is not None else [] for v in out]
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            inputs = [texts[missing[k][0]] for k in chunk]
            async def call(sdk: openai.AsyncOpenAI, inputs: list[str] = inputs) -> dict:
                response = await sdk.embeddings.create(model=model, input=inputs, encoding_format="float")
                return _embedding_json(response, len(inputs))

            data = await self._send(call, tag=tag,
                                    what=f"embedding request to {self.endpoint} (model {model})")
            items = sorted(data["data"], key=lambda d: d.get("index", 0))
            total = (data.get("usage") or {}).get("prompt_tokens")
            self.usage.count(tag, prompt_tokens=int(total if total is not None
                                                     else sum(estimate_tokens(t) for t in inputs)))
            with self._cache_batch():
                for key, text, item in zip(chunk, inputs, items):
                    vec = [float(x) for x in item["embedding"]]
                    self.cache.put(key, endpoint=self.endpoint, model=model, request={"input": text},
                                   response={"embedding": vec}, prompt_tokens=estimate_tokens(text),
                                   completion_tokens=0)
                    for i in missing[key]:
                        out[i] = vec
        return [v if v is not None else [] for v in out]

    def _cache_batch(self):
        """One transaction for a batch of cache rows (nested puts join it)."""
        if self.project is None:
            import contextlib
            return contextlib.nullcontext()
        return self.project.write()

    # -- other JSON endpoints on the same host (e.g. an NLA service) -------------------------
    async def post_json(self, path: str, body: dict[str, Any], *, tag: str = "",
                        cache_kind: str | None = None, what: str | None = None,
                        validate: Callable[[Any], None] | None = None,
                        keep: Callable[[Any], Any] | None = None) -> tuple[Any, bool]:
        """POST ``body`` to ``endpoint + path`` with the same retries, semaphore and (with
        ``cache_kind``) cache as chat calls.  ``validate`` raises :class:`MalformedResponse`
        on a bad body (retried); ``keep`` reduces a valid body to what the caller uses, before
        it is cached or returned (an answer padded with megabytes is not kept whole).  Returns
        ``(json, cached)``; dry run returns ``(None, False)``."""
        key = request_key(self.model, cache_kind or "post", {"path": path, "body": body}, {})
        if cache_kind:
            hit = self.cache.get(key)
            if hit is not None:
                self.usage.count(tag, cache_hits=1)
                return hit["response"], True
        if self.dry_run:
            self.usage.count(tag, est_calls=1)
            return None, False

        async def produce() -> Any:
            async def call(sdk: openai.AsyncOpenAI) -> Any:
                data = await sdk.post(path, cast_to=object, body=body)
                if validate is not None:
                    validate(data)
                return keep(data) if keep is not None else data

            data = await self._send(call, tag=tag, what=what or f"request to {self.endpoint}{path}")
            if cache_kind:
                self.cache.put(key, endpoint=self.endpoint, model=self.model,
                               request={"path": path, "body": body}, response=data,
                               prompt_tokens=None, completion_tokens=None)
            return data

        value, shared = await self._dedup(key, produce)
        if shared:
            self.usage.count(tag, cache_hits=1)
        return value, shared


def _chat_result(key: str, value: dict, *, cached: bool) -> ChatResult:
    choice = value["response"]["choices"][0]
    return ChatResult(choice["message"].get("content"), value["prompt_tokens"],
                      value["completion_tokens"], cached, key, choice.get("finish_reason"),
                      oversize=value.get("oversize"))


def _limit(params: dict[str, Any]) -> int | None:
    for name in LIMIT_PARAMS:
        if params.get(name) is not None:
            return int(params[name])
    return None


def _serves(hit: dict, params: dict[str, Any]) -> bool:
    """Does the cached answer stand for what this request would get?  It must be a usable
    answer (text, within :data:`MAX_REPLY_CHARS`: older versions cached null and huge
    replies), and fit this request's length limit: a complete answer (not cut by a limit)
    no longer than the limit, or one cut by the very same limit."""
    choice = hit["response"]["choices"][0]
    text = choice["message"].get("content")
    if not isinstance(text, str) or len(text) > MAX_REPLY_CHARS:
        return False
    limit = _limit(params)
    if choice.get("finish_reason") == "length":
        return limit == _limit((hit.get("request") or {}).get("params") or {})
    return limit is None or hit["completion_tokens"] <= limit


def _chat_json(response: Any) -> dict:
    """The completion as a plain dict, checked for the fields we read."""
    data = response.model_dump() if hasattr(response, "model_dump") else response
    if not isinstance(data, dict):
        raise MalformedResponse(f"chat answer is {type(data).__name__}, not an object")
    choices = data.get("choices")
    if not choices or not isinstance(choices[0], dict) or not isinstance(choices[0].get("message"), dict):
        raise MalformedResponse("chat answer has no choices[0].message")
    content = choices[0]["message"].get("content")
    if content is not None and not isinstance(content, str):
        raise MalformedResponse("chat answer content is not text")
    return data


def _embedding_json(response: Any, n: int) -> dict:
    """The embedding answer as a plain dict with ``n`` float vectors."""
    data = response.model_dump() if hasattr(response, "model_dump") else response
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list) or len(items) != n:
        raise MalformedResponse(f"embedding answer does not hold {n} vectors")
    if any(not isinstance(d, dict) or not isinstance(d.get("embedding"), list) or not d["embedding"]
           for d in items):
        raise MalformedResponse("embedding answer holds a vector that is not a list of numbers")
    return data
