"""The ``saegold`` command line.

Each subcommand lives in its own module under :mod:`tui.commands` and exposes
``register(subparsers)``; modules are discovered, so adding a command touches no shared
file.  ``saegold --help`` imports every command module and runs its ``register``, so both
stay light: a module imports at its top only the standard library, ``store.errors``,
``tui.cli_args`` and ``tui.safe``; everything else (the database layer, the statistics and
model stacks, rich tables and progress bars) is imported inside the function that runs
the command.  A default that lives in a heavier module is a :class:`tui.cli_args.Later`.
``tests/cli/test_help_imports.py`` keeps this true; ``tests/perf/perf_help.py`` times it.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sqlite3
import sys

from saegold.store.errors import SaegoldError

from . import commands
from .cli_args import resolve_later
from .safe import inert_line

DESCRIPTION = """\
saegold: score SAE features, label them two ways, benchmark the labels, and let human
annotators judge them blind, to find out which labels (and which benchmarks) can be trusted.

Typical order:  init -> import / score -> label -> bench -> annotate -> agreement / calibrate
-> export gold.  Every command works on one project file: ./saegold.db, or --db PATH, or
$SAEGOLD_DB.  `saegold demo` builds a small offline demo project and opens the app."""


# Commands whose module name differs from the command word (``import`` is a keyword).
MODULE_FOR_COMMAND = {"import": "imports"}


class _Parser(argparse.ArgumentParser):
    """argparse with the usual one-line error (no usage block); ``--help`` shows the usage."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {inert_line(message)} (see `{self.prog} --help`)\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser; with ``only`` naming a command module, just that command (so a
    command starts without importing every other command's libraries)."""
    parser = _Parser(
        prog="saegold", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--db", help="project database (default: $SAEGOLD_DB or ./saegold.db)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = sorted(m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_"))
    if only is not None:
        only = MODULE_FOR_COMMAND.get(only, only)
    if only in modules:
        modules = [only]
    for name in modules:
        importlib.import_module(f"{commands.__name__}.{name}").register(sub)
    return parser


def _named_command(argv: list[str]) -> str | None:
    """The subcommand word in ``argv`` (skipping ``--db PATH``), if any."""
    it = iter(argv)
    for tok in it:
        if tok == "--db":
            next(it, None)
        elif not tok.startswith("-"):
            return tok
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(only=_named_command(argv))
    args = parser.parse_args(argv)
    resolve_later(args)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except SaegoldError as exc:
        print(f"saegold: error: {inert_line(str(exc))}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as exc:
        # Met outside the store's helpers (e.g. a streamed export): a damaged file, a full disk
        # or a lock held too long is one line; any other database error is a bug and shows.
        from saegold.store.db import default_path, explain_db_error

        err = explain_db_error(args.db or default_path(), exc)
        if err is None:
            raise
        print(f"saegold: error: {inert_line(str(err))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("saegold: interrupted; everything already reported as finished is kept", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
