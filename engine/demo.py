"""Build the offline demo project with the real pipeline.

1. the planted-feature model and SAE (:mod:`engine.planted`, real transformers / sae-lens
   files) are built and saved next to the project;
2. the real score job scores every feature on the bundled demo corpus, with steered
   continuations at KL targets the planted model can reach (:data:`engine.planted.STEERING_TARGETS`);
3. the real label job labels them through a **demo stand-in** OpenAI-compatible server on
   127.0.0.1 (:class:`engine.llm.standin_server.StandinServer`), whose answers come from
   rule-based responders (:mod:`engine.llm.demo_responder`, :mod:`engine.bench.demo_judge`)
   and NOT from a language model;
4. the real bench job scores the labels (detection, fuzzing, embedding, with shuffled
   controls) against the same stand-in.

Nothing leaves the machine.  The stand-in's labels and benchmark figures demonstrate the
mechanics only; they measure nothing.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from saegold.store.db import Project

from .progress import Progress, null_progress

STANDIN_MODEL = "demo-standin (rule-based, not an LLM)"
STANDIN_EMBED = "demo-standin-embedding"
STANDIN_NLA = "demo-standin-nla"


@dataclass
class DemoReport:
    features: int = 0
    categories: dict[str, int] = field(default_factory=dict)
    labels: int = 0
    bench_rows: int = 0
    steps: list[str] = field(default_factory=list)  # what was done, or why a step was left out


def _chat(request: dict[str, Any]) -> str:
    """The stand-in's chat answer: a judge answer for bench prompts, else a label answer."""
    from saegold.engine.bench.demo_judge import demo_judge_answer
    from saegold.engine.llm.demo_responder import demo_label_answer

    return demo_judge_answer(request) or demo_label_answer(request)


LIBRARIES = ("torch", "transformers", "sae_lens")
LIBRARIES_STAGE = "load torch, transformers, sae-lens"


def load_libraries(progress: Progress = null_progress) -> None:
    """Import the model libraries one by one, reporting each (they are the slow part of a cold
    start, before any other step can report anything)."""
    import importlib

    for i, name in enumerate(LIBRARIES):
        progress(LIBRARIES_STAGE, i, len(LIBRARIES))
        importlib.import_module(name)
    progress(LIBRARIES_STAGE, len(LIBRARIES), len(LIBRARIES))


def build_demo(project: Project, workdir: str | Path, *, progress: Progress = null_progress,
               seed: int = 0, max_contexts: int | None = None) -> DemoReport:
    """Fill ``project`` with the demo: planted model -> score -> label -> bench.

    ``max_contexts`` caps the corpus contexts scored (tests use a small number).  Every step
    reports progress, the first before the model libraries are imported (on a cold start that
    import alone can take most of a minute)."""
    load_libraries(progress)
    from saegold.engine.planted import STEERING_PROMPTS, STEERING_TARGETS, build_planted, demo_corpus_path
    from saegold.engine.scoring.job import score
    from saegold.store import settings

    report = DemoReport()
    workdir = Path(workdir)
    model_dir, sae_dir, expected = build_planted(workdir, seed=seed, progress=progress)
    report.steps.append(f"planted model + SAE ({len(expected)} planted features) in {workdir}")

    settings.set(project, "steering_targets", STEERING_TARGETS)
    settings.set(project, "steering_prompts", STEERING_PROMPTS)
    scored = score(project, model=str(model_dir), sae=str(sae_dir), corpus=str(demo_corpus_path()),
                   device="cpu", seed=seed, max_contexts=max_contexts, progress=progress)
    report.steps.append(f"scored {scored.features} features on the bundled demo corpus "
                        f"({scored.n_contexts} contexts)")

    from saegold.engine.bench.demo_judge import demo_embed
    from saegold.engine.llm.demo_responder import demo_nla_explanation
    from saegold.engine.llm.standin_server import StandinServer

    with StandinServer(_chat, demo_embed, demo_nla_explanation) as server:
        report.steps.append(f"demo stand-in LLM server (rule-based, NOT a model) on {server.root_url}")
        _label(project, server, progress)
        _bench(project, server, progress, seed)

    report.features = project.scalar("SELECT COUNT(*) FROM features")
    report.categories = {r["c"] or "unscored": r["n"] for r in project.query(
        "SELECT t.category c, COUNT(*) n FROM features f LEFT JOIN taxonomy_scores t ON t.feature_id = f.id "
        "GROUP BY t.category ORDER BY t.category")}
    report.labels = project.scalar("SELECT COUNT(*) FROM labels WHERE status = 'ok' AND superseded_at IS NULL")
    report.bench_rows = project.scalar("SELECT COUNT(*) FROM bench_scores")
    return report


def _label(project: Project, server: Any, progress: Progress) -> None:
    from saegold.engine.labeling.job import Endpoint, LabelOptions, label

    endpoint = Endpoint(base_url=server.base_url, model=STANDIN_MODEL, api_key_env=None,
                        nla_url=server.nla_url, nla_source_id=STANDIN_NLA, nla_key_env=None)
    label(project, LabelOptions(by_tier=True), endpoint, progress=progress)


def _bench(project: Project, server: Any, progress: Progress, seed: int) -> None:
    from saegold.engine.bench.embedders import ApiEmbedder
    from saegold.engine.bench.job import BenchConfig, run_bench
    from saegold.engine.llm.client import LLMClient

    async def go() -> None:
        client = LLMClient(project, base_url=server.base_url, model=STANDIN_MODEL, api_key_env=None)
        try:
            # Other features' top examples as negatives (as the 2026 experiment did): the
            # planted model's dense features never stay silent, so they have no scoring-pass
            # negatives, and the demo should show scores for every category.
            # The label-free intruder benchmark too (per feature), answered by the stand-in.
            from saegold.engine.bench import BENCHMARKS

            config = BenchConfig(seed=seed, negatives="other-features", benchmarks=BENCHMARKS + ("intruder",))
            await run_bench(project, config, client=client,
                            embedder=ApiEmbedder(client, STANDIN_EMBED), judge_model=STANDIN_MODEL,
                            progress=progress)
        finally:
            await client.aclose()

    asyncio.run(go())
