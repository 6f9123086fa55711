"""``saegold annotators``: who annotates this project, and who is a lead."""
from __future__ import annotations

import argparse

from saegold.store.errors import SaegoldError

from ..safe import inert


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "annotators", help="list annotators and their roles; register a lead",
        description="List the project's annotators with their role and events. --add NAME "
                    "registers an annotator ahead of time; with --lead, as a lead, who may "
                    "adjudicate (in `saegold annotate --lead`, or in imported adj_* judgments). "
                    "A lead stays a lead.",
    )
    p.add_argument("--add", metavar="NAME", help="register this annotator")
    p.add_argument("--lead", action="store_true", help="with --add: register (or promote) as a lead")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from saegold.store import judgments
    from saegold.store.db import default_path, open_project

    if args.lead and not args.add:
        raise SaegoldError("--lead goes with --add NAME")
    with open_project(args.db or default_path()) as project:
        if args.add is not None:
            name = args.add.strip()
            if not name or not name.isprintable():
                raise SaegoldError("--add: an annotator name must be non-empty printable text")
            judgments.ensure_annotator(project, name, "lead" if args.lead else "annotator")
        rows = project.query(
            "SELECT a.name, a.role, COUNT(j.seq) AS events, MIN(j.created_at) AS first, "
            "MAX(j.created_at) AS last FROM annotators a LEFT JOIN judgments j ON j.annotator = a.name "
            "GROUP BY a.name ORDER BY a.name")
    table = Table(title="Annotators", title_justify="left")
    for col in ("annotator", "role", "events", "first event (UTC)", "last event (UTC)"):
        table.add_column(col, justify="right" if col == "events" else "left")
    for r in rows:
        table.add_row(inert(r["name"]), r["role"], f"{r['events']:,}", r["first"] or "—", r["last"] or "—")
    Console().print(table if rows else "no annotators yet")
    return 0
