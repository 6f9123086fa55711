"""The ``saegold bench`` job: every label x benchmark x control, resumable, seeded.

For each usable label (status ok, non-empty text) and each benchmark, two results are made:
``control='true'`` judges the label itself; ``control='shuffled'`` judges the label of another
random feature made by the same method (``scored_label_id``), on the *same* examples.  Each
result is written in its own transaction as soon as it completes, so an interrupted run keeps
everything finished; a re-run skips stored results unless ``redo``.  Judge calls go through the
shared LLM client (cache, concurrency limit, retries, cost accounting, dry run).
"""
from __future__ import annotations

import asyncio
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from saegold.engine.llm import defaults as llm_defaults
from saegold.engine.llm.aio import run_pool
from saegold.engine.llm.errors import LLMRequestFailed
from saegold.engine.progress import Progress, null_progress
from saegold.store.db import Project
from saegold.store.errors import SaegoldError

from . import BENCHMARKS, JUDGED, prompts, results, scorers
from . import intruder as intruder_mod
from . import steering as steering_bench
from .embedders import ApiEmbedder, Embedder
from .examples import (DEFAULT_N_POSITIVES, DEFAULT_SAMPLER, EXAMPLE_BENCHMARKS, HIGHLIGHT_THRESHOLD,
                       SAMPLERS, ExampleSelector, stored_sampler)
from .rng import rng_for

CONTROLS = ("true", "shuffled")


@dataclass
class BenchConfig:
    """What ``saegold bench`` scores and how (see ``saegold bench --help``)."""

    benchmarks: tuple[str, ...] = BENCHMARKS
    """Label benchmarks to run, and/or ``intruder`` (per feature, no label)."""
    methods: list[str] | None = None
    """Only labels of these methods; None: every method."""
    feature_ids: list[int] | None = None
    """Only these stored feature ids; None: every feature."""
    seed: int = 0
    """Seed of every random choice (examples, shuffled controls, intruders)."""
    sampler: str = DEFAULT_SAMPLER
    """How positives are drawn: ``quantiles`` | ``top`` | ``random`` (:mod:`engine.bench.examples`)."""
    n_positives: int = DEFAULT_N_POSITIVES
    """Positives per feature."""
    positive_ranks: tuple[int, int] | None = None
    """The ``top`` sampler's 1-based ranks; None: 6 .. 5 + ``n_positives``."""
    negatives: str = "scoring"
    """Where negatives come from: ``scoring`` | ``other-features`` | ``hard``."""
    n_negatives: int | None = None
    """Negatives per feature; None: as many as positives."""
    batch_size: int = prompts.BATCH_SIZE
    """Examples per judge request (detection, fuzzing)."""
    highlight_threshold: float = HIGHLIGHT_THRESHOLD
    """Fuzzing: tokens at or above this times the example's max activation are its true highlights."""
    temperature: float | None = 0.0
    """Judge sampling temperature; None: not sent."""
    max_tokens: int | None = llm_defaults.MAX_TOKENS
    """Judge answer limit, sent as ``max_tokens``; None: not sent."""
    redo: bool = False
    """Score again results that are already stored."""
    dry_run: bool = False
    """Send nothing and store nothing; count the requests and tokens (the client must agree)."""
    workers: int = 8
    """Results worked on at once (the calls in flight are limited by the client)."""
    intruder_k: int = intruder_mod.DEFAULT_K
    """Intruder: the feature's examples per round, besides the intruder (chance 1/(k+1))."""
    intruder_rounds: int = intruder_mod.DEFAULT_ROUNDS
    """Intruder: rounds per feature."""

    def __post_init__(self) -> None:
        unknown = [b for b in self.benchmarks if b not in BENCHMARKS + ("intruder",)]
        if unknown or not self.benchmarks:
            raise SaegoldError(f"--benchmarks: unknown {', '.join(unknown) or '(none given)'}; "
                               f"expected some of {', '.join(BENCHMARKS + ('intruder',))}")
        if self.intruder_k < 1 or self.intruder_rounds < 1:
            raise SaegoldError("--intruder-k and --intruder-rounds must be at least 1")
        if self.batch_size < 1:
            raise SaegoldError("--batch-size must be at least 1")
        if self.sampler not in SAMPLERS:
            raise SaegoldError(f"--sampler {self.sampler!r}: expected one of {', '.join(SAMPLERS)}")
        if self.positive_ranks is not None and self.sampler != "top":
            raise SaegoldError("--positive-ranks goes with --sampler top")


@dataclass
class BenchSummary:
    jobs: int = 0                              # results attempted this run
    written: Counter = field(default_factory=Counter)   # benchmark -> rows stored
    already_done: int = 0
    no_examples: int = 0                       # results skipped: feature without positives or negatives
    no_positives: int = 0                      #   ... of which: no held-out positives
    no_sample: int = 0                         #     ... of which: no quantile examples stored at all
    no_negatives: int = 0                      #   ... of which: no negatives (no_sample ones apart)
    no_control: int = 0                        # labels whose method has no label on another feature
    no_intruder: int = 0                       # intruder: features without k quantile examples or another feature
    no_steering: int = 0                       # steering results skipped: the feature has no steered
                                               #   continuations with two other features' at its targets
    parse_failures: int = 0
    unscored: int = 0                          # rows stored with value NULL
    labels: int = 0
    failed: int = 0                            # results left unstored: a request failed for good
    first_error: str | None = None


@dataclass(frozen=True)
class LabelRow:
    id: int
    uuid: str
    feature_id: int
    method: str
    text: str
    feature: str        # stable feature name, MODEL/SOURCE#IDX


def usable_labels(project: Project, methods: list[str] | None = None,
                  feature_ids: list[int] | None = None) -> list[LabelRow]:
    where, params = ["l.status = 'ok'", "l.superseded_at IS NULL", "l.text IS NOT NULL", "trim(l.text) != ''"], []
    if methods:
        where.append(f"l.method IN ({','.join('?' * len(methods))})")
        params += list(methods)
    rows = project.query(
        "SELECT l.id, l.uuid, l.feature_id, l.method, l.text, s.name || '#' || f.idx AS feature "
        "FROM labels l JOIN features f ON f.id = l.feature_id JOIN sources s ON s.id = f.source_id "
        f"WHERE {' AND '.join(where)} ORDER BY l.feature_id, l.method, l.id", params)
    if feature_ids is not None:
        wanted = set(feature_ids)
        rows = [r for r in rows if r["feature_id"] in wanted]
    return [LabelRow(**r) for r in rows]


class ShuffledLabels:
    """Seeded choice of a control label: same method, another feature, different text.

    Keyed by content (feature name, method, text), not by database ids, so the same seed
    picks the same control in any copy of the project."""

    def __init__(self, project: Project, seed: int):
        self.seed = seed
        self.pools: dict[str, list[LabelRow]] = {}
        for row in usable_labels(project):
            self.pools.setdefault(row.method, []).append(row)
        for pool in self.pools.values():
            pool.sort(key=lambda r: (r.feature, r.text, r.uuid))

    def pick(self, label: LabelRow) -> LabelRow | None:
        pool = self.pools.get(label.method, [])
        rng = rng_for(self.seed, "shuffled", label.feature, label.method, label.text)

        def fits(c: LabelRow) -> bool:
            return c.feature_id != label.feature_id and c.text.strip().lower() != label.text.strip().lower()

        for _ in range(64):  # rejection sampling keeps big pools O(1) per label
            if not pool:
                return None
            c = pool[int(rng.integers(len(pool)))]
            if fits(c):
                return c
        fitting = [c for c in pool if fits(c)]
        return fitting[int(rng.integers(len(fitting)))] if fitting else None


class _LabelJob(NamedTuple):
    """Score one label (or its shuffled control: ``scored``) on one benchmark."""
    label: LabelRow
    benchmark: str
    control: str
    scored: LabelRow


class _IntruderJob(NamedTuple):
    """Run the intruder rounds of one feature (a feature benchmark, no label)."""
    feature_id: int


class _Lru(OrderedDict):
    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def put(self, key: Any, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


async def run_bench(project: Project, config: BenchConfig, *, client: Any = None,
                    embedder: Embedder | None = None, judge_model: str | None = None,
                    progress: Progress = null_progress) -> BenchSummary:
    """Score every selected label on ``config.benchmarks`` (with shuffled controls)."""
    judged = [b for b in config.benchmarks if b in JUDGED or b == "intruder"]
    label_benchmarks = tuple(b for b in config.benchmarks if b != "intruder")
    if judged and client is None:
        raise SaegoldError(f"{', '.join(judged)} need an LLM judge (--model / --base-url)")
    if client is not None and bool(getattr(client, "dry_run", False)) != config.dry_run:
        raise ValueError("BenchConfig.dry_run and the LLM client's dry_run must agree")
    if "embedding" in config.benchmarks and embedder is None:
        raise SaegoldError("embedding needs --embedding-model (an endpoint model name or a local directory)")

    judge_params = {} if config.temperature is None else {"temperature": config.temperature}
    if config.max_tokens is not None:
        judge_params["max_tokens"] = config.max_tokens
    labels = usable_labels(project, config.methods, config.feature_ids)
    shuffled = ShuffledLabels(project, config.seed)
    selector = ExampleSelector(project, seed=config.seed, sampler=config.sampler, n_positives=config.n_positives,
                               positive_ranks=config.positive_ranks,
                               negatives=config.negatives, n_negatives=config.n_negatives,
                               highlight_threshold=config.highlight_threshold)
    steer_sets = steering_bench.SteeringSets(project, config.seed) if "steering" in config.benchmarks else None
    stored = {} if config.redo else results.stored_runs(project, label_benchmarks)
    # A result drawn with another sampler is not this run's: it is made again (replaced), so
    # the stored results of a benchmark never mix samplers silently.
    stored = {k: v for k, v in stored.items()
              if k[1] not in EXAMPLE_BENCHMARKS or stored_sampler(v[2]) == config.sampler}
    summary = BenchSummary(labels=len(labels))

    def plan(count: bool) -> Iterator[_LabelJob | _IntruderJob]:
        """Jobs, lazily: big projects have millions.

        A stored result is kept, except that when this run completes a half-done pair (true
        label and shuffled control) it redoes the stored half too if that was made with another
        seed, judge or example selection: the pair's gap must compare the same examples."""
        for label in labels:
            control_label = shuffled.pick(label)
            for benchmark in label_benchmarks:
                made_with = (config.seed, embedder.name if benchmark == "embedding" and embedder is not None
                             else judge_model,
                             steer_sets.settings if benchmark == "steering" and steer_sets is not None
                             else selector.settings)
                to_make = [c for c in CONTROLS if (label.id, benchmark, c) not in stored
                           and (c == "true" or control_label is not None)]
                for control in CONTROLS:
                    key = (label.id, benchmark, control)
                    if key in stored and (not to_make or stored[key] == made_with):
                        summary.already_done += count
                        continue
                    scored = label if control == "true" else control_label
                    if scored is None:
                        summary.no_control += count
                        continue
                    yield _LabelJob(label, benchmark, control, scored)
        if intruders is not None:
            done = {} if config.redo else intruder_mod.stored(project)
            for fid in intruder_features:
                if fid in done and done[fid] == (config.seed, judge_model, intruders.settings):
                    summary.already_done += count
                    continue
                yield _IntruderJob(fid)

    intruders = (intruder_mod.IntruderRounds(project, seed=config.seed, k=config.intruder_k,
                                             rounds=config.intruder_rounds)
                 if "intruder" in config.benchmarks else None)
    intruder_features = []
    if intruders is not None:
        intruder_features = [r["id"] for r in project.query(
            "SELECT f.id FROM features f WHERE EXISTS (SELECT 1 FROM examples e WHERE e.feature_id = f.id "
            "AND e.kind = 'quantile') ORDER BY f.id")]
        if config.feature_ids is not None:
            wanted = set(config.feature_ids)
            intruder_features = [f for f in intruder_features if f in wanted]
    total = sum(1 for _ in plan(True))
    summary.jobs = total
    stage = "bench (dry run)" if config.dry_run else "bench"
    progress(stage, 0, total)

    vectors: _Lru = _Lru(256)   # feature id -> task embedding that feature's examples
    pending = plan(False)
    finished = 0

    async def example_vectors(feature_id: int, examples) -> np.ndarray:
        task = vectors.get(feature_id)
        if task is None:
            assert embedder is not None   # checked above when embedding is benchmarked
            task = asyncio.ensure_future(scorers.example_vectors(embedder, examples))
            vectors.put(feature_id, task)
        return await task

    def failed(exc: LLMRequestFailed) -> None:
        summary.failed += 1
        summary.first_error = summary.first_error or str(exc)

    def counted(benchmark: str, score: Any) -> None:
        """A stored result of ``benchmark`` in the run's summary."""
        summary.written[benchmark] += 1
        summary.parse_failures += score.parse_failures
        summary.unscored += score.value is None

    async def work_steering(label: LabelRow, control: str, scored: LabelRow) -> None:
        assert steer_sets is not None   # made when steering is benchmarked
        other = shuffled.pick(label)
        triples = steer_sets.triples(label.feature_id, avoid=other.feature_id if other else None)
        if not triples:
            summary.no_steering += 1
            return
        try:
            score = await steering_bench.judge(client, scored.text, triples, steer_sets, params=judge_params)
        except LLMRequestFailed as exc:
            failed(exc)
            return
        if config.dry_run:
            return
        results.write(project, results.BenchRow(
            label.id, "steering", control, scored.id, score.value, score.n, score.parse_failures,
            judge_model, config.seed, score.details))
        counted("steering", score)

    async def work_intruder(feature_id: int) -> None:
        assert intruders is not None    # made when intruder is benchmarked
        rounds = intruders.for_feature(feature_id)
        if not rounds:
            summary.no_intruder += 1
            return
        try:
            score = await intruder_mod.judge(client, rounds, intruders.settings, params=judge_params)
        except LLMRequestFailed as exc:
            failed(exc)
            return
        if config.dry_run:
            return
        intruder_mod.write(project, feature_id, score, judge_model, config.seed)
        counted("intruder", score)

    async def work_one(label: LabelRow, benchmark: str, control: str, scored: LabelRow) -> None:
        if benchmark == "steering":
            return await work_steering(label, control, scored)
        examples = selector.for_feature(label.feature_id)
        if not examples.usable():
            summary.no_examples += 1
            summary.no_positives += examples.n_positive == 0
            no_sample = examples.n_positive == 0 and config.sampler != "top" and not project.scalar(
                "SELECT 1 FROM examples WHERE feature_id = ? AND kind = 'quantile' LIMIT 1", [label.feature_id])
            summary.no_sample += no_sample
            summary.no_negatives += examples.n_negative == 0 and not no_sample   # reported apart
            return
        if config.dry_run:
            await _dry_run(benchmark, scored.text, examples)
            return
        model: str | None     # the embedding model, or the judge
        try:
            if benchmark == "embedding":
                assert embedder is not None   # checked above
                score = await scorers.embedding(embedder, scored.text, examples,
                                                await example_vectors(label.feature_id, examples))
                model = embedder.name
            else:
                score = await scorers.judge(client, benchmark, scored.text, examples,
                                            batch_size=config.batch_size, params=judge_params)
                model = judge_model
        except LLMRequestFailed as exc:
            failed(exc)      # incomplete: nothing stored, so a re-run tries again (answers so far are cached)
            return
        results.write(project, results.BenchRow(
            label.id, benchmark, control, scored.id, score.value, score.n, score.parse_failures,
            model, config.seed, score.details))
        counted(benchmark, score)

    async def _dry_run(benchmark: str, text: str, examples) -> None:
        """Ask the client in dry-run mode, which counts what would be sent (cache hits free)."""
        if benchmark == "embedding":
            if isinstance(embedder, ApiEmbedder):
                await embedder.client.embed([text] + [e.text() for e in examples.examples],
                                            model=embedder.name, tag=embedder.tag)
            return
        await scorers.judge(client, benchmark, text, examples, batch_size=config.batch_size, params=judge_params)

    def work(job: _LabelJob | _IntruderJob) -> Awaitable[None]:
        if isinstance(job, _IntruderJob):
            return work_intruder(job.feature_id)
        return work_one(*job)

    def done() -> None:
        nonlocal finished
        finished += 1
        progress(stage, finished, total)

    try:
        await run_pool(pending, work, workers=max(1, min(config.workers, total)), done=done)
    finally:
        for task in vectors.values():
            task.cancel()
    return summary
