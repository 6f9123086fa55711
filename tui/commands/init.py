"""``saegold init``: create a project database."""
from __future__ import annotations

import argparse

from ..safe import inert_line


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "init", help="create a project database",
        description="Create an empty project database (WAL mode, group-writable) and print "
                    "its settings. Safe to run again on an existing project.",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from saegold.store import settings
    from saegold.store.db import default_path, open_project

    path = args.db or default_path()
    with open_project(path, create=True) as project:
        print(f"project {project.path} (schema version {project.schema_version})")
        cfg = settings.load(project)
        for key in settings.KEYS:
            print(f"  {key} = {inert_line(settings.as_text(getattr(cfg, key)))}")
        print("change one with `saegold settings set KEY VALUE` (list them with `saegold settings`)")
    return 0
