"""``saegold annotate``: judge features in the terminal app (keyboard only, works over SSH)."""
from __future__ import annotations

import argparse
import sys

from saegold.store.errors import SaegoldError

from ..safe import inert_line


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "annotate", help="judge features in the terminal app (blind, keyboard only)",
        description="Open the annotation app on your queue of features. Each feature goes to "
                    "`overlap` annotators (project setting); every key you press is saved at once "
                    "as an append-only event. Press ? in the app for the keys and guidelines.",
    )
    p.add_argument("--annotator", metavar="NAME",
                   help="annotator name (default: your login; use it on shared accounts)")
    p.add_argument("--lead", action="store_true",
                   help="review the features where annotators disagree and adjudicate them "
                        "(registers NAME as a lead)")
    p.add_argument("--intro", action=argparse.BooleanOptionalAction, default=None,
                   help="show the introduction and guidelines first (default: on your first run)")
    p.set_defaults(func=run)


def demo_notice(project) -> str | None:
    """The demo's notice (stand-in labels, NOT a model) when this is the demo project, so
    a second annotator opening it with `annotate` is told too, not only `saegold demo`."""
    from .demo import DEMO_SOURCE, NOTICE

    names = [r["name"] for r in project.query("SELECT name FROM sources")]
    return NOTICE if names == [DEMO_SOURCE] else None


def queue_notice(project) -> str | None:
    """How many features cannot be judged (no activating examples), why, and what would fill
    them; None when every feature can be judged."""
    from saegold.store.status import feature_counts, not_judgeable_line

    counts = feature_counts(project, full=False)   # one index probe per feature, no scan of examples
    judgeable = sum(r["with_examples"] for r in counts)
    return not_judgeable_line({r["name"]: r["features"] - r["with_examples"] for r in counts
                               if r["features"] > r["with_examples"]}, judgeable)


def run(args: argparse.Namespace) -> int:
    from saegold.store.db import default_path, open_project
    from saegold.store.judgments import login_user
    from saegold.tui.app.app import AnnotateApp, QueueFinished

    from .demo import say

    annotator = (args.annotator or login_user()).strip()
    if not annotator:
        raise SaegoldError("--annotator: the name is empty")
    if not annotator.isprintable():  # as `saegold annotators --add`: no control characters
        raise SaegoldError(f"--annotator {annotator!r}: a name must be printable text")
    project = open_project(args.db or default_path())
    try:
        left_out = queue_notice(project)
        if left_out:   # the start line (stays above the app's screen in the terminal) and the intro
            say(f"saegold annotate: {inert_line(left_out)}")   # wrapped between words
        try:
            app = AnnotateApp(project, annotator, lead=args.lead, intro=args.intro,
                              notice="\n\n".join(n for n in (demo_notice(project), left_out) if n) or None)
        except QueueFinished as exc:
            print(f"saegold annotate: {inert_line(exc)}")
            return 0
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            app.session.close()  # the features it was handed go back to the pool
            # Without a terminal the app would draw escape codes into a pipe and wait forever.
            raise SaegoldError("annotate needs a terminal; over SSH run `ssh -t HOST saegold annotate`")
        app.run(mouse=False)  # releases the annotator's leases as it ends
        print(app.farewell("annotate"))
    finally:
        project.close()
    return app.return_code or 0
