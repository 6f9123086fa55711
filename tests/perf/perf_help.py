"""Start-up time of `saegold --help` and of each `saegold CMD --help`.

Run: .venv/bin/python tests/perf/perf_help.py [--repeat N]
Prints the median wall-clock time of each over N fresh processes, next to a bare
`python -c pass` measured in the same run (the interpreter's own start-up); the target for
`saegold --help` is under 0.5 s.  Timed as installed code runs: with Python's bytecode cache
(written to a temporary PYTHONPYCACHEPREFIX by a first, untimed run, even where
PYTHONDONTWRITEBYTECODE is set); `saegold --help` is also timed without it ("cold").
No figure is asserted anywhere.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import os
import sys
import tempfile
import time
from pathlib import Path

SAEGOLD = Path(sys.executable).parent / "saegold"


def commands() -> list[str]:
    """Every command of the installed saegold (read from its parser, so none is left out)."""
    from saegold.tui.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return list(sub.choices)


def median_seconds(argv: list[str], repeat: int, env: dict | None = None) -> float:
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env)  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    n = ap.parse_args().repeat
    cold = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    with tempfile.TemporaryDirectory() as cache:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = cache
        bare = median_seconds([sys.executable, "-c", "pass"], n, env)
        top = median_seconds([str(SAEGOLD), "--help"], n, env)
        top_cold = median_seconds([str(SAEGOLD), "--help"], n, cold)
        print(f"{'python -c pass (interpreter start-up)':<40} {bare:6.3f} s")
        print(f"{'saegold --help':<40} {top:6.3f} s   (target < 0.5 s; {top - bare:.3f} s above bare Python)")
        print(f"{'saegold --help, no bytecode cache':<40} {top_cold:6.3f} s")
        for cmd in commands():
            t = median_seconds([str(SAEGOLD), cmd, "--help"], max(3, n // 2), env)
            print(f"{'saegold ' + cmd + ' --help':<40} {t:6.3f} s")


if __name__ == "__main__":
    main()
