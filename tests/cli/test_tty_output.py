"""Commands run in a real terminal (a pty): hostile stored text never reaches it raw, and
data sent to a redirected stdout lands in the file even while a progress bar is drawn on
the terminal (Rich used to move it to stderr, wrapped to the screen width)."""
from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from saegold.store import judgments
from saegold.store.db import open_project
from saegold.store.features import get_or_create_source, put_examples, upsert_feature
from saegold.store.labels import add_label

REPO = Path(__file__).resolve().parents[2]
HOSTILE = "\x1b[2J\x1b]0;pwned\x07x\x9b31my\u202ez [bold red]markup[/bold red]"
RAW = [b"\x1b[2J", b"\x1b]0;", "\x9b".encode(), "\u202e".encode(), b"\x07"]


@pytest.fixture
def hostile(tmp_path) -> Path:
    path = tmp_path / "h.db"
    with open_project(path, create=True) as p:
        with p.write() as db:
            sid = get_or_create_source(db, "m", f"s{HOSTILE}", layer=0, d_sae=4)
            for i in range(4):
                fid = upsert_feature(db, sid, i, density=0.1, max_act=1.0)
                put_examples(db, fid, "top", [{"tokens": [HOSTILE, "b"], "acts": [1.0, 0.0]}], origin="t")
                add_label(db, fid, "baez", f"label {HOSTILE}", origin="t")
        for fid in [r["id"] for r in p.query("SELECT id FROM features")]:
            for who in ("ann", f"bob{HOSTILE}"):
                judgments.append(p, judgments.make_event(who, fid, "tier", value="input", confidence=2))
                judgments.append(p, judgments.make_event(who, fid, "gold_label", value=HOSTILE))
    return path


def _in_pty(args: list[str], stdout=None) -> tuple[int, bytes]:
    """Run ``saegold ARGS`` with a pty as its terminal (stdout too unless given)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "PYTHONPATH": str(REPO)}
    env.pop("COLUMNS", None)
    proc = subprocess.Popen([sys.executable, "-m", "saegold.tui.cli", *args], stdin=slave,
                            stdout=stdout if stdout is not None else slave, stderr=slave, env=env, cwd=REPO)
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    return proc.wait(timeout=60), out


@pytest.mark.parametrize("args", [["export", "gold"], ["export", "gold", "--format", "csv"],
                                  ["export", "gold", "--format", "neuronpedia"], ["export", "labels"],
                                  ["export", "labels", "--format", "csv"],
                                  ["status"], ["agreement", "--bootstrap", "5", "--min-items", "1"]],
                         ids=" ".join)
def test_terminal_gets_nothing_raw(hostile, args):
    rc, out = _in_pty(["--db", str(hostile), *args])
    assert rc == 0, out
    assert [r for r in RAW if r in out] == [], out
    assert b"\\x9b" in out or b"\\u009b" in out or b"\\x1b" in out  # shown, escaped


def test_export_to_a_redirected_stdout_is_complete(hostile, tmp_path):
    target = tmp_path / "gold.jsonl"
    with open(target, "wb") as f:
        rc, term = _in_pty(["--db", str(hostile), "export", "gold"], stdout=f)
    assert rc == 0, term
    records = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 4
    assert any(HOSTILE in v for r in records for v in _strings(r))  # data kept exactly
    assert b"feature_id" not in term  # none of it went to the terminal


def _strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def test_annotate_refuses_a_name_with_control_characters_inert(hostile, capsys):
    """A hostile --annotator is refused (as `annotators --add` does), in one inert line,
    before anything is written."""
    from saegold.tui.cli import main

    with open_project(hostile) as p:
        before = p.scalar("SELECT COUNT(*) FROM annotators")
    assert main(["--db", str(hostile), "annotate", "--annotator", f"eve{HOSTILE}"]) == 2
    out, err = capsys.readouterr()
    assert len(err.strip().splitlines()) == 1 and "a name must be printable text" in err
    assert "eve\\x1b[2J" in err, err
    assert [r for r in RAW if r in (out + err).encode()] == [], out + err
    with open_project(hostile) as p:
        assert p.scalar("SELECT COUNT(*) FROM annotators") == before


def test_annotate_messages_show_the_annotator_name_inert(hostile, capsys):
    """The queue-finished line names the annotator, made inert (Rich markup stays literal)."""
    from saegold.tui.cli import main

    assert main(["--db", str(hostile), "annotate", "--annotator", "eve [bold]x[/bold]"]) == 0
    out, err = capsys.readouterr()
    assert "nothing left to assign to eve [bold]x[/bold]" in out, out


def test_annotate_on_the_demo_project_carries_the_demo_notice(tmp_path):
    """`saegold annotate` on the demo project (a second annotator) says it is the demo too."""
    from saegold.tui.commands.annotate import demo_notice
    from saegold.tui.commands.demo import DEMO_SOURCE, NOTICE

    model, sae = DEMO_SOURCE.split("/")
    with open_project(tmp_path / "d.db", create=True) as p:
        with p.write() as db:
            get_or_create_source(db, model, sae, layer=0, d_sae=1)
        assert demo_notice(p) == NOTICE
        with p.write() as db:
            get_or_create_source(db, "gemma-2-2b", "20-res", layer=0, d_sae=1)
        assert demo_notice(p) is None
