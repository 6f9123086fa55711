"""``saegold export features|scores|labels|gold``: data out, for scripts and papers."""
from __future__ import annotations

import argparse
import sys

from saegold.store import export as store_export

from ..safe import guarded_stdout, inert_line

DESCRIPTION = """\
Export project data. JSON Lines or CSV, to standard output unless --output is given (a
file appears only when fully written). Every record carries `source` (MODEL/SOURCE) and
`feature` (the index); scores carry input_score, output_score, category, the thresholds
and scorer_version; labels carry method, text, model, uuid, origin, status; judgments are
the raw event log in the shape `saegold import judgments` reads. `gold` writes
the gold data resolved from human judgments under a policy."""

GOLD_POLICIES = ("majority", "unanimous", "adjudicated")
# (the fields are engine/gold.py's SCALAR_COLUMNS and NESTED_COLUMNS; a test keeps them named here)
GOLD_DESCRIPTION = """\
Export the gold data resolved from the annotators' judgments under a policy (majority,
unanimous, or the lead's adjudications): one record per judged feature.

Fields (jsonl, csv, parquet):
  source, feature            the feature, named as in every export and in `import judgments`
  model_id, sae_id, layer    what the source names
  auto_category, input_score, output_score    the automatic taxonomy
  tier, tier_source, tier_reason, tier_votes  the resolved tier (null with the reason, e.g. a tie)
  gold_label, gold_label_source, gold_label_reason, annotator_gold_labels
  candidates                 per candidate label: label_uuid, method, text, correct, partly,
                             wrong, verdict, verdict_reason, preferred_by
  preferred_neither, n_annotators, tier_agreement, verdict_agreement, n_skipped, n_flagged
  annotators, adjudicated_by, first_at, last_at, policy       provenance
neuronpedia writes Neuronpedia explanation records; graph-labels [feature id, label] pairs."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export features, scores, labels, judgments, bench scores or gold data",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_subparsers(dest="export_kind", metavar="WHAT", required=True)
    helps = {"features": "sources, features, density, max activation, category",
             "scores": "taxonomy scores: input_score, output_score, category",
             "labels": "candidate labels: method, text, model, origin",
             "judgments": "raw judgment events, as `saegold import judgments` reads them",
             "bench": "benchmark scores per label and control, each with its own confidence interval and sampler"}
    for kind in store_export.KINDS:
        q = what.add_parser(kind, help=helps[kind], description=f"Export {helps[kind]}.\n"
                            f"Fields: {', '.join(store_export.FIELDS[kind])}.")
        q.add_argument("--format", choices=store_export.FORMATS, default="jsonl",
                       help="output format (default: jsonl)")
        q.add_argument("--output", "-o", metavar="PATH",
                       help="write here instead of stdout (a name ending in .gz is gzipped)")
        q.add_argument("--source", metavar="MODEL/SOURCE", help="only this source")
        if kind == "labels":
            q.add_argument("--method", help="only labels of this method")
            q.add_argument("--include-failed", action="store_true",
                           help="also failed labelling attempts (status 'failed', text empty)")
        if kind == "features":
            q.add_argument("--with-examples", action="store_true",
                           help="jsonl only: add top examples and promoted/suppressed logit tokens")
        q.set_defaults(func=run, kind=kind)
    g = what.add_parser("gold", help="gold labels and tiers resolved from human judgments",
                        description=GOLD_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    g.add_argument("--format", choices=("jsonl", "csv", "parquet", "neuronpedia", "graph-labels"),
                   default="jsonl",
                   help="output format (default: jsonl; parquet needs --output; neuronpedia: "
                        "Neuronpedia explanation records; graph-labels: [feature id, label] pairs)")
    g.add_argument("--policy", choices=GOLD_POLICIES, default="majority",
                   help="how judgments become gold (default: majority)")
    g.add_argument("--output", "-o", metavar="PATH", help="write here instead of stdout")
    g.add_argument("--source", metavar="MODEL/SOURCE", help="only features of this source")
    g.set_defaults(func=run_gold)


def run(args: argparse.Namespace) -> int:
    from saegold.store.db import default_path, open_project

    if args.output not in (None, "-"):
        store_export.check_output_path(args.output)
    with open_project(args.db or default_path(), readonly=True) as project, guarded_stdout():
        n = store_export.export(
            project, args.kind, fmt=args.format, output=args.output, source=args.source,
            method=getattr(args, "method", None),
            include_failed=getattr(args, "include_failed", False),
            with_examples=getattr(args, "with_examples", False),
        )
    if args.output not in (None, "-"):
        print(f"wrote {n:,} {args.kind} record(s) to {inert_line(args.output)}", file=sys.stderr)
    return 0


def run_gold(args: argparse.Namespace) -> int:
    from saegold.engine.gold import export_gold  # lazy: the statistics stack is not needed otherwise
    from saegold.store.db import default_path, open_project

    from ..progress import progress_bars

    if args.output not in (None, "-"):
        store_export.check_output_path(args.output)
    with open_project(args.db or default_path(), readonly=True) as project, guarded_stdout():
        with progress_bars() as progress:
            n = export_gold(project, fmt=args.format, policy=args.policy, source=args.source,
                            output=args.output, progress=progress)
    if args.output not in (None, "-"):
        print(f"wrote {n:,} gold record(s) to {inert_line(args.output)}", file=sys.stderr)
    return 0
