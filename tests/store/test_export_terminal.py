"""Exports are data: exact bytes into a pipe, but never raw escape sequences into a terminal."""
from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

from store.features import get_or_create_source, upsert_feature
from store.labels import add_label

HOSTILE = "\x1b[31mred\x1b[0m \x07bell \u009b2J [bold]markup[/bold] \u202eevil"


def _project(tmp_path: Path) -> Path:
    from store.db import open_project

    path = tmp_path / "p.db"
    with open_project(path, create=True) as p, p.write() as db:
        fid = upsert_feature(db, get_or_create_source(db, "m", "s"), 3)
        add_label(db, fid, "baez", HOSTILE, origin="test")
    return path


def _saegold(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from tui.cli import main; sys.exit(main())", *args]


def _run_on_tty(argv: list[str]) -> bytes:
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdout=slave, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO once the child closed the pty
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(master)
    assert proc.returncode == 0
    return b"".join(chunks)


def test_export_to_terminal_is_inert(tmp_path):
    db = _project(tmp_path)
    for fmt in ("csv", "jsonl"):
        out = _run_on_tty(_saegold("--db", str(db), "export", "labels", "--format", fmt))
        text = out.decode("utf-8")
        assert "\x1b" not in text and "\x07" not in text and "\u009b" not in text and "\u202e" not in text
        assert "[bold]markup[/bold]" in text
        # csv shows the escape made visible; JSON already spells it \u001b
        assert ("\\x1b[31mred" if fmt == "csv" else "\\u001b[31mred") in text


def test_export_to_pipe_is_exact(tmp_path):
    db = _project(tmp_path)
    out = subprocess.run(_saegold("--db", str(db), "export", "labels", "--format", "jsonl"),
                         capture_output=True, check=True).stdout.decode("utf-8")
    assert json.loads(out.splitlines()[0])["text"] == HOSTILE
