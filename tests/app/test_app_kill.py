"""The real app in a pseudo-terminal: N keys, each acknowledged on screen as saved, then
SIGKILL; all N events are in the database."""
from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest

from appdata import fill

from saegold.store.db import open_project
from saegold.store.judgments import events

ROOT = Path(__file__).resolve().parents[2]
ANSI = re.compile(r"\x1b(\[[0-9;?<>=$]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[PX^_][^\x1b]*\x1b\\|.)")


def _controlling_tty() -> None:
    """In the child: a new session whose controlling terminal is the pty (as under sshd),
    so a hangup of the pty sends SIGHUP."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """A child process on a pty of a given size, with everything it prints collected."""

    def __init__(self, argv: list[str], cols: int = 80, rows: int = 24, cwd: Path = ROOT):
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        env = {**os.environ, "TERM": "xterm-256color", "COLORTERM": "", "NO_COLOR": ""}
        env.pop("COLORTERM")
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env,
                                     preexec_fn=_controlling_tty, close_fds=True)
        os.close(slave)
        self.master, self.out, self.lock = master, bytearray(), threading.Lock()
        self.stopping = False
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def hang_up(self) -> None:
        """Close our end of the pty, as sshd does when the connection drops."""
        self.stopping = True
        self.reader.join(timeout=5)
        os.close(self.master)
        self.master = None

    def _read(self) -> None:
        while not self.stopping:
            if not select.select([self.master], [], [], 0.05)[0]:
                continue
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            with self.lock:
                self.out += data

    def text(self) -> str:
        with self.lock:
            raw = self.out.decode("utf-8", "replace")
        return ANSI.sub("", raw)

    def wait_for(self, needle: str, timeout: float = 60) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if needle in self.text():
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"app exited ({self.proc.returncode}): {self.text()[-2000:]}")
            time.sleep(0.05)
        raise AssertionError(f"{needle!r} never appeared; screen tail: {self.text()[-1500:]!r}")

    def send(self, keys: str) -> None:
        os.write(self.master, keys.encode())


@pytest.mark.parametrize("end", ["sigkill", "hangup"])
def test_killed_or_hung_up_after_n_acknowledged_judgments_loses_none(tmp_path, end):
    """SIGKILL, or the terminal going away as when an SSH connection drops."""
    db = tmp_path / "project.db"
    p = open_project(db, create=True)
    from test_app_inert import NASTY
    fill(p, 12, texts=NASTY)
    p.close()
    term = Terminal([sys.executable, "-m", "saegold.tui.cli", "--db", str(db), "annotate",
                     "--annotator", "kim", "--no-intro"])
    try:
        term.wait_for("verdicts 0/")
        keys = "i3ypwo1yu2pc"  # every one of these writes exactly one event on this feature
        for k, key in enumerate(keys, 1):
            term.send(key)
            term.wait_for(f"saved #{k} ")
        if end == "sigkill":
            term.proc.send_signal(signal.SIGKILL)
        else:
            term.hang_up()
        term.proc.wait(timeout=30)
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
        if term.master is not None:
            os.close(term.master)
    if end == "sigkill":
        assert term.proc.returncode == -signal.SIGKILL
    else:
        assert term.proc.returncode == -signal.SIGHUP
    # The untrusted strings reached the real terminal only as visible text.
    raw = bytes(term.out)
    for seq in (b"\x1b]0;pwned", b"\x1b[2J", b"\x1b[5m", b"\x1bc"):
        assert seq not in raw
    assert b"[bold red]lab[/]" in raw and b"\\x1b[2J" in raw
    p = open_project(db)
    got = events(p, annotator="kim")
    assert len(got) == len(keys)
    assert [e["kind"] for e in got] == ["tier", "tier", "verdict", "verdict", "verdict", "tier", "tier",
                                         "verdict", "tier", "tier", "verdict", "tier"]
    tiers = [(e["value"], e["confidence"]) for e in got if e["kind"] == "tier"]
    assert tiers == [("input", None), ("input", 3), ("output", 3), ("output", 1), ("obscure", 1),
                     ("obscure", 2), ("cross", 2)]
    assert p.scalar("PRAGMA integrity_check") == "ok"
    # The judged feature stays kim's.  A hang-up released the features ahead (leases) before
    # the process ended; after SIGKILL they stay until they expire.
    from saegold.store import queue as sq
    assert sq.queue(p, "kim")[0] == got[0]["feature_id"]
    held = sq.leases(p, "kim")
    assert len(held) == (sq.LOOKAHEAD - 1 if end == "sigkill" else 0)
    p.close()


def test_two_annotator_processes_at_once(tmp_path):
    """Two app processes on one project file, keys interleaved: every acknowledged event is
    in the log, each under its own annotator, and the queues overlap as set (overlap 2)."""
    db = tmp_path / "project.db"
    p = open_project(db, create=True)
    fill(p, 12)
    p.close()
    terms = {who: Terminal([sys.executable, "-m", "saegold.tui.cli", "--db", str(db), "annotate",
                            "--annotator", who, "--no-intro"]) for who in ("ann", "ben")}
    try:
        for t in terms.values():
            t.wait_for("verdicts 0/")
        keys = "iypnoyw"  # tier, verdicts, next feature, tier, verdicts
        counts = dict.fromkeys(terms, 0)
        for key in keys:
            for who, t in terms.items():
                t.send(key)
                if key != "n":
                    counts[who] += 1
                    t.wait_for(f"saved #{counts[who]} ")
                else:
                    time.sleep(0.3)
        for t in terms.values():
            t.send("q")
            t.proc.wait(timeout=30)
    finally:
        for t in terms.values():
            if t.proc.poll() is None:
                t.proc.kill()
            if t.master is not None:
                t.hang_up()
    p = open_project(db)
    for who in terms:
        got = events(p, annotator=who)
        assert len(got) == counts[who] == 6 and {e["annotator"] for e in got} == {who}
    assert p.scalar("SELECT MAX(n) FROM (SELECT COUNT(*) n FROM assignments GROUP BY feature_id)") <= 2
    p.close()
