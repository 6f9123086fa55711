"""``saegold label``: candidate labels through any OpenAI-compatible endpoint."""
from __future__ import annotations

import argparse
import sys

from saegold.engine.labeling.methods import METHOD_NAMES
from saegold.store.errors import SaegoldError
from saegold.store.feature_spec import parse_feature_spec, stored_feature_ids

from ..cli_args import add_endpoint_args, at_least, parse_temperature
from ..safe import inert_line

DESCRIPTION = f"""\
Make candidate labels for features with one or more label methods ({', '.join(METHOD_NAMES)}),
through any OpenAI-compatible endpoint (OpenAI, OpenRouter, vLLM, Ollama...).

  --methods M1,M2   label every selected feature with these methods
  --by-tier         score-then-label: methods per category from the label_routing setting
                    (input -> eleuther_acts_top5 + baez; output -> output_logits + baez;
                    cross -> all; obscure -> none)

Every request is cached in the project: re-running a finished job sends nothing. Pairs
(feature, method) that already have a label are skipped unless --redo. The API key is
read from the environment variable named by --api-key-env and is never stored.
baez / baez_last need NLA explanations: from an NLA service (--nla-url, Neuronpedia's NLA
explain shape) or a JSONL file of precomputed ones (--nla-jsonl; one record a line:
{{"source": "MODEL/SOURCE", "feature": 12, "rank": 0, "token_index": 17, "explanation": "..."}}).
Every run ends with what it spent per category and what labeling every feature with every
method would cost.

Exit status: 0 every planned label was made; 1 the run finished but some labels (or NLA
explanations) were not made -- a request failed for good, or every answer asked for was
unusable -- and a re-run retries exactly those; 2 an error, one line, nothing done (an
unreachable endpoint, a wrong key or model, bad options); 130 interrupted."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("label", help="make candidate labels (LLM, cached, routed by category)",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_argument_group("what to label")
    what.add_argument("--methods", help=f"comma-separated methods ({','.join(METHOD_NAMES)})")
    what.add_argument("--by-tier", action="store_true", help="route methods by category (score-then-label)")
    what.add_argument("--source", help="only features of this source (MODEL/SOURCE)")
    what.add_argument("--features", help="only these feature indices and inclusive ranges, e.g. 3,17,40-49; "
                                         "each must be stored (for --source)")
    what.add_argument("--redo", action="store_true", help="label pairs that already have a label again")
    llm = p.add_argument_group("LLM endpoint (defaults: project settings)")
    add_endpoint_args(llm)
    llm.add_argument("--attempts", type=int, default=3,
                     help="answers asked per label when answers are unusable (default 3)")
    llm.add_argument("--no-activations", action="store_true",
                     help="eleuther_acts_top5 without the 0-10 Activations lines")
    llm.add_argument("--no-cache", action="store_true", help="ask again even when an answer is cached")
    llm.add_argument("--dry-run", action="store_true", help="send nothing; print the calls and tokens it would take")
    nla = p.add_argument_group("NLA explanations (baez, baez_last)")
    nla.add_argument("--nla-url", help="NLA service base URL, e.g. https://www.neuronpedia.org/api/nla "
                                       "(default: setting nla_url)")
    nla.add_argument("--nla-jsonl", help="import precomputed explanations from this JSONL file first")
    nla.add_argument("--nla-source", help="NLA source id (e.g. kitft-l41); names the stored explanations "
                                          "(default: setting nla_source_id)")
    nla.add_argument("--nla-model", help="model id for the NLA service (default: the SAE source's model)")
    nla.add_argument("--nla-key-env", default="NEURONPEDIA_API_KEY",
                     help="variable holding the NLA service key, sent as x-api-key if set")
    nla.add_argument("--nla-bos-offset", type=at_least(0), default=1,
                     help="positions the NLA service adds before the text (default 1: a BOS token)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from saegold.engine.labeling.job import Endpoint, LabelOptions, label
    from saegold.engine.labeling.nla import import_jsonl
    from saegold.engine.labeling.routing import parse_methods
    from saegold.store import settings
    from saegold.store.db import default_path, open_project

    from ..progress import progress_bars

    opts = LabelOptions(
        methods=parse_methods(args.methods) if args.methods else None, by_tier=args.by_tier,
        source=args.source, features=None,
        redo=args.redo, attempts=args.attempts, nla_source=args.nla_source,
        temperature=parse_temperature(args.temperature), activations=not args.no_activations,
        max_tokens=args.max_tokens or None,
    )
    if not opts.methods and not opts.by_tier:
        raise SaegoldError("say which labels to make: --methods M1,M2 or --by-tier")
    wanted = parse_feature_spec(args.features) if args.features is not None else None
    with open_project(args.db or default_path()) as project:
        if wanted is not None:
            stored_feature_ids(project, wanted, args.source)   # every index stored for the source
            opts.features = wanted
        cfg = settings.load(project)
        opts.nla_source = opts.nla_source or cfg.nla_source_id
        if args.nla_jsonl:
            if args.dry_run:
                print(f"dry run: would import NLA explanations from {inert_line(args.nla_jsonl)}")
            else:
                imp = import_jsonl(project, args.nla_jsonl, nla_source=opts.nla_source)
                print(f"NLA explanations: {imp.stored} of {imp.records} records stored "
                      f"({inert_line(', '.join(imp.sources)) or 'none'}); {imp.unmatched} name a feature or "
                      f"example not in the project; {imp.off_max} are not at the max-activating token")
                if opts.nla_source is None and len(imp.sources) == 1:
                    opts.nla_source = imp.sources[0]
        endpoint = Endpoint(
            base_url=args.base_url or cfg.llm_base_url, model=args.model or cfg.llm_model,
            api_key_env=args.api_key_env or cfg.llm_api_key_env, concurrency=args.concurrency,
            timeout=args.timeout, max_retries=args.max_retries, dry_run=args.dry_run,
            read_cache=not args.no_cache, nla_url=args.nla_url or cfg.nla_url,
            nla_model_id=args.nla_model or cfg.nla_model_id, nla_source_id=cfg.nla_source_id,
            nla_key_env=args.nla_key_env, nla_bos_offset=args.nla_bos_offset,
        )
        with progress_bars() as progress:
            report = label(project, opts, endpoint, progress=progress, notify=progress.note)
        for line in report_lines(report, model=endpoint.model,
                                 endpoint=(endpoint.base_url or "https://api.openai.com/v1").rstrip("/")):
            print(line)
        for err, n in report.errors.items():
            print(f"saegold: {'' if n == 1 else f'{n} times: '}{inert_line(err)}", file=sys.stderr)
    # One rule (README, --help): 1 when planned labels were not made -- failed requests or only
    # unusable answers -- so scripts notice; everything finished is kept and a re-run retries
    # exactly what is missing.
    return 1 if report.unfinished else 0


def report_lines(report, *, model: str, endpoint: str) -> list[str]:
    """The end-of-run summary (every untrusted string made inert)."""
    r = report
    dry = r.dry_run
    lines = [f"{'dry run, nothing sent: ' if dry else ''}model {inert_line(model)} at {inert_line(endpoint)}"]
    if dry:
        lines.append(f"labels: {r.features} features, {r.planned} (feature, method) pairs to label, "
                     f"{r.already_done} already labeled")
    else:
        lines.append(f"labels: {r.features} features, {r.planned} pairs planned, {r.labeled} labeled, "
                     f"{r.failed} failed ({r.failed_attempts} unusable answers stored as failed attempts), "
                     f"{r.already_done} already labeled")
    if r.unscored:
        lines.append(f"not routed: {r.unscored} features have no category yet (run `saegold score`)")
    for reason, n in sorted(r.skipped.items()):
        lines.append(f"skipped {n}: {inert_line(reason)}")
    if r.nla_source and (r.nla_stored or r.nla_failed):
        lines.append(f"NLA explanations ({inert_line(r.nla_source)}): {r.nla_stored} fetched, {r.nla_failed} failed"
                     + (f", {r.nla_token_mismatches} at a token that differs from ours" if r.nla_token_mismatches else ""))
    if r.unfinished:
        lines.append(f"not done: {r.failed} labels" + (f" and {r.nla_failed} NLA explanations" if r.nla_failed else "")
                     + " (errors on stderr); a re-run retries them")
    head = ("would send", "cached", "~prompt tok", "~completion tok") if dry else \
           ("calls", "cache hits", "prompt tok", "completion tok")
    lines.append(("would spend" if dry else "spent") + " per category (labels and NLA requests):")
    lines.append(f"  {'category':<12}{head[0]:>11}{head[1]:>11}{'retries':>9}{head[2]:>14}{head[3]:>17}")

    def row(name: str, u) -> str:
        if dry:
            vals = (u.est_calls, u.cache_hits, u.retries, u.est_prompt_tokens, u.est_completion_tokens)
        else:
            vals = (u.calls, u.cache_hits, u.retries, u.prompt_tokens, u.completion_tokens)
        return f"  {inert_line(name):<12}{vals[0]:>11,}{vals[1]:>11,}{vals[2]:>9,}{vals[3]:>14,}{vals[4]:>17,}"

    for category in sorted(r.spent):
        lines.append(row(category, r.spent[category]))
    lines.append(row("total", r.total_spent))
    plan, full = r.plan_estimate, r.all_methods_estimate
    lines.append("cost from scratch (estimated at ~4 characters a token):")
    lines.append(f"  this plan:                       {plan.calls:,} label calls + {plan.nla_calls:,} NLA calls, "
                 f"~{plan.tokens:,} label tokens")
    share = f" (this plan is {100 * plan.tokens / full.tokens:.0f}% of it)" if full.tokens else ""
    lines.append(f"  every method on every feature:   {full.calls:,} label calls + {full.nla_calls:,} NLA calls, "
                 f"~{full.tokens:,} label tokens{share}")
    return lines
