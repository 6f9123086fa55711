"""``saegold agreement``: agreement between annotators, per annotator, and vs the machine."""
from __future__ import annotations

import argparse

from ..cli_args import Later, at_least
from ..safe import print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "agreement", help="agreement between annotators (alpha, kappa, percent) with bootstrap CIs",
        description="Agreement between annotators on tiers (nominal) and label verdicts (ordinal): "
                    "Krippendorff's alpha, percent agreement, pairwise Cohen's kappa and Fleiss' kappa, "
                    "each with a seeded 95% bootstrap CI over features; per-annotator counts, median "
                    "time and agreement with the rest (very fast or outlying annotators are flagged); "
                    "the human tier against the automatic category. Figures with too little overlap "
                    "are shown as missing, with the count.",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON (null + reason for a missing figure)")
    p.add_argument("--bootstrap", type=at_least(1), default=Later("saegold.engine.stats.defaults", "DEFAULT_BOOT"),
                   metavar="N", help="bootstrap resamples for the CIs (default %(default)s)")
    p.add_argument("--seed", type=int, default=Later("saegold.engine.stats.defaults", "DEFAULT_SEED"),
                   help="bootstrap seed (default %(default)s)")
    p.add_argument("--min-items", type=at_least(1), default=Later("saegold.engine.stats.defaults", "DEFAULT_MIN_ITEMS"),
                   metavar="N", help="fewest shared items for a figure to be computed (default %(default)s)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from saegold.engine.stats import agreement
    from saegold.store.db import default_path, open_project

    from ..progress import progress_bars
    from ..reports import agreement_renderable

    n_boot = max(1, args.bootstrap)
    with open_project(args.db or default_path(), readonly=True) as project, progress_bars() as progress:
        report = agreement.compute(project, n_boot=n_boot, seed=args.seed,
                                   min_items=max(1, args.min_items), progress=progress)
    if args.json:
        print_json(report.to_dict())
    else:
        Console().print(agreement_renderable(report))
    return 0
