"""``saegold backup PATH``: a consistent snapshot while annotators keep working."""
from __future__ import annotations

import argparse

from ..safe import inert_line


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "backup", help="write a consistent snapshot of the project to PATH",
        description="Copy the project database to PATH while annotators keep working (SQLite "
                    "online backup of one consistent instant), check the copy with "
                    "PRAGMA integrity_check, and only then put it at PATH. The copy is a "
                    "complete project: open it with --db PATH.",
    )
    p.add_argument("path", metavar="PATH", help="file to write the snapshot to (must not exist unless --force)")
    p.add_argument("--force", action="store_true", help="replace PATH if it exists")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from saegold.store.backup import backup
    from saegold.store.db import default_path, open_project

    from ..progress import progress_bars

    with open_project(args.db or default_path(), readonly=True) as project, progress_bars() as progress:
        result = backup(project, args.path, overwrite=args.force, progress=progress)
    print(f"backup {inert_line(result.path)}: {result.pages} pages, {result.bytes} bytes, "
          f"{result.judgments} judgment events, integrity ok ({result.seconds:.2f} s)")
    return 0
