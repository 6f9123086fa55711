"""``saegold demo``: build a small offline demo project with the real pipeline, then open the app."""
from __future__ import annotations

import argparse
import shutil
import sys
import textwrap
from pathlib import Path

from saegold.store.errors import SaegoldError

from ..safe import inert_line

DEFAULT = Path("demo-project") / "saegold.db"

ABOUT = """\
saegold demo: a tiny model with planted features, scored, labeled and
benchmarked offline.
  model  a 3-layer Llama over a word-level vocabulary, built in code, with an
         SAE whose features were planted in each category
         (input / output / cross / obscure)
  score  the real score job on the bundled demo corpus
         (logit lens, input and output scores, steered continuations)
  label  the real label job, answered by a DEMO STAND-IN server on
         127.0.0.1: rule-based responders, NOT a language model
  bench  the real detection / fuzzing / embedding / steering benchmarks
         and the label-free intruder test, judged by the same stand-in
The stand-in's labels and scores show the mechanics only; they measure
nothing."""

NOTICE = ("This is the DEMO project: its candidate labels and benchmark scores come from a "
          "rule-based stand-in on 127.0.0.1, NOT a language model. They show the mechanics only.")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="build an offline demo project (planted model, stand-in LLM) and open the app",
        description=ABOUT + f"\n\nThe project goes to ./{DEFAULT} (or --db PATH) and is built\n"
                            "only when missing; --rebuild starts it afresh.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--rebuild", action="store_true", help="delete the demo project and build it again")
    p.add_argument("--no-open", action="store_true", help="build (if needed) but do not open the app")
    p.add_argument("--annotator", metavar="NAME", help="annotator name in the app (default: your login)")
    p.add_argument("--max-contexts", type=int, metavar="N",
                   help="score at most N corpus contexts (a quicker, thinner demo)")
    p.set_defaults(func=run)


# The one source a demo project holds (engine.planted saves planted-model/ and planted-sae/).
DEMO_SOURCE = "planted-model/planted-sae"


def _check_is_demo(path: Path) -> None:
    """Refuse to let --rebuild delete a file that is not a demo project (e.g. --db pointing
    at real work)."""
    from saegold.store.db import open_project

    with open_project(path) as project:   # not a saegold project at all: one error line
        others = [r["name"] for r in project.query("SELECT name FROM sources WHERE name != ?", [DEMO_SOURCE])]
    if others:
        raise SaegoldError(f"{path} is not a demo project (it holds {', '.join(others[:3])}"
                           f"{' ...' if len(others) > 3 else ''}); --rebuild deletes only a demo project, "
                           "nothing was deleted")


def _remove(path: Path) -> None:
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        p.unlink(missing_ok=True)


def say(text: str, *, indent: str = "") -> None:
    """Print ``text`` wrapped at the terminal's width between words, never inside a number
    or a path (a word longer than the line stays whole)."""
    width = shutil.get_terminal_size((80, 24)).columns
    print(textwrap.fill(text, width=max(40, width - 1), initial_indent=indent,
                        subsequent_indent=indent + "  ", break_long_words=False, break_on_hyphens=False))


def _with_stage_lines(bars):
    """The progress callback, plus one line per stage on stderr when no bars are drawn
    (stderr not a terminal, e.g. `make demo 2>&1 | tee log`)."""
    if sys.stderr.isatty():
        return bars
    seen: set[str] = set()

    def report(stage: str, done: int, total: int | None) -> None:
        if stage not in seen:
            seen.add(stage)
            print(f"  ... {inert_line(stage)}", file=sys.stderr, flush=True)
        bars(stage, done, total)
    return report


def build(path: Path, *, max_contexts: int | None = None) -> None:
    """Build the demo into ``path`` (via a temporary file, so an interrupted build leaves
    nothing half-made behind)."""
    from saegold.engine.demo import build_demo
    from saegold.store.db import open_project

    from ..progress import progress_bars

    print(ABOUT)
    partial = path.with_name(path.name + ".building")
    _remove(partial)
    workdir = path.parent / "planted"
    if workdir.is_dir() and {p.name for p in workdir.iterdir()} - {"planted-model", "planted-sae"}:
        raise SaegoldError(f"{workdir} holds files the demo did not make; the demo writes its model there: "
                           "move them, or give another --db folder")
    shutil.rmtree(workdir, ignore_errors=True)
    project = open_project(partial, create=True)
    try:
        print("building (about a minute; each step shows its progress):", flush=True)
        with progress_bars() as bars:
            report = build_demo(project, workdir, progress=_with_stage_lines(bars),
                                max_contexts=max_contexts)
        for step in report.steps:
            say(inert_line(step), indent="  ")
        cats = ", ".join(f"{n:,} {c}" for c, n in report.categories.items())
        say(f"demo project: {report.features:,} features ({cats}), {report.labels:,} labels, "
            f"{report.bench_rows:,} benchmark scores")
        project.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        project.close()
    partial.rename(path)
    _remove(partial)


def run(args: argparse.Namespace) -> int:
    path = Path(args.db) if args.db else DEFAULT
    if args.max_contexts is not None and args.max_contexts < 1:
        raise SaegoldError("--max-contexts must be at least 1")
    if not args.no_open and not (sys.stdin.isatty() and sys.stdout.isatty()):
        # Checked before the minute of building: the app would draw into a pipe and hang.
        raise SaegoldError("demo opens the app, which needs a terminal; build only with --no-open, "
                           "or over SSH run `ssh -t HOST saegold demo`")
    if args.rebuild:
        if path.exists():
            _check_is_demo(path)
        _remove(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        build(path, max_contexts=args.max_contexts)
    else:
        say(f"demo project {inert_line(path)} exists (saegold demo --rebuild builds it afresh)")
    if args.no_open:
        say(f"open it with: saegold --db {inert_line(path)} annotate")
        return 0
    from saegold.store.db import open_project
    from saegold.store.judgments import login_user
    from saegold.tui.app.app import AnnotateApp

    annotator = (args.annotator or login_user()).strip() or "demo"
    project = open_project(path)
    try:
        app = AnnotateApp(project, annotator, intro=True, notice=NOTICE)
        app.run(mouse=False)
        s = app.session
        say(f"saegold demo: {s.done_count}/{s.assigned_count} features judged by {inert_line(s.annotator)}; "
            f"your judgments are in {inert_line(path)}" + (f"; {inert_line(app.exit_note)}" if app.exit_note else ""))
    finally:
        project.close()
    return app.return_code or 0
