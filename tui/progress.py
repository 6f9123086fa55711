"""Rich progress bars fed by engine/store ``progress(stage, done, total)`` callbacks."""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.text import Text

from .safe import inert_line


@contextlib.contextmanager
def progress_bars(console: Console | None = None) -> Iterator:
    """Yield a ``progress(stage, done, total)`` callable that draws one bar per stage; its
    ``note(line)`` prints one line on stderr, above the bars (also when they are hidden)."""
    console = console or Console(stderr=True)
    bars = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console,
        disable=not sys.stderr.isatty() and not console.is_terminal, transient=False,
        # No stdout redirection: Rich would send everything printed meanwhile (an export's
        # data, too) to its console on stderr, re-wrapped to the terminal width and past the
        # terminal guard, leaving `saegold export gold > gold.jsonl` empty.
        redirect_stdout=False, redirect_stderr=False,
    )
    tasks: dict[str, TaskID] = {}

    def report(stage: str, done: int, total: int | None) -> None:
        if stage not in tasks:
            tasks[stage] = bars.add_task(inert_line(stage), total=total)
        bars.update(tasks[stage], completed=done, total=total)

    def note(line: str) -> None:
        """One line on stderr (above the bars on a terminal), made inert, never wrapped."""
        bars.console.print(Text(f"saegold: {inert_line(line)}"), soft_wrap=True, markup=False,
                           highlight=False)

    report.note = note  # type: ignore[attr-defined]
    with bars:
        yield report
