"""The label job behind ``saegold label``: plan, fetch NLA explanations, label, account.

* Which features: every feature with examples (or output evidence), optionally one source
  and some indices.  Which methods: a forced list, or per category through the routing
  table (score-then-label).  (feature, method) pairs that already have a usable label are
  skipped unless ``redo``.
* Each label is written as soon as it completes (its own short transaction), so Ctrl+C or
  a crash keeps every finished label.  An answer without ``[EXPLANATION]:``, an empty one
  or one over the method's length limit is stored as a failed attempt (status 'failed',
  raw_response, error) and asked again with a repair message, up to ``attempts`` times.
  A request that fails for good fails that pair only; a fatal error (wrong key, endpoint or
  model) stops the job.
* Every run accounts calls, cache hits and tokens per category, and estimates what the
  routed plan and labeling every feature with every method would cost from scratch.
"""
from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from saegold.engine.llm import defaults as llm_defaults
from saegold.engine.llm.aio import run_pool
from saegold.engine.llm.client import DRY_RUN_COMPLETION_TOKENS, MAX_REPLY_CHARS, LLMClient
from saegold.engine.llm.errors import LLMRequestFailed
from saegold.engine.llm.usage import TagUsage, estimate_tokens
from saegold.engine.progress import Progress, null_progress
from saegold.store import settings
from saegold.store.db import Project
from saegold.store.errors import SaegoldError
from saegold.store.feature_spec import check_stored
from saegold.store.labels import add_label, content_uuid

from . import inputs
from .format import Parsed, parse_explanation
from .methods import METHOD_NAMES, METHODS, BuildOptions, Method, repair_message
from .nla import NLAService
from .routing import routing_table

ORIGIN = "saegold"
UNSCORED = "unscored"
MAX_TOKENS = llm_defaults.MAX_TOKENS   # default answer limit sent as max_tokens (a label is a line)
REPAIR_ECHO_CHARS = 2_000  # most of an unusable answer sent back in a repair request


@dataclass
class LabelOptions:
    """What ``saegold label`` makes (see ``saegold label --help``)."""

    methods: list[str] | None = None
    """Methods to run on every selected feature; None: route by category (``by_tier``)."""
    by_tier: bool = False
    """Route methods by each feature's category (setting ``label_routing``); needs scores."""
    source: str | None = None
    """Only features of this source (``MODEL/SOURCE``); None: every source."""
    features: list[int] | None = None
    """Only these feature indices (of ``source``); None: every feature."""
    redo: bool = False
    """Label (feature, method) pairs that already have a usable label again."""
    attempts: int = 3
    """Answers asked per (feature, method) at most before it counts as failed (at least 1)."""
    nla_source: str | None = None
    """Name of the stored NLA explanations the baez methods read."""
    temperature: float | None = 0.0
    """Sampling temperature sent to the labeler; None: not sent (the endpoint's default)."""
    activations: bool = True
    """eleuther_acts_top5 shows the 0-10 activation values."""
    max_tokens: int | None = MAX_TOKENS
    """Sent as ``max_tokens``; None: not sent."""


@dataclass
class Cost:
    calls: int = 0                 # label requests
    nla_calls: int = 0             # NLA explanation requests
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class LabelReport:
    dry_run: bool = False
    features: int = 0                                   # features selected
    planned: int = 0                                    # (feature, method) pairs to run
    labeled: int = 0                                    # pairs that got a usable label
    failed: int = 0                                     # pairs that ended without one
    failed_attempts: int = 0                            # failed attempts stored
    already_done: int = 0                               # pairs skipped: labeled before
    skipped: Counter = field(default_factory=Counter)   # "method: reason" -> pairs
    unscored: int = 0                                   # by tier: features without a category
    nla_source: str | None = None
    nla_stored: int = 0
    nla_failed: int = 0
    nla_token_mismatches: int = 0
    spent: dict[str, TagUsage] = field(default_factory=dict)    # category -> usage (labels + NLA)
    plan_estimate: Cost = field(default_factory=Cost)           # the routed plan, from scratch
    all_methods_estimate: Cost = field(default_factory=Cost)    # every feature x every method
    errors: Counter = field(default_factory=Counter)            # request failure -> times (5 kinds at most)

    def note_error(self, message: str) -> None:
        """Count a request failure; the same failure is one line however often it happens."""
        if message in self.errors or len(self.errors) < 5:
            self.errors[message] += 1

    @property
    def unfinished(self) -> int:
        """Planned work that ended without a result (labels and NLA explanations); a re-run
        retries exactly these.  Nonzero means exit status 1."""
        return 0 if self.dry_run else self.failed + self.nla_failed

    @property
    def total_spent(self) -> TagUsage:
        out = TagUsage()
        for u in self.spent.values():
            out.add(u)
        return out


@dataclass
class _Pair:
    row: dict
    method: Method
    category: str


def category_of(row: dict) -> str:
    return row.get("category") or UNSCORED


async def run_label_job(project: Project, client: LLMClient, opts: LabelOptions, *,
                        nla: NLAService | None = None, nla_client: LLMClient | None = None,
                        progress: Progress = null_progress) -> LabelReport:
    """Plan and run the labeling; see the module docstring."""
    if not opts.methods and not opts.by_tier:
        raise SaegoldError("say which labels to make: --methods M1,M2 or --by-tier")
    if opts.attempts < 1:
        raise SaegoldError(f"--attempts must be at least 1 (got {opts.attempts})")
    dry = client.dry_run
    report = LabelReport(dry_run=dry)
    table = routing_table(project) if opts.by_tier and not opts.methods else None
    rows = inputs.feature_rows(project, source=opts.source, indices=opts.features)
    _check_selection(project, opts, rows)
    report.features = len(rows)
    nla_name = resolve_nla_source(project, rows, opts, nla)
    report.nla_source = nla_name
    build_opts = BuildOptions(dry_run=dry, neutral_prompt=settings.load(project).neutral_prompt,
                              activations=opts.activations)
    done = set() if opts.redo else {
        (r["feature_id"], r["method"]) for r in project.query(
            "SELECT DISTINCT feature_id, method FROM labels WHERE status = 'ok' AND superseded_at IS NULL")}

    # -- plan, and estimate the cost of the plan and of everything --------------------------
    pairs: list[_Pair] = []
    nla_needed: dict[int, tuple[inputs.Example, str]] = {}
    progress("planning", 0, len(rows))
    for i, row in enumerate(rows, 1):
        category = category_of(row)
        if opts.methods:
            wanted = list(opts.methods)
        elif row.get("category") is None:
            report.unscored += 1
            wanted = []
        else:
            assert table is not None   # by tier, no --methods (checked above)
            wanted = table[row["category"]]
        data = inputs.load(project, row, nla_name)
        _estimate(report.all_methods_estimate, data, list(METHOD_NAMES), build_opts)
        _estimate(report.plan_estimate, data, wanted, build_opts)
        for name in wanted:
            method = METHODS[name]
            if (row["id"], name) in done:
                report.already_done += 1
                continue
            reason = method.missing(data, dry_run=True)
            if method.needs == "nla" and reason is None and not data.nla_complete():
                if nla is None:
                    reason = (f"NLA explanations for {sum(e.id in data.nla for e in data.examples)} of "
                              f"{len(data.examples)} examples (give --nla-url or --nla-jsonl)")
                else:
                    for ex in data.examples:
                        if ex.id not in data.nla:
                            nla_needed[ex.id] = (ex, category)
            if reason is not None:
                report.skipped[f"{name}: {reason}"] += 1
                continue
            pairs.append(_Pair(row, method, category))
        progress("planning", i, len(rows))
    report.planned = len(pairs)

    # -- NLA explanations --------------------------------------------------------------------
    if nla is not None and nla_needed:
        def nla_failed(ex: inputs.Example, exc: Exception) -> None:
            report.nla_failed += 1
            report.note_error(str(exc))

        report.nla_stored = await nla.fill(
            project, [ex for ex, _ in nla_needed.values()], progress=progress,
            tag_of=lambda ex: f"{nla_needed[ex.id][1]}/nla", on_error=nla_failed)
        report.nla_token_mismatches = nla.token_mismatches

    # -- labels ------------------------------------------------------------------------------
    params = {} if opts.temperature is None else {"temperature": opts.temperature}
    if opts.max_tokens is not None:
        params["max_tokens"] = opts.max_tokens
    finished = 0
    progress("labels", 0, len(pairs))

    def one_done() -> None:   # (``done`` above: the pairs labelled before this run)
        nonlocal finished
        finished += 1
        progress("labels", finished, len(pairs))

    try:
        await run_pool(pairs, lambda pair: _label_pair(project, client, pair, opts, build_opts, params,
                                                       nla_name, report),
                       workers=min(len(pairs), max(2, client.concurrency * 2)), done=one_done)
    finally:
        report.spent = _spent(client, nla_client)
    return report


async def _label_pair(project: Project, client: LLMClient, pair: _Pair, opts: LabelOptions,
                      build_opts: BuildOptions, params: dict, nla_name: str | None,
                      report: LabelReport) -> None:
    """Ask for one (feature, method) label, repairing bad answers; store every attempt."""
    row, method = pair.row, pair.method
    data = inputs.load(project, row, nla_name)
    if method.missing(data, dry_run=client.dry_run) is not None:  # NLA fetch failed meanwhile
        report.skipped[f"{method.name}: {method.missing(data)}"] += 1
        report.planned -= 1
        return
    messages = method.build(data, build_opts)
    tag = f"{pair.category}/{method.name}"
    details = {"category": row.get("category"), "routing": "forced" if opts.methods else "tier",
               "examples": [e.id for e in data.examples] if method.needs != "logits" else None,
               "nla_source": nla_name if method.needs == "nla" else None}
    for attempt in range(1, opts.attempts + 1):
        try:
            result = await client.chat(messages, tag=tag, **params)
        except LLMRequestFailed as exc:
            report.failed += 1
            report.note_error(str(exc))
            key = client.chat_key(messages, **params)
            if not client.dry_run:
                with project.write() as db:
                    add_label(db, row["id"], method.name, None, origin=ORIGIN, status="failed",
                              model=client.model, prompt_hash=key, error=str(exc),
                              details={**details, "attempt": attempt},
                              uuid=content_uuid(ORIGIN, row["id"], method.name, key, "request"))
            return
        if result.dry_run:  # not cached: counted by the client
            report.labeled += 1
            return
        if result.no_content:
            parsed = Parsed(None, f"the endpoint answered with no text (content null, finish_reason "
                                  f"{result.finish_reason or 'none'})")
        elif result.oversize is not None:
            parsed = Parsed(None, f"the answer is {result.oversize:,} characters long, over the limit "
                                  f"of {MAX_REPLY_CHARS:,} (stored cut to the limit)")
        else:
            parsed = parse_explanation(result.text, max_words=method.max_words)
        if not client.dry_run:
            # Same request + same answer = same row: cached re-runs add no duplicates, while a
            # fresh answer (--no-cache) is kept as a new candidate.  An answer with no text is
            # one row per attempt (it is never cached, so a re-run asks again).
            answer = result.text if result.text is not None else f"<no content, attempt {attempt}>"
            with project.write() as db:
                add_label(
                    db, row["id"], method.name, parsed.label, origin=ORIGIN,
                    status="ok" if parsed.label is not None else "failed", model=client.model,
                    prompt_hash=result.request_key, prompt_tokens=result.prompt_tokens,
                    completion_tokens=result.completion_tokens, raw_response=result.text,
                    error=parsed.error,
                    details={**details, "attempt": attempt, "cached": result.cached,
                             "finish_reason": result.finish_reason},
                    uuid=content_uuid(ORIGIN, row["id"], method.name, result.request_key, answer),
                )
        if parsed.label is not None:
            report.labeled += 1
            return
        report.failed_attempts += 1
        if result.text is None:
            continue  # nothing to repair: ask the same again (a reply with no text is not cached)
        messages = messages + [{"role": "assistant", "content": _echo(result.text)},
                               repair_message(method, parsed.error or "unusable answer")]
    report.failed += 1


def _echo(text: str) -> str:
    """An unusable answer as sent back in the repair request: never more than
    :data:`REPAIR_ECHO_CHARS` (a huge answer is not paid for twice)."""
    if len(text) <= REPAIR_ECHO_CHARS:
        return text
    return text[:REPAIR_ECHO_CHARS] + f"\n[... {len(text) - REPAIR_ECHO_CHARS:,} more characters cut]"


def _estimate(cost: Cost, data: inputs.FeatureData, names: list[str], opts: BuildOptions) -> None:
    """Add what labeling ``data`` with ``names`` costs from scratch (estimated tokens)."""
    dry = BuildOptions(dry_run=True, neutral_prompt=opts.neutral_prompt, activations=opts.activations)
    nla_counted = False
    for name in names:
        method = METHODS[name]
        if method.missing(data, dry_run=True) is not None:
            continue
        messages = method.build(data, dry)
        cost.calls += 1
        cost.prompt_tokens += sum(estimate_tokens(str(m["content"])) + 4 for m in messages)
        cost.completion_tokens += DRY_RUN_COMPLETION_TOKENS
        if method.needs == "nla" and not nla_counted:
            cost.nla_calls += len(data.examples)  # baez and baez_last share the explanations
            nla_counted = True


def _spent(client: LLMClient, nla_client: LLMClient | None) -> dict[str, TagUsage]:
    out: dict[str, TagUsage] = {}
    for c in (client, nla_client):
        if c is None:
            continue
        for category, usage in c.usage.grouped(lambda t: t.split("/")[0]).items():
            out.setdefault(category, TagUsage()).add(usage)
    return out


def resolve_nla_source(project: Project, rows: list[dict], opts: LabelOptions,
                       nla: NLAService | None) -> str | None:
    """The NLA explanations baez reads: the flag, the service's source, or the only one stored."""
    if opts.nla_source:
        return opts.nla_source
    if nla is not None:
        return nla.name
    stored = [r["nla_source"] for r in project.query("SELECT DISTINCT nla_source FROM nla_explanations")]
    if len(stored) > 1:
        wants_nla = any(METHODS[m].needs == "nla" for m in (opts.methods or METHOD_NAMES))
        if wants_nla:
            raise SaegoldError(f"the project holds NLA explanations from {len(stored)} sources "
                               f"({', '.join(sorted(stored))}); choose one with --nla-source")
        return None
    return stored[0] if stored else None


def _check_selection(project: Project, opts: LabelOptions, rows: list[dict]) -> None:
    if opts.source is not None and project.scalar("SELECT 1 FROM sources WHERE name = ?", [opts.source]) is None:
        known = [r["name"] for r in project.query("SELECT name FROM sources ORDER BY name")]
        raise SaegoldError(f"no source {opts.source!r} in the project"
                           + (f" (sources: {', '.join(known[:5])})" if known else ""))
    if opts.features is not None:
        check_stored(opts.features, {r["idx"] for r in rows}, opts.source)
        sources = {r["source"] for r in rows}
        if opts.source is None and len(sources) > 1:
            raise SaegoldError("--features matches features of several sources; add --source MODEL/SOURCE")


@dataclass
class Endpoint:
    """Where label requests (and NLA requests) go; see ``saegold label --help``."""

    base_url: str | None = None
    """OpenAI-compatible base URL of the labeler; None: OpenAI."""
    model: str = settings.DEFAULTS["llm_model"]
    """Model name sent with every label request."""
    api_key_env: str | None = settings.DEFAULTS["llm_api_key_env"]
    """NAME of the environment variable holding the API key; None: no key."""
    concurrency: int = llm_defaults.CONCURRENCY
    """Requests in flight at most."""
    timeout: float = llm_defaults.TIMEOUT_S
    """Seconds per request."""
    max_retries: int = llm_defaults.MAX_RETRIES
    """Retries on 429 / 5xx / timeouts / connection errors (:class:`engine.llm.retry.RetryPolicy`)."""
    dry_run: bool = False
    """Send nothing; count the calls and tokens a run would take."""
    read_cache: bool = True
    """Answer from the project's LLM cache where it holds the request; False: ask again."""
    nla_url: str | None = None
    """NLA explanation service, e.g. https://www.neuronpedia.org/api/nla; None: stored explanations only."""
    nla_model_id: str | None = None
    """Model id sent to the NLA service; None: the (single) SAE source's model id."""
    nla_source_id: str | None = None
    """NLA source id, e.g. kitft-l41; also names the stored explanations."""
    nla_key_env: str | None = "NEURONPEDIA_API_KEY"
    """NAME of the environment variable whose value is sent as x-api-key, when set."""
    nla_bos_offset: int = 1
    """Added to the position sent to the NLA service (1: the service prepends a BOS token)."""


def label(project: Project, opts: LabelOptions, endpoint: Endpoint, *,
          progress: Progress = null_progress, notify: Callable[[str], None] | None = None) -> LabelReport:
    """Build the clients for ``endpoint`` and run :func:`run_label_job` to the end
    (synchronous; used by ``saegold label`` and the demo)."""
    import os

    client = LLMClient(project, base_url=endpoint.base_url, model=endpoint.model,
                       api_key_env=endpoint.api_key_env, concurrency=endpoint.concurrency,
                       timeout=endpoint.timeout, max_retries=endpoint.max_retries,
                       dry_run=endpoint.dry_run, read_cache=endpoint.read_cache, notify=notify)
    nla_client = nla = None
    if endpoint.nla_url:
        source_id = opts.nla_source or endpoint.nla_source_id
        if not source_id:
            raise SaegoldError("an NLA service needs its NLA source id (--nla-source, e.g. kitft-l41)")
        model_id = endpoint.nla_model_id or _single_model(project, opts.source)
        key = os.environ.get(endpoint.nla_key_env, "").strip() if endpoint.nla_key_env else ""
        nla_client = LLMClient(project, base_url=endpoint.nla_url, model=f"nla:{model_id}/{source_id}",
                               api_key_env=None, concurrency=endpoint.concurrency,
                               timeout=endpoint.timeout, max_retries=endpoint.max_retries,
                               dry_run=endpoint.dry_run, read_cache=endpoint.read_cache,
                               extra_headers={"x-api-key": key} if key else None, notify=notify)
        nla = NLAService(nla_client, model_id=model_id, nla_source_id=source_id,
                         bos_offset=endpoint.nla_bos_offset)

    async def go() -> LabelReport:
        try:
            return await run_label_job(project, client, opts, nla=nla, nla_client=nla_client,
                                       progress=progress)
        finally:
            await client.aclose()
            if nla_client is not None:
                await nla_client.aclose()

    return asyncio.run(go())


def _single_model(project: Project, source: str | None) -> str:
    rows = project.query("SELECT DISTINCT model_id FROM sources" + (" WHERE name = ?" if source else ""),
                         [source] if source else [])
    if len(rows) != 1:
        raise SaegoldError("cannot tell which model the NLA service should explain; pass --nla-model")
    return rows[0]["model_id"]
