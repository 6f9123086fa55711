"""A small, real OpenAI-compatible HTTP server on 127.0.0.1, for tests and the demo.

It is a *stand-in*: answers come from the Python handlers it is given (tests script
them; ``saegold demo`` uses the clearly named demo stand-ins in
:mod:`engine.llm.demo_responder`), never from a model.  It speaks real HTTP in the OpenAI
shapes, so the real openai SDK talks to it exactly as to any endpoint:

* ``POST /v1/chat/completions``  -> ``chat_handler(request_json) -> str`` (the answer text)
* ``POST /v1/embeddings``        -> ``embed_handler(texts) -> list[list[float]]``
  (``encoding_format`` float or base64, as the SDK may ask for either)
* ``POST /api/nla/explain``      -> ``nla_handler(text, position, request_json) -> str``,
  in the shape of Neuronpedia's NLA explain endpoint: the request carries ``modelId``,
  ``nlaSourceId``, ``text`` and ``positions``; the answer is
  ``{"results": [{"position", "token", "description"}...], "cacheId"}``.

Every request is recorded (:attr:`requests`), and faults can be scripted
(:meth:`inject`): status codes (with ``Retry-After``), delays longer than a client's
timeout, and malformed bodies.

    with StandinServer(chat_handler=lambda req: "[EXPLANATION]: dogs") as server:
        client = LLMClient(project, base_url=server.base_url, model="m")
"""
from __future__ import annotations

import base64
import collections
import hashlib
import itertools
import json
import math
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ChatHandler = Callable[[dict], str]
EmbedHandler = Callable[[list[str]], list[list[float]]]
NLAHandler = Callable[[str, int, dict], str]

CHAT_PATH = "/v1/chat/completions"
EMBED_PATH = "/v1/embeddings"
NLA_PATH = "/api/nla/explain"


@dataclass
class Fault:
    """One scripted misbehaviour, used by the next request to ``route`` (any route if None).

    ``status``: answer this HTTP status (with ``retry_after`` as a ``Retry-After`` header);
    ``delay``: sleep this long before answering (normally or with ``status``/``body``);
    ``body``: answer 200 with these raw bytes (a malformed body).
    """

    status: int | None = None
    retry_after: float | None = None
    delay: float = 0.0
    body: bytes | None = None
    route: str | None = None


@dataclass
class Recorded:
    path: str
    body: Any                      # the request JSON (or the raw text when not JSON)
    auth: str | None               # the Authorization header as sent (tests check the key)
    fault: Fault | None = None
    at: float = field(default_factory=time.monotonic)


def hash_embedding(text: str, dim: int = 32) -> list[float]:
    """A deterministic unit vector from the words of ``text`` (bag of hashed words).
    Texts sharing words get similar vectors; it is a stand-in, not a semantic model."""
    vec = [0.0] * dim
    for word in text.lower().split():
        h = hashlib.sha256(word.strip(".,;:!?\"'()").encode()).digest()
        for i in range(dim):
            vec[i] += (h[i % len(h)] - 127.5) / 127.5
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


def approx_tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4)) if text else 0


class StandinServer:
    """OpenAI-compatible stand-in server on 127.0.0.1 with an ephemeral port."""

    def __init__(self, chat_handler: ChatHandler | None = None,
                 embed_handler: EmbedHandler | None = None,
                 nla_handler: NLAHandler | None = None, *, host: str = "127.0.0.1",
                 port: int = 0):
        self.chat_handler = chat_handler or (lambda req: "[EXPLANATION]: stand-in answer")
        self.embed_handler = embed_handler or (lambda texts: [hash_embedding(t) for t in texts])
        self.nla_handler = nla_handler
        self.requests: list[Recorded] = []
        self._faults: collections.deque[Fault] = collections.deque()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._host, self._port = host, port
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> StandinServer:
        if self._httpd is not None:
            return self
        self._httpd = ThreadingHTTPServer((self._host, self._port), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="standin-llm",
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> StandinServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the stand-in server is not started")
        return self._httpd.server_address[1]

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL (ending in ``/v1``)."""
        return f"{self.root_url}/v1"

    @property
    def nla_url(self) -> str:
        """Base URL of the NLA service (``/explain`` is appended), as for Neuronpedia's
        ``https://www.neuronpedia.org/api/nla``."""
        return f"{self.root_url}/api/nla"

    # -- scripting and inspection -------------------------------------------------------
    def inject(self, *faults: Fault) -> None:
        """Queue faults; each is used once, in order, by the next request it matches."""
        with self._lock:
            self._faults.extend(faults)

    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def bodies(self, path: str | None = None) -> list[Any]:
        with self._lock:
            return [r.body for r in self.requests if path is None or r.path == path]

    def chat_bodies(self) -> list[dict]:
        return self.bodies(CHAT_PATH)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._faults.clear()

    # -- used by the handler thread -----------------------------------------------------
    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.route is None or fault.route == path:
                    del self._faults[i]
                    return fault
        return None

    def _record(self, rec: Recorded) -> None:
        with self._lock:
            self.requests.append(rec)

    def _answer(self, path: str, req: dict) -> dict:
        n = next(self._ids)
        if path == CHAT_PATH:
            text = self.chat_handler(req)
            prompt = sum(approx_tokens(str(m.get("content") or "")) for m in req.get("messages", []))
            completion = approx_tokens(text)
            return {
                "id": f"chatcmpl-standin-{n}", "object": "chat.completion", "created": int(time.time()),
                "model": req.get("model", "standin"), "system_fingerprint": "standin",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": "stop", "logprobs": None}],
                "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                          "total_tokens": prompt + completion},
            }
        if path == EMBED_PATH:
            texts = req.get("input")
            texts = [texts] if isinstance(texts, str) else list(texts or [])
            vectors = self.embed_handler(texts)
            as_b64 = req.get("encoding_format") == "base64"
            data = [{"object": "embedding", "index": i,
                     "embedding": base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode()
                     if as_b64 else [float(x) for x in v]}
                    for i, v in enumerate(vectors)]
            tokens = sum(approx_tokens(t) for t in texts)
            return {"object": "list", "data": data, "model": req.get("model", "standin"),
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
        if path == NLA_PATH:
            if self.nla_handler is None:
                raise LookupError("this stand-in server has no NLA handler")
            text = req["text"]
            positions = [int(p) for p in req.get("positions", [])]
            results = [{"position": p, "token": "", "description": self.nla_handler(text, p, req)}
                       for p in positions]
            return {"results": results, "cacheId": f"standin-{n}"}
        raise LookupError(path)


def _make_handler(server: StandinServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence
            pass

        def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (e.g. its timeout); nothing to answer

        def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
            body = {"error": {"message": message, "type": "standin_error", "code": status}}
            self._send(status, json.dumps(body).encode(), headers)

        def do_GET(self) -> None:  # noqa: N802
            if self.path.rstrip("/") == "/v1/models":
                self._send(200, json.dumps({"object": "list", "data": [
                    {"id": "standin", "object": "model", "owned_by": "saegold-standin"}]}).encode())
            else:
                self._error(404, f"no such route {self.path}")

        def do_POST(self) -> None:  # noqa: N802
            path = self.path.split("?", 1)[0].rstrip("/")
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body: Any = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                body = raw.decode("utf-8", "replace")
            fault = server._take_fault(path)
            server._record(Recorded(path, body, self.headers.get("Authorization"), fault))
            if fault is not None:
                if fault.delay:
                    time.sleep(fault.delay)
                if fault.status is not None:
                    headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
                    self._error(fault.status, f"stand-in fault {fault.status}", headers)
                    return
                if fault.body is not None:
                    self._send(200, fault.body)
                    return
            if not isinstance(body, dict):
                self._error(400, "request body is not a JSON object")
                return
            try:
                answer = server._answer(path, body)
            except LookupError as exc:
                self._error(404, str(exc))
                return
            except (KeyError, TypeError, ValueError) as exc:
                self._error(400, f"bad request: {exc}")
                return
            except Exception as exc:  # noqa: BLE001 - a handler bug becomes a 500, as on a real server
                self._error(500, f"stand-in handler failed: {type(exc).__name__}: {exc}")
                return
            self._send(200, json.dumps(answer, ensure_ascii=False).encode("utf-8"))

    return Handler
