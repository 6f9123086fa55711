"""``saegold bench``: score labels on detection / fuzzing / embedding / steering, or print the report."""
from __future__ import annotations

import argparse
import json
import sys

from rich.text import Text

from saegold.store.errors import SaegoldError
from saegold.store.feature_spec import parse_feature_spec, stored_feature_ids

from ..cli_args import add_endpoint_args, parse_temperature
from ..safe import inert, inert_line

SAMPLERS = ("quantiles", "top", "random")   # engine.bench.examples.SAMPLERS (not imported: light --help)

DESCRIPTION = """\
Score every usable label on the benchmarks (detection, fuzzing: an LLM judge answers 1/0 per
example in batches of 5; embedding: AUROC of label-example cosine similarity; steering: at each
target KL the judge picks which of three sets of steered continuations -- the feature's own
and two other features', in a seeded order -- the label describes, chance 1/3), each with a
shuffled-label control (the label of another random feature, same method, same examples).
Positives are held-out activating examples (never the top 5 the labelers saw), drawn by
--sampler: quantiles (default, as Delphi: equally from the 10 activation-quantile bins that
`saegold score` keeps, so weak activations count too), top (top ranks 6-25: the strongest
only) or random (uniformly from the activating sample); 20 by default (--n-positives).
Negatives: the scoring pass's non-activating contexts (or --negatives other-features), as
many as positives.  Every stored result records its sampler; a run with another sampler
replaces a result instead of keeping it, and the report shows each sampler apart.
Results are written as they complete; a re-run skips finished ones (--redo to redo), and
judge answers are cached, so re-running sends no requests. Seeded: --seed reproduces a run.
Exit status: 0 done; 1 finished but some results were not stored because a request failed
for good (a re-run retries them); 2 an error, one line, nothing stored; 130 interrupted.

  saegold bench --benchmarks detection,fuzzing,embedding,steering --model gpt-4o-mini \\
                --embedding-model text-embedding-3-small
  saegold bench --report            # method x benchmark table (and by category)
  saegold bench --report --json"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmark labels (detection, fuzzing, embedding, steering) or report",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--report", action="store_true", help="print the report of stored results instead of scoring")
    p.add_argument("--json", action="store_true", help="with --report: the same data as JSON")
    p.add_argument("--benchmarks",
                   help="comma-separated subset of detection,fuzzing,embedding,steering,intruder (intruder: per "
                        "feature, no label: name the one example of another feature among k of this one) "
                        "(default: detection, "
                        "fuzzing, embedding when --embedding-model is given, steering when the project holds "
                        "steered continuations from `saegold score`)")
    p.add_argument("--methods", help="comma-separated label methods to score (default: every method)")
    p.add_argument("--source", help="only features of this source (MODEL/SOURCE)")
    p.add_argument("--features", help="only these feature indices and inclusive ranges, e.g. 3,17,40-49, "
                                      "each stored (for --source) (default: all)")
    add_endpoint_args(p, role="judge")
    p.add_argument("--embedding-model", help="embedding model at the endpoint, or a local "
                                             "sentence-transformers model directory (./dir, /dir, ~/dir: "
                                             "must exist)")
    p.add_argument("--negatives", choices=("scoring", "other-features", "hard"), default="scoring",
                   help="non-activating examples: the scoring pass's random ones (default); other features' "
                        "top examples (checked silent by the model where `saegold score` ran, else "
                        "unverified); hard: the decoder-nearest features' top contexts where this one is silent")
    p.add_argument("--n-negatives", type=int, help="negatives per feature (default: as many as positives)")
    p.add_argument("--sampler", choices=SAMPLERS, default="quantiles",
                   help="how positives are drawn: quantiles (default: equally from 10 activation-quantile "
                        "bins), top (top ranks 6-25), random (uniform over activating contexts)")
    p.add_argument("--n-positives", type=int, default=20, help="positives per feature (default 20)")
    p.add_argument("--positive-ranks",
                   help="with --sampler top: 1-based ranks of the top examples used as positives "
                        "(default 6 to 5 + --n-positives)")
    p.add_argument("--batch-size", type=int, default=5, help="examples per judge request (default 5)")
    p.add_argument("--intruder-k", type=int, default=4,
                   help="intruder: the feature's examples per round, besides the intruder (default 4; chance 1/(k+1))")
    p.add_argument("--intruder-rounds", type=int, default=5, help="intruder: rounds per feature (default 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    p.add_argument("--dry-run", action="store_true",
                   help="send nothing and store nothing; count the requests and tokens a run would need")
    p.add_argument("--redo", action="store_true", help="score again results that are already stored")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from saegold.store.db import open_project

    with open_project(args.db, readonly=args.report) as project:
        if args.report:
            given = [flag for flag, value in (("--source", args.source), ("--methods", args.methods),
                                              ("--features", args.features),
                                              ("--benchmarks", args.benchmarks)) if value]
            if given:  # the report covers every stored result: a silently ignored filter misleads
                raise SaegoldError(f"{', '.join(given)}: not used by --report, which reports every "
                                   "stored result (filter the --json output instead)")
            return _report(project, as_json=args.json)
        if args.json:
            raise SaegoldError("--json goes with --report")
        return _score(project, args)


# -- scoring -------------------------------------------------------------------------------
def _csv(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def parse_features(project, spec: str | None, source: str | None = None) -> list[int] | None:
    """Feature ids named by indices and ranges (``3,17,40-49``), each stored for ``source``
    (for some source when None); None (every feature) when neither is given."""
    wanted = parse_feature_spec(spec) if spec is not None else None
    if source and not project.scalar("SELECT 1 FROM sources WHERE name = ?", [source]):
        raise SaegoldError(f"--source {source!r}: no such source in this project")
    if wanted is None:
        if not source:
            return None
        return [r["id"] for r in project.query(
            "SELECT f.id FROM features f JOIN sources s ON s.id = f.source_id WHERE s.name = ?", [source])]
    return stored_feature_ids(project, wanted, source)


def _score(project, args: argparse.Namespace) -> int:
    import asyncio

    from saegold.engine.bench.embedders import make_embedder
    from saegold.engine.bench.examples import parse_ranks
    from saegold.engine.bench.job import BenchConfig, run_bench
    from saegold.engine.llm.client import LLMClient
    from saegold.store import settings

    from ..progress import progress_bars

    config = BenchConfig(
        benchmarks=tuple(_csv(args.benchmarks) or ("detection", "fuzzing")
                         + (("embedding",) if args.embedding_model else ())
                         + (("steering",) if project.scalar("SELECT 1 FROM steering LIMIT 1") else ())),
        methods=_csv(args.methods),
        feature_ids=parse_features(project, args.features, args.source),
        seed=args.seed, sampler=args.sampler, n_positives=args.n_positives,
        positive_ranks=parse_ranks(args.positive_ranks) if args.positive_ranks else None, negatives=args.negatives,
        n_negatives=args.n_negatives, batch_size=args.batch_size, redo=args.redo, dry_run=args.dry_run,
        temperature=parse_temperature(args.temperature), max_tokens=args.max_tokens or None,
        intruder_k=args.intruder_k, intruder_rounds=args.intruder_rounds,
        workers=max(2, args.concurrency),
    )
    if config.methods:
        known = sorted(r["method"] for r in project.query("SELECT DISTINCT method FROM labels"))
        unknown = [m for m in config.methods if m not in known]
        if unknown:
            raise SaegoldError(f"--methods: no labels by {unknown[0]!r} in this project "
                               f"(methods: {', '.join(known) or 'none yet'})")
    if "embedding" in config.benchmarks and not args.embedding_model:
        raise SaegoldError("the embedding benchmark needs --embedding-model (an endpoint model name or a "
                           "local sentence-transformers directory); or leave it out of --benchmarks")
    if args.n_negatives is not None and args.n_negatives < 1:
        raise SaegoldError("--n-negatives must be at least 1")
    cfg = settings.load(project)
    base_url = args.base_url or cfg.llm_base_url
    model = args.model or cfg.llm_model
    key_env = args.api_key_env or cfg.llm_api_key_env

    async def go():
        embedder = None
        with progress_bars() as progress:
            client = LLMClient(project, base_url=base_url, model=model, api_key_env=key_env,
                               concurrency=args.concurrency, timeout=args.timeout,
                               max_retries=args.max_retries, dry_run=args.dry_run, notify=progress.note)
            try:
                embedder = make_embedder(args.embedding_model, client) if args.embedding_model else None
                summary = await run_bench(project, config, client=client, embedder=embedder,
                                          judge_model=model, progress=progress)
                return summary, client.usage
            finally:
                await client.aclose()

    summary, usage = asyncio.run(go())
    _print_summary(summary, usage, config)
    return 1 if summary.failed else 0  # requests failed for good: scripts notice; a re-run retries


def _print_summary(summary, usage, config) -> None:
    out = []
    if config.dry_run:
        t = usage.total
        out.append(f"dry run: {summary.jobs} results to score; would send {t.est_calls} requests "
                   f"(~{t.est_prompt_tokens} prompt + ~{t.est_completion_tokens} completion tokens); "
                   f"{t.cache_hits} answers already cached; nothing stored")
    else:
        written = ", ".join(f"{b} {summary.written[b]}" for b in config.benchmarks)
        out.append(f"stored {sum(summary.written.values())} results ({written}) for {summary.labels} labels, "
                   f"seed {config.seed}")
        if summary.parse_failures:
            out.append(f"  {summary.parse_failures} examples got no parseable judge answer "
                       f"(stored, left out of the scores)")
        if summary.unscored:
            out.append(f"  {summary.unscored} results have no value (no example could be scored)")
        t = usage.total
        out.append(f"  LLM: {t.calls} requests sent ({t.retries} retries), {t.cache_hits} cache hits, "
                   f"{t.prompt_tokens} prompt + {t.completion_tokens} completion tokens")
    if summary.already_done:
        out.append(f"  {summary.already_done} results already stored were skipped (--redo to redo)")
    if summary.no_examples:
        if config.sampler == "top":
            first, last = config.positive_ranks or (6, 5 + config.n_positives)
            where = f"top ranks {first}-{last}"
        else:
            where = f"sampler {config.sampler}"
        if summary.no_sample:   # one line of its own: the usual cause on an old project, never a silent fall-back
            out.append(f"  {summary.no_sample} results skipped: their feature has no quantile examples for "
                       f"--sampler {config.sampler} (scored before they existed, or imported): re-score "
                       "(`saegold score --redo`, or `saegold score --from-stored` for imports) or use --sampler top")
        rest = summary.no_examples - summary.no_sample
        if rest:
            out.append(f"  {rest} results skipped: {summary.no_positives - summary.no_sample} lack held-out "
                       f"positives ({where}), {summary.no_negatives} lack negatives")
        if summary.no_negatives and config.negatives == "scoring":
            out.append("    (features that fire almost everywhere, or imported ones, have no scoring-pass "
                       "negatives: --negatives other-features takes other features' top examples)")
    if summary.no_intruder:
        out.append(f"  {summary.no_intruder} intruder results skipped: the feature has fewer than "
                   f"{config.intruder_k} quantile examples, or no other feature has any")
    if summary.no_steering:
        out.append(f"  {summary.no_steering} steering results skipped: the feature has no steered continuations "
                   "(run `saegold score` on its model), or no two other features have them at its targets")
    if summary.no_control:
        out.append(f"  {summary.no_control} shuffled controls skipped: no other feature has a label of that method")
    if summary.failed:
        out.append(f"  {summary.failed} results not stored: a request failed for good "
                   f"(the first error is on stderr); run again to retry")
    for line in out:
        print(inert_line(line))
    if summary.failed and summary.first_error:
        print(f"saegold: {inert_line(summary.first_error)}", file=sys.stderr)


# -- report --------------------------------------------------------------------------------
def _fmt(v: float | None, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _ci(row: dict, prefix: str = "") -> str:
    mean, lo, hi = row[f"{prefix}mean"], row[f"{prefix}ci_low"], row[f"{prefix}ci_high"]
    if mean is None:
        return "-"
    if lo is None:
        return f"{_fmt(mean)}"
    return f"{_fmt(mean)} [{_fmt(lo)}, {_fmt(hi)}]"


def _gap(row: dict) -> str:
    text = _ci(row, "gap_")
    if row["gap_ci_low"] is not None and row["gap_ci_low"] <= 0 <= row["gap_ci_high"]:
        text += " ~0"
    return text


def _table(title: str, rows: list[dict], with_category: bool):
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    if with_category:
        table.add_column("category", overflow="fold")
    for name in ("method", "benchmark", "sampler", "negatives"):
        table.add_column(name, overflow="fold")      # names are never cut short
    for name in ("n", "mean [95% CI]", "chance", "shuffled", "true - shuffled [95% CI]", "label CI width",
                 "parse fail"):
        table.add_column(name, justify="right")
    for r in rows:
        cells = [inert(r["category"])] if with_category else []
        cells += [inert(r["method"]), inert(r["benchmark"]), Text(r["sampler"] or "-"),
                  inert(", ".join(r["negatives"]) or "-")]
        cells += [Text(c) for c in (str(r["n"]), _ci(r), _fmt(r["chance"], 2), _fmt(r["shuffled_mean"]), _gap(r),
                                    _fmt(r["label_ci_width_median"], 2),
                                    "-" if r["parse_failure_rate"] is None else f"{100 * r['parse_failure_rate']:.1f}%")]
        table.add_row(*cells)
    return table


def _report(project, *, as_json: bool) -> int:
    from rich.console import Console
    from rich.table import Table

    from saegold.engine.bench.report import build_report

    data = build_report(project)
    if as_json:
        json.dump(data, sys.stdout, indent=2, ensure_ascii=True)
        print()
        return 0
    console = Console(highlight=False)
    if not console.is_terminal:           # piped or captured: no terminal width to fit
        console = Console(highlight=False, width=160)
    if not data["overall"] and not data["intruder"]:
        console.print(Text("no benchmark results yet: run `saegold bench` first"))
        return 0
    console.print(_table("Benchmarks: method x benchmark (n labels; 95% bootstrap CI over labels)",
                         data["overall"], False))
    console.print(_table("By category (from taxonomy scores; 'unscored' where none)", data["by_category"], True))
    if data["intruder"]:
        intr = Table(title="Intruder (per feature, no label; 95% bootstrap CI over features)", title_justify="left")
        intr.add_column("category")
        for name in ("features", "accuracy [95% CI]", "chance", "feature CI width", "parse fail"):
            intr.add_column(name, justify="right")
        for r in data["intruder"]:
            intr.add_row(Text(r["category"]), Text(str(r["n"])), Text(_ci(r)),
                         Text(", ".join(_fmt(c, 2) for c in r["chance"])), Text(_fmt(r["feature_ci_width_median"], 2)),
                         Text("-" if r["parse_failure_rate"] is None else f"{100 * r['parse_failure_rate']:.1f}%"))
        console.print(intr)
    if data["method_pairs"]:
        pairs = Table(title="Paired method differences on shared features (A - B, true labels)",
                      title_justify="left")
        for name in ("benchmark", "sampler", "method A", "method B"):
            pairs.add_column(name, overflow="fold")
        for name in ("features", "A - B [95% CI]"):
            pairs.add_column(name, justify="right")
        for r in data["method_pairs"]:
            diff = _ci({"mean": r["diff_mean"], "ci_low": r["diff_ci_low"], "ci_high": r["diff_ci_high"]})
            pairs.add_row(inert(r["benchmark"]), Text(r["sampler"] or "-"), inert(r["method_a"]), inert(r["method_b"]),
                          Text(str(r["n_features"])), Text(diff))
        console.print(pairs)
    seeds = sorted({x for r in data["overall"] for x in r["seeds"]})
    negatives = sorted({x for r in data["overall"] for x in r["negatives"]})
    judges = sorted({x for r in data["overall"] for x in r["judges"]})
    console.print(inert(f"judges / embedding models: {', '.join(judges)}; seeds: {', '.join(map(str, seeds))}; "
                        f"negatives: {', '.join(negatives)}"))
    if len(seeds) > 1 or len(negatives) > 1:
        console.print(Text("note: these results mix selection settings (seeds or negatives); for one "
                           "comparable set, re-run with --redo and one setting."))
    if any(r["unverified"] for r in data["overall"]):
        console.print(Text("(unverified): other features' examples used as negatives without a model checking "
                           "that the feature is silent on them (imports, `saegold score --no-verified-negatives`, "
                           "or results from before the check): the feature may fire on some, which lowers its "
                           "score; re-score with a model and `saegold bench --redo` for verified ones."))
    console.print(Text("label CI width: median width of one label's own 95% interval (stored with each score; "
                       "in `saegold export bench`): a single label's score is only known to within it."))
    console.print(Text("~0: the true-minus-shuffled CI contains 0 -- the benchmark does not tell this "
                       "method's labels from shuffled ones.  parse fail: share of examples whose judge "
                       "answer could not be parsed (left out of the scores)."))
    return 0
