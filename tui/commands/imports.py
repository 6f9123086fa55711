"""``saegold import neuronpedia|judgments``: bring data made elsewhere into the project."""
from __future__ import annotations

import argparse
import sys

from saegold.store.errors import BadInput

from ..safe import inert_line

SHOW_REJECTED = 20

EXAMPLES = """\
examples:
  saegold import neuronpedia np_feature_12.json
  saegold import neuronpedia exports/v1/gemma-2-2b/20-gemmascope-res-16k/
  saegold import neuronpedia --skip-bad explanations-only/gemma-2-2b_20-gemmascope-res-16k.json
  saegold import judgments judgments_from_server_b.jsonl"""

NEURONPEDIA_HELP = """\
Import Neuronpedia data: feature JSON as served by
GET https://www.neuronpedia.org/api/feature/MODEL/SOURCE/INDEX (activations, explanations,
pos_str/neg_str logits, frac_nonzero), trimmed variants of it, and bulk exports: JSON arrays
(e.g. the explanations-only export) and *.jsonl / *.jsonl.gz batches of features,
activations or explanations. A directory imports every such file inside it.

Sources are named MODEL/SOURCE (e.g. gemma-2-2b/20-gemmascope-res-16k). Activations become
top examples ranked by maxValue (token strings kept exactly, each distinct context once;
contexts where the feature never fires become negative examples), explanations become
candidate labels whose method is Neuronpedia's typeName. Examples and logit tokens that
saegold computed itself are never overwritten. The whole import is one transaction: a malformed record
stops it with one line naming file, record and field, and nothing is written. Importing
the same file again changes nothing."""

JUDGMENTS_HELP = """\
Import judgments made elsewhere from JSON Lines, one event per line, e.g.
  {"uuid": "...", "annotator": "alice", "source": "gemma-2-2b/20-gemmascope-res-16k",
   "feature": 12, "kind": "tier", "value": "input", "confidence": 2,
   "created_at": "2026-11-26T10:00:00Z"}
  {"uuid": "...", "annotator": "alice", "source": "...", "feature": 12, "kind": "verdict",
   "method": "baez", "value": "correct", "created_at": "..."}
kind is one of tier, verdict, preference, gold_label, skip, flag, note, retract, adj_tier,
adj_verdict, adj_gold_label. A verdict or preference names its candidate by method (or by
label_uuid); a retraction names target_uuid. Events whose uuid is already in the project
are skipped, so importing a file twice adds nothing. created_at is ISO 8601 (no zone: UTC)
and may not lie in the future (more than 5 minutes past this machine's clock).

JSON Lines are told from one JSON document (an object or an array) by content, whatever
the file's name (pieces made by split, .txt files); FILE - reads standard input, e.g.
  ssh server-b 'saegold export judgments' | saegold import judgments -"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="import Neuronpedia data or judgments made elsewhere",
                       description="Import data made elsewhere into the project. Each import "
                                   "is one transaction; importing the same file again changes "
                                   "nothing.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    kinds = p.add_subparsers(dest="import_kind", metavar="KIND", required=True)
    np_ = kinds.add_parser("neuronpedia", help="Neuronpedia feature JSON and bulk exports",
                           description=NEURONPEDIA_HELP,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    np_.add_argument("paths", nargs="+", metavar="PATH", help="files or directories")
    np_.add_argument("--skip-bad", action="store_true",
                     help="import the good records and list the rejected ones")
    np_.set_defaults(func=run_neuronpedia)
    j = kinds.add_parser("judgments", help="judgments from another server or tool (JSON Lines)",
                         description=JUDGMENTS_HELP,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    j.add_argument("paths", nargs="+", metavar="FILE",
                   help="JSON Lines files (any name, optionally gzipped), JSON arrays, or - for standard input")
    j.add_argument("--skip-bad", action="store_true",
                   help="import the good records and list the rejected ones")
    j.set_defaults(func=run_judgments)


def _print_rejected(rejected: list[BadInput]) -> None:
    if not rejected:
        return
    print(f"rejected {len(rejected):,} record(s) (--skip-bad):")
    for err in rejected[:SHOW_REJECTED]:
        print(f"  {inert_line(err)}")
    if len(rejected) > SHOW_REJECTED:
        print(f"  ... and {len(rejected) - SHOW_REJECTED:,} more")


def run_neuronpedia(args: argparse.Namespace) -> int:
    from saegold.store.db import default_path, open_project
    from saegold.store.importers.neuronpedia import import_neuronpedia

    from ..progress import progress_bars

    with open_project(args.db or default_path()) as project:
        with progress_bars() as progress:
            report = import_neuronpedia(project, args.paths, skip_bad=args.skip_bad, progress=progress)
        c = report.counts
        print(f"imported {len(report.files):,} file(s), {report.records:,} record(s) into "
              f"{inert_line(project.path)} in {report.seconds:.2f} s")
        print(f"  sources:  {c['sources_new']:,} new")
        print(f"  features: {c['features_new']:,} new ({c['features_seen']:,} in the files)")
        print(f"  labels:   {c['labels_new']:,} new, {c['labels_existing']:,} already there")
        print(f"  examples: {c['examples_written']:,} written; logit tokens: "
              f"{c['logit_tokens_written']:,} written")
        if c["examples_duplicate"]:
            print(f"  {c['examples_duplicate']:,} context(s) listed twice by Neuronpedia were stored once")
        kept = c["examples_kept_scored"] + c["logit_lists_kept_scored"]
        if kept:
            print(f"  kept saegold's own examples/logits of {kept:,} feature list(s) "
                  "(imports never overwrite scored data)")
        if report.ignored:
            print(f"  not imported (not *.json/*.jsonl): "
                  f"{', '.join(inert_line(p) for p in report.ignored[:10])}"
                  + (" ..." if len(report.ignored) > 10 else ""))
        _print_rejected(report.rejected)
    return 0


def run_judgments(args: argparse.Namespace) -> int:
    from saegold.store.db import default_path, open_project
    from saegold.store.importers.judgments import import_judgments

    from ..progress import progress_bars

    with open_project(args.db or default_path()) as project:
        with progress_bars() as progress:
            report = import_judgments(project, args.paths, skip_bad=args.skip_bad, progress=progress,
                                      stdin=sys.stdin.buffer)
        print(f"imported {len(report.files):,} file(s), {report.records:,} judgment record(s) into "
              f"{inert_line(project.path)} in {report.seconds:.2f} s")
        print(f"  events: {report.new:,} new, {report.existing:,} already there")
        if report.annotators_new:
            print(f"  new annotators: {', '.join(inert_line(a) for a in report.annotators_new)}")
        _print_rejected(report.rejected)
    return 0
