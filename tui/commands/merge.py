"""``saegold merge OTHER.db``: fold another project's work into this one."""
from __future__ import annotations

import argparse

from ..safe import inert_line

SHOWN_CONFLICTS = 20


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "merge", help="fold another project database's work into this one",
        description="Merge OTHER.db (an annotator's copy, another server) into this project: "
                    "judgments and labels by UUID; sources and features by name and index; "
                    "examples, logit tokens, taxonomy and bench scores, NLA explanations, "
                    "annotators, assignments and the LLM cache. Idempotent, one transaction. "
                    "Nothing here is overwritten: differing values (settings included) are "
                    "reported and this project's are kept; a lead in either database stays a "
                    "lead. Retractions and adjudications obey the same identity rule as in the "
                    "app, and a damaged OTHER.db is refused: then nothing is merged.",
    )
    p.add_argument("other", metavar="OTHER.db", help="the project database to merge in")
    p.add_argument("--dry-run", action="store_true", help="report what would change; change nothing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from saegold.store.db import default_path, open_project
    from saegold.store.merge import merge

    from ..progress import progress_bars

    with open_project(args.db or default_path()) as project, progress_bars() as progress:
        report = merge(project, args.other, dry_run=args.dry_run, progress=progress)
        print_report(report, project.path)
    return 0


def print_report(report, here: object) -> None:
    """``report``: a :class:`store.merge.MergeReport`."""
    from saegold.store.merge import OPTIONAL_TABLES, TABLES

    verb = "would merge" if report.dry_run else "merged"
    print(f"{verb} {inert_line(report.other)} into {inert_line(here)}")
    for table in TABLES + OPTIONAL_TABLES:
        added, present, filled = report.added.get(table, 0), report.present.get(table, 0), report.filled.get(table, 0)
        if added or present or filled:
            extra = f", {filled} filled in" if filled else ""
            print(f"  {table:<17} {added:>7} new, {present:>7} already here{extra}")
    if report.nla_skipped:
        print(f"  {report.nla_skipped} NLA explanations skipped: their examples differ from this project's")
    if report.conflicts:
        print(f"{len(report.conflicts)} conflicts (this project's values kept unless said otherwise):")
        for c in report.conflicts[:SHOWN_CONFLICTS]:
            print(f"  {inert_line(c.line())}")
        if len(report.conflicts) > SHOWN_CONFLICTS:
            print(f"  ... and {len(report.conflicts) - SHOWN_CONFLICTS} more")
    else:
        print("no conflicts")
    if not report.changed:
        print("nothing new: this project already holds everything in it")
