"""`saegold --help` and every `saegold CMD --help` start without the heavy stacks.

Checked by the modules a fresh interpreter has loaded after printing the help (not by timing;
tests/perf/perf_help.py prints the time)."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from saegold.tui.cli import build_parser

MODEL_STACK = ("torch", "transformers", "sae_lens")
# What `saegold --help` must not need either: the database layer (sqlite-utils pulls in
# pandas and NumPy), the statistics stack, Textual and rich's consoles.
LIGHT = MODEL_STACK + ("sqlite_utils", "pandas", "numpy", "scipy", "sklearn", "textual",
                       "rich.console", "saegold.store.db", "saegold.engine.stats", "saegold.engine.scoring")

PROBE = """
import json, sys
from saegold.tui.cli import main
for argv in json.loads(sys.argv[1]):
    try:
        main(argv)
    except SystemExit:
        pass
print(json.dumps(sorted(sys.modules)))
"""


def _loaded(*argvs: list[str]) -> set[str]:
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(list(argvs))], capture_output=True,
                         text=True, check=True).stdout
    return set(json.loads(out.splitlines()[-1]))


def _commands() -> list[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sorted(sub.choices)


def _every_help_argv() -> list[list[str]]:
    """``[CMD, --help]`` for every command and every nested subcommand (export gold, ...)."""
    argvs: list[list[str]] = []

    def walk(parser: argparse.ArgumentParser, path: list[str]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    argvs.append([*path, name, "--help"])
                    walk(child, [*path, name])
    walk(build_parser(), [])
    return argvs


def _heavy(loaded: set[str], allowed: frozenset[str] = frozenset()) -> list[str]:
    return sorted(m for m in loaded - allowed if m.split(".")[0] in LIGHT or m in LIGHT
                  or any(m.startswith(p + ".") for p in LIGHT))


def test_no_command_help_imports_the_model_stack():
    commands = _commands()
    assert {"score", "label", "bench", "calibrate", "settings", "demo"} <= set(commands)
    argvs = [[c, "--help"] for c in commands]
    argvs += [["export", "gold", "--help"], ["import", "judgments", "--help"], ["settings", "set", "--help"]]
    loaded = _loaded(*argvs)
    assert "saegold.tui.commands.calibrate" in loaded
    assert sorted(m for m in loaded if m.split(".")[0] in MODEL_STACK) == []


# A command's help may read its defaults from this light module (no NumPy): nothing else heavy.
HELP_DEFAULTS = frozenset({"saegold.engine.stats", "saegold.engine.stats.defaults"})


@pytest.mark.parametrize("command", ["agreement", "calibrate"])
def test_statistics_help_is_light(command):
    """`saegold agreement --help` and `saegold calibrate --help` show the statistics'
    defaults without importing NumPy, SciPy, scikit-learn or the database layer."""
    loaded = _loaded([command, "--help"])
    assert f"saegold.tui.commands.{command}" in loaded and "saegold.engine.stats.defaults" in loaded
    assert _heavy(loaded, HELP_DEFAULTS) == []


def test_every_command_help_is_light():
    argvs = _every_help_argv()
    assert ["export", "gold", "--help"] in argvs and ["settings", "set", "--help"] in argvs
    assert len(argvs) > len(_commands())             # nested subcommands were found
    assert _heavy(_loaded(*argvs), HELP_DEFAULTS) == []


def test_later_defaults_are_shown_and_resolved(capsys):
    from saegold.engine.stats.resample import DEFAULT_BOOT
    from saegold.tui.cli import main

    try:
        main(["agreement", "--help"])
    except SystemExit:
        pass
    assert f"(default {DEFAULT_BOOT})" in capsys.readouterr().out
