"""NLA explanation sources: where the ``baez`` methods get their explanations.

An NLA (natural-language autoencoder, "activation verbalizer") describes in words what the
language model's residual activation at one token represents.  ``baez`` needs, for each of
a feature's top examples, the explanation at the example's max-activating token.  They are
stored in ``nla_explanations`` (example_id, nla_source, token_index, text) and come from:

(a) :class:`NLAService`: an HTTP service in the shape of Neuronpedia's NLA explain endpoint
    (``POST {base}/explain`` with ``{"modelId", "nlaSourceId", "text", "positions"}``,
    answering ``{"results": [{"position", "token", "description", ...}]}``; the public one is
    ``https://www.neuronpedia.org/api/nla``).  Requests go through :class:`LLMClient`, so they
    share its cache (``llm_cache``), retries, concurrency limit and usage accounting.
    ``text`` is the example cut after its max-activating token (a leading BOS token dropped)
    and the position is that last token's, counted in the example's own tokenization plus
    ``bos_offset`` (1: the service prepends a BOS token).  This assumes the NLA source reads
    the same model (and tokenizer) as the SAE; the token the service reports back is
    compared with ours and mismatches are counted.
(b) :func:`import_jsonl`: a JSONL file of precomputed explanations, one record a line::

        {"source": "gemma-3-27b-it/41-gemmascope-2-res-262k", "feature": 12, "rank": 0,
         "token_index": 17, "explanation": "...", "nla_source": "kitft-l41"}

    ``source`` + ``feature`` name the feature, ``rank`` its top example (0 = strongest),
    ``token_index`` the token in that example's stored tokens (baez uses the
    max-activating one), ``nla_source`` is optional (default: the name given to the import).
(c) A local activation verbalizer run with transformers is not built (see the report).
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from saegold.engine.llm.aio import first_error
from saegold.engine.llm.client import MAX_REPLY_CHARS, LLMClient
from saegold.engine.llm.errors import LLMRequestFailed, MalformedResponse
from saegold.engine.progress import Progress, null_progress
from saegold.store.db import Project, now
from saegold.store.examples import find_example
from saegold.store.errors import BadInput

from .format import BOS_TOKENS
from .inputs import Example

NEURONPEDIA_NLA_URL = "https://www.neuronpedia.org/api/nla"
DEFAULT_JSONL_SOURCE = "precomputed"


def put_explanation(db, example_id: int, nla_source: str, token_index: int, text: str) -> None:
    db.execute(
        "INSERT INTO nla_explanations(example_id, nla_source, token_index, text, created_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT(example_id, nla_source, token_index) DO UPDATE SET "
        "text = excluded.text, created_at = excluded.created_at "
        "WHERE nla_explanations.text IS NOT excluded.text",  # the same text again changes nothing
        [example_id, nla_source, token_index, text, now()],
    )


# -- (b) precomputed JSONL -------------------------------------------------------------------
@dataclass
class JsonlImport:
    records: int = 0
    stored: int = 0
    unmatched: int = 0          # records whose feature or example is not in the project
    off_max: int = 0            # stored, but not at the example's max-activating token
    sources: tuple[str, ...] = ()


def import_jsonl(project: Project, path: str | os.PathLike, *, nla_source: str | None = None) -> JsonlImport:
    """Import precomputed explanations in one transaction: a bad record raises
    :class:`BadInput` naming file, line and field, and nothing is written."""
    path = Path(path)
    out = JsonlImport()
    seen: set[str] = set()
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise BadInput(str(path), None, None, f"cannot read: {exc.strerror}") from exc
    with handle, project.write() as db:
        for n, line in _lines(path, handle):
            if not line.strip():
                continue
            out.records += 1
            rec = _record(path, n, line)
            source = nla_source_of(rec, nla_source)
            if not source:
                raise BadInput(str(path), f"line {n}", "nla_source", "must be a non-empty string")
            row = find_example(db, rec["source"], rec["feature"], "top", rec["rank"])
            if row is None:
                out.unmatched += 1
                continue
            n_tokens = row[1]
            if rec["token_index"] >= n_tokens:
                raise BadInput(str(path), f"line {n}", "token_index",
                               f"{rec['token_index']} is past the example's {n_tokens} tokens")
            put_explanation(db, row[0], source, rec["token_index"], rec["explanation"])
            out.stored += 1
            out.off_max += rec["token_index"] != row[2]
            seen.add(source)
    out.sources = tuple(sorted(seen))
    return out


def _lines(path: Path, handle) -> Iterator[tuple[int, str]]:
    """Numbered lines, streamed (a precomputed file may be large)."""
    for n, raw in enumerate(handle, 1):
        try:
            yield n, raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadInput(str(path), f"line {n}", None, "not UTF-8 text") from None


def nla_source_of(rec: dict, default: str | None) -> str:
    return rec.get("nla_source") or default or DEFAULT_JSONL_SOURCE


def _record(path: Path, n: int, line: str) -> dict[str, Any]:
    where = (str(path), f"line {n}")
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as exc:
        raise BadInput(*where, None, f"not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise BadInput(*where, None, "JSON nested too deeply") from None
    if not isinstance(rec, dict):
        raise BadInput(*where, None, "a record must be a JSON object")
    checks: list[tuple[str, Callable[[Any], bool], str]] = [
        ("source", lambda v: isinstance(v, str) and "/" in v, 'must be "MODEL/SOURCE"'),
        ("feature", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
         "must be a non-negative integer"),
        ("rank", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
         "must be a non-negative integer"),
        ("token_index", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
         "must be a non-negative integer"),
        ("explanation", lambda v: isinstance(v, str) and v.strip() != "", "must be a non-empty string"),
    ]
    for field, ok, problem in checks:
        if field not in rec:
            raise BadInput(*where, field, "missing")
        if not ok(rec[field]):
            raise BadInput(*where, field, problem)
    if "nla_source" in rec and not (isinstance(rec["nla_source"], str) and rec["nla_source"].strip()):
        raise BadInput(*where, "nla_source", "must be a non-empty string")
    return rec


# -- (a) HTTP service in Neuronpedia's NLA explain shape -----------------------------------------
@dataclass
class NLARequest:
    text: str
    position: int
    token: str


def nla_request(example: Example, *, bos_offset: int = 1) -> NLARequest:
    """The text cut after the max-activating token, and that token's position."""
    tokens = example.tokens[:example.max_idx + 1]
    if tokens and tokens[0] in BOS_TOKENS:
        tokens = tokens[1:]
    return NLARequest("".join(tokens), len(tokens) - 1 + bos_offset, tokens[-1] if tokens else "")


class NLAService:
    """Explanations from an HTTP NLA service, through an :class:`LLMClient` for caching,
    retries, concurrency and usage."""

    def __init__(self, client: LLMClient, *, model_id: str, nla_source_id: str, bos_offset: int = 1):
        self.client, self.model_id, self.nla_source_id = client, model_id, nla_source_id
        self.bos_offset = bos_offset
        self.token_mismatches = 0

    @property
    def name(self) -> str:
        """The ``nla_source`` the explanations are stored under."""
        return self.nla_source_id

    async def explain(self, example: Example, *, tag: str = "nla") -> str | None:
        """The explanation at the example's max-activating token (None in a dry run)."""
        req = nla_request(example, bos_offset=self.bos_offset)
        body = {"modelId": self.model_id, "nlaSourceId": self.nla_source_id,
                "text": req.text, "positions": [req.position]}

        def validate(data: Any) -> None:
            result = _result_at(data, req.position)
            if result is None:
                raise MalformedResponse(f"NLA answer has no description for position {req.position}")

        def keep(data: Any) -> dict[str, Any]:
            # Only the asked position's result is kept (cached, stored), its description cut
            # to MAX_REPLY_CHARS with its full length noted where longer.
            result = dict(_result_at(data, req.position) or {})
            text = result.get("description", "")
            if len(text) > MAX_REPLY_CHARS:
                result["description"], result["oversize"] = text[:MAX_REPLY_CHARS], len(text)
            return {"results": [result]}

        what = f"NLA request to {self.client.endpoint} ({self.model_id}/{self.nla_source_id})"
        data, _cached = await self.client.post_json(
            "/explain", body, tag=tag, cache_kind="nla_explain", validate=validate, keep=keep, what=what)
        if data is None:
            return None
        result = _result_at(data, req.position)
        size = (result or {}).get("oversize") or len((result or {}).get("description", ""))
        if result is None or size > MAX_REPLY_CHARS:     # (an older version cached whole bodies)
            raise LLMRequestFailed(f"{what}: the explanation of example {example.id} is {size:,} characters "
                                   f"long, over the limit of {MAX_REPLY_CHARS:,}; not stored")
        their = str(result.get("token") or "")
        if their and their.strip() != req.token.strip():
            self.token_mismatches += 1
        return str(result["description"])

    async def fill(self, project: Project, examples: list[Example], *, progress: Progress = null_progress,
                   tag_of: Callable[[Example], str] = lambda e: "nla",
                   on_error: Callable[[Example, Exception], None] | None = None) -> int:
        """Fetch and store the explanations of ``examples`` that are not stored yet;
        each is written as soon as it arrives.  Returns how many were stored."""
        import asyncio

        total, done, stored = len(examples), 0, 0
        progress("NLA explanations", 0, total)

        async def one(ex: Example) -> None:
            nonlocal done, stored
            try:
                text = await self.explain(ex, tag=tag_of(ex))
            except LLMRequestFailed as exc:
                if on_error is None:
                    raise
                on_error(ex, exc)
                text = None
            if text is not None:
                with project.write() as db:
                    put_explanation(db, ex.id, self.name, ex.max_idx, text)
                stored += 1
            done += 1
            progress("NLA explanations", done, total)

        async with first_error(), asyncio.TaskGroup() as group:  # a fatal error cancels the rest
            for e in examples:
                group.create_task(one(e))
        return stored


def _result_at(data: Any, position: int) -> dict | None:
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        return None
    for r in data["results"]:
        if isinstance(r, dict) and r.get("position") == position and isinstance(r.get("description"), str) \
                and r["description"].strip():
            return r
    return None
