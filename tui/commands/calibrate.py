"""``saegold calibrate``: benchmarks and taxonomy calibrated against the human judgments."""
from __future__ import annotations

import argparse
import sys

from saegold.store.errors import SaegoldError

from ..cli_args import Later, at_least
from ..safe import inert_line, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "calibrate", help="which benchmark predicts human judgment; fit taxonomy thresholds",
        description="For each benchmark (detection, fuzzing, embedding, steering) and automatic category: AUROC "
                    "for human 'correct' (partly counted both ways) with bootstrap CIs, Spearman "
                    "correlation with the ordinal verdict (p from permuting the labels' scores), a score -> P(correct) map (isotonic or Platt, "
                    "chosen by cross-validated Brier score) with its debiased cross-validated calibration error "
                    "(95% CI) and a reliability diagram, and "
                    "the true-vs-shuffled control next to the human verdict rate. Also fits the taxonomy "
                    "thresholds that best reproduce the human tiers (cross-validated kappa).",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--html", metavar="PATH",
                   help="also write a self-contained HTML report with plots (works offline; reliability "
                        "points sized and labelled by n) and a drill-down list of the features where "
                        "annotators disagree or that were flagged")
    p.add_argument("--store-thresholds", action="store_true",
                   help="make the fitted thresholds the project's and re-derive every category "
                        "(asks first on a terminal unless --yes); refused, exit 1, when the fit is not "
                        "shown to reproduce the human tiers better than the current pair, unless --force")
    p.add_argument("--force", action="store_true",
                   help="with --store-thresholds: store the fitted pair even when it is not shown to be "
                        "better than the current one (says so)")
    p.add_argument("--yes", action="store_true", help="do not ask before storing thresholds")
    p.add_argument("--bootstrap", type=at_least(1), default=Later("saegold.engine.stats.defaults", "DEFAULT_BOOT"),
                   metavar="N", help="bootstrap resamples for the CIs (default %(default)s)")
    p.add_argument("--seed", type=int, default=Later("saegold.engine.stats.defaults", "DEFAULT_SEED"),
                   help="bootstrap seed (default %(default)s)")
    p.add_argument("--min-rows", type=at_least(2), default=Later("saegold.engine.stats.defaults", "DEFAULT_MIN_ROWS"),
                   metavar="N", help="fewest verdicts for a figure (default %(default)s)")
    p.add_argument("--grid", type=at_least(2), default=Later("saegold.engine.stats.defaults", "GRID"), metavar="N",
                   help="candidate values per threshold in the grid search (default %(default)s)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from saegold.engine.stats import agreement, calibration, html, thresholds
    from saegold.engine.stats.disputes import disputes
    from saegold.store.db import default_path, open_project

    from ..progress import progress_bars
    from ..reports import calibration_renderable

    from saegold.store.export import check_output_path

    if args.html:
        check_output_path(args.html, "--html", "the HTML report")   # before the work, not after it
    n_boot = max(1, args.bootstrap)
    err = Console(stderr=True)
    with open_project(args.db or default_path(), readonly=not args.store_thresholds) as project:
        with progress_bars() as progress:
            report = calibration.compute(project, n_boot=n_boot, seed=args.seed,
                                         min_rows=max(2, args.min_rows), grid=max(2, args.grid),
                                         progress=progress)
            agree = agreement.compute(project, n_boot=n_boot, seed=args.seed, progress=progress) \
                if args.html else None
        from saegold.engine.bench.intruder import tier_separation

        has_intruder = bool(project.scalar("SELECT 1 FROM sqlite_master WHERE name = 'intruder_scores'")) and \
            project.scalar("SELECT 1 FROM intruder_scores LIMIT 1") is not None
        intruder = tier_separation(project, n_boot=n_boot, seed=args.seed) if has_intruder else []
        if args.json:
            print_json({**report.to_dict(), "intruder_separation": intruder})
        else:
            Console().print(calibration_renderable(report))
            for s in intruder:   # the label-free intruder score against 'obscure' (issue 15)
                est = "-" if s["auroc"] is None else f"{s['auroc']:.3f}" + (
                    "" if s["ci_low"] is None else f" [{s['ci_low']:.3f}, {s['ci_high']:.3f}]")
                print(inert_line(f"intruder accuracy separating {s['against']}: AUROC {est} (95% bootstrap CI "
                                 f"over features; {s['features']} features, {s['rows']} rows, {s['positives']} "
                                 "not obscure; 0.5 = no separation)"))
        if args.html:
            try:
                path = html.write(args.html, report, agree, title="saegold: benchmarks and taxonomy vs humans",
                                  disputes=disputes(project))
            except OSError as exc:
                raise SaegoldError(f"{args.html}: cannot write the HTML report ({exc.strerror})") from exc
            err.print(f"HTML report written to {inert_line(path)}", markup=False, highlight=False)
        fit = report.thresholds
        if args.store_thresholds:
            if fit.fitted is None:
                err.print(f"no thresholds stored: {inert_line(fit.reason or 'nothing fitted')}",
                          markup=False, highlight=False)
                return 1
            why = thresholds.why_not_store(fit)
            if why and not args.force:
                err.print(f"no thresholds stored: {why}; --force stores the fitted pair anyway",
                          markup=False, highlight=False)
                return 1
            if why:
                err.print(f"storing anyway (--force): {why}", markup=False, highlight=False)
            if not args.yes and sys.stdin.isatty():
                answer = input(f"Store input_threshold={fit.fitted[0]:.4g}, output_threshold="
                               f"{fit.fitted[1]:.4g} and re-derive all categories? [y/N] ")
                if answer.strip().lower() not in ("y", "yes"):
                    err.print("thresholds not stored", markup=False, highlight=False)
                    return 0
            n = thresholds.store_thresholds(project, *fit.fitted)
            err.print(f"stored input_threshold={fit.fitted[0]:.6g}, output_threshold={fit.fitted[1]:.6g}; "
                      f"{n} categories re-derived", markup=False, highlight=False)
        elif fit.fitted is not None and not args.json:
            why = thresholds.why_not_store(fit)
            err.print(f"current thresholds kept: {why}" if why else
                      "to make the fitted thresholds the project's: saegold calibrate --store-thresholds",
                      markup=False, highlight=False)
    return 0
