"""Shared by tests/robust and tests/perf/perf_writers.py: seed a project, run simulated
annotator processes against it (optionally with a reader, optionally killing writers), and
check that nothing acknowledged was lost."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from saegold.store.db import open_project
from saegold.store.features import get_or_create_source, put_examples, upsert_feature
from saegold.store.labels import add_label

SIM = Path(__file__).with_name("annotator_sim.py")
REPO = Path(__file__).resolve().parents[2]


def seed_project(path: Path, n_features: int = 40) -> Path:
    """A project with ``n_features`` features, one top example and two candidate labels each."""
    with open_project(path, create=True) as p, p.write() as db:
        sid = get_or_create_source(db, "tiny-model", "0-res", layer=0, d_sae=n_features)
        for i in range(n_features):
            fid = upsert_feature(db, sid, i, density=0.01, max_act=1.0)
            put_examples(db, fid, "top", [{"tokens": ["a", f"w{i}"], "acts": [0.0, 1.0]}], origin="test")
            for method in ("eleuther_acts_top5", "baez"):
                add_label(db, fid, method, f"label {i} {method}", origin="test")
    return path


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


@dataclass
class RunResult:
    acked: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)  # name -> lines
    summaries: list[dict] = field(default_factory=list)
    reader: dict | None = None
    seconds: float = 0.0
    killed: list[str] = field(default_factory=list)

    @property
    def latencies(self) -> list[float]:
        return [x for s in self.summaries for x in s["latencies"]]

    @property
    def retries(self) -> int:
        return sum(s["retries"] for s in self.summaries)

    @property
    def errors(self) -> int:
        return sum(s["errors"] for s in self.summaries)

    def all_acked(self) -> list[tuple[str, str, str]]:
        return [line for lines in self.acked.values() for line in lines]


def read_acks(path: Path) -> list[tuple[str, str, str]]:
    """Complete ack lines only (a writer killed mid-line never acknowledged that event)."""
    if not path.exists():
        return []
    text = path.read_text()
    lines = text.split("\n")
    complete = lines[:-1]  # the last element is '' or a partial line
    return [tuple(line.split(" ")) for line in complete]  # type: ignore[misc]


class _Zygote:
    """One pre-imported process that forks writers on request (see annotator_sim.zygote)."""

    proc: subprocess.Popen | None = None

    @classmethod
    def spawn(cls, args: list[str]) -> int:
        if cls.proc is None or cls.proc.poll() is not None:
            cls.proc = subprocess.Popen([sys.executable, str(SIM), "zygote"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, env=_env())
        cls.proc.stdin.write(json.dumps(args) + "\n")
        cls.proc.stdin.flush()
        return int(cls.proc.stdout.readline())


class _Forked:
    """A forked writer, with the bits of the ``Popen`` interface the harness uses."""

    def __init__(self, args: list[str]):
        self.summary = Path(args[4] + ".summary")
        self.summary.unlink(missing_ok=True)
        self.pid = _Zygote.spawn(args)
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            if self.summary.exists():
                self.returncode = 0
            else:
                try:
                    os.kill(self.pid, 0)
                except ProcessLookupError:
                    self.returncode = 0 if self.summary.exists() else -9
        return self.returncode

    def send_signal(self, sig: int) -> None:
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def communicate(self, timeout: float = 600) -> tuple[str, str]:
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"writer {self.pid} did not finish")
            time.sleep(0.005)
        return (self.summary.read_text() if self.returncode == 0 else ""), "(forked writer: see stderr)"


def run_writers(db: Path, work: Path, n_writers: int, n_each: int, *, reader: bool = False,
                kill_after: dict[int, float] | None = None, seed: int = 0,
                prefix: str = "annotator", fork: bool = False, assign: bool = False) -> RunResult:
    """Run ``n_writers`` annotator processes at once; kill writer i after ``kill_after[i]`` s.

    ``fork``: fork the writers from one pre-imported process (fast starts, for many short
    crash trials) instead of starting each as a new interpreter.  ``assign``: writers take
    their features from the app's lazy queue (``store.queue.assign_more``)."""
    work.mkdir(parents=True, exist_ok=True)
    go, stop = work / f"go-{seed}", work / f"stop-{seed}"
    for f in (go, stop, *work.glob(f"go-{seed}.ready-*")):
        f.unlink(missing_ok=True)
    procs, acks, names = [], [], []
    for i in range(n_writers):
        name = f"{prefix}{i}"
        ack = work / f"ack-{name}-{seed}.txt"
        ack.unlink(missing_ok=True)
        args = [str(db), name, str(n_each), str(seed * 1000 + i), str(ack), str(go)] + (["assign"] if assign else [])
        procs.append(_Forked(args) if fork else subprocess.Popen(
            [sys.executable, str(SIM), "write", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
        ))
        acks.append(ack)
        names.append(name)
    rproc, rout = None, work / f"reader-{seed}.json"
    if reader:
        rproc = subprocess.Popen([sys.executable, str(SIM), "read", str(db), str(stop), str(go), str(rout)],
                                 env=_env(), stderr=subprocess.PIPE, text=True)
    result = RunResult()
    # Let every process finish importing and opening, then start them together.
    ready = [Path(f"{go}.ready-{n}") for n in names] + ([Path(f"{go}.ready-reader")] if reader else [])
    deadline = time.monotonic() + 120
    while not all(r.exists() for r in ready):
        dead = [p for p in procs + ([rproc] if rproc else []) if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            for p in procs + ([rproc] if rproc else []):
                p.kill()
            raise AssertionError(f"a simulated process failed to start: {dead[0].communicate()[1][-2000:] if dead else 'timeout'}")
        time.sleep(0.01)
    go.touch()
    t0 = time.monotonic()
    kill_after = kill_after or {}
    pending = dict(kill_after)
    while pending:
        elapsed = time.monotonic() - t0
        for i, at in list(pending.items()):
            if elapsed >= at:
                if procs[i].poll() is None:
                    procs[i].send_signal(signal.SIGKILL)
                    result.killed.append(names[i])
                del pending[i]
        time.sleep(0.002)
    for i, p in enumerate(procs):
        out, err = p.communicate(timeout=600)
        if names[i] in result.killed:
            continue
        if p.returncode != 0:
            raise AssertionError(f"writer {names[i]} failed ({p.returncode}): {err[-2000:]}")
        result.summaries.append(json.loads(out.strip().splitlines()[-1]))
    result.seconds = time.monotonic() - t0
    if rproc is not None:
        stop.touch()
        _, rerr = rproc.communicate(timeout=120)
        if rproc.returncode != 0:
            raise AssertionError(f"reader failed: {rerr[-2000:]}")
        result.reader = json.loads(rout.read_text())
    for name, ack in zip(names, acks):
        result.acked[name] = read_acks(ack)
    return result


def check_nothing_lost(db: Path, result: RunResult, *, exact: bool) -> dict:
    """Assert the store holds every acknowledged event exactly once and is sound.

    ``exact``: no writer was killed, so the store holds exactly the acked events.
    """
    with open_project(db) as p:
        assert p.scalar("PRAGMA integrity_check") == "ok"
        rows = p.query("SELECT uuid, annotator, kind, target_uuid FROM judgments")
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["uuid"]] = counts.get(r["uuid"], 0) + 1
    by_uuid = {r["uuid"]: r for r in rows}
    acked = result.all_acked()
    lost = [u for u, _, _ in acked if u not in by_uuid]
    dupes = [u for u, c in counts.items() if c != 1]
    assert not lost, f"{len(lost)} acknowledged events lost, e.g. {lost[:3]}"
    assert not dupes, f"duplicated events: {dupes[:3]}"
    assert len({u for u, _, _ in acked}) == len(acked), "a writer acknowledged one event twice"
    for u, kind, target in acked:
        assert by_uuid[u]["kind"] == kind
        if kind == "retract":
            assert by_uuid[target]["annotator"] == by_uuid[u]["annotator"], "retracted someone else's event"
    mine = [r for r in rows if r["annotator"] in result.acked]  # this run's writers only
    if exact:
        assert len(mine) == len(acked), f"{len(mine)} events stored, {len(acked)} acknowledged"
    return {"stored": len(mine), "acked": len(acked), "lost": len(lost)}


def p99(values: list[float]) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(0.99 * (len(s) - 1))))] if s else float("nan")


def random_kills(rng: random.Random, n_writers: int, max_s: float) -> dict[int, float]:
    """Kill a random non-empty subset of writers at random moments in [0, max_s)."""
    chosen = rng.sample(range(n_writers), rng.randint(1, n_writers))
    return {i: rng.random() * max_s for i in chosen}


def table_dump(path: Path) -> dict[str, list[tuple]]:
    """Every row of every table, sorted: to prove a database was left exactly as it was."""
    from saegold.store.db import connect_read_only

    conn, _ = connect_read_only(path)  # works on a read-only directory or mount, too
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: sorted(conn.execute(f"SELECT * FROM \"{t}\"").fetchall(), key=repr) for t in tables}
    finally:
        conn.close()
