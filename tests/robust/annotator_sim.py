"""A simulated annotator process and a reader process, for the concurrency/crash tests.

Run as a script (a real separate process, like an annotator's app over SSH):

    python annotator_sim.py write DB NAME N SEED ACKFILE GOFILE [assign]
    python annotator_sim.py read DB STOPFILE GOFILE OUTFILE
    python annotator_sim.py zygote

``zygote`` imports the store once, then forks one writer per JSON line read on stdin (the
``write`` arguments) and answers each with the child's pid; the child writes its summary
to ACKFILE + ".summary".  The many short-lived writers of the crash trials start in
milliseconds this way (no connection is open in the zygote when it forks).

The writer records N judgment events through the app's write path
(``store.judgments.append(project, store.judgments.make_event(...))``), with random undo
(retractions of its own events).  It writes a line to ACKFILE only *after* ``append``
returned, so every acked line is an event the annotator was told was saved.  SQLITE_BUSY /
"locked" errors are retried with the same event (idempotent by UUID) and counted.  At the
end it prints one JSON summary line: writes, retries, latencies.

The reader computes agreement (``engine.stats.agreement`` when present, else the derived
current view) in a loop until STOPFILE exists, and writes a JSON summary to OUTFILE.
"""
from __future__ import annotations

import json
import os
import random
import sqlite3
import sys
import time
import traceback
from pathlib import Path

from saegold.store import judgments
from saegold.store.db import open_project
from saegold.store.errors import StoreError

KINDS = ("tier", "tier", "verdict", "verdict", "verdict", "preference", "gold_label", "skip",
         "flag", "note")
UNDO_P = 0.2


def _wait_for(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {path}")
        time.sleep(0.005)


def _random_event(rng: random.Random, name: str, feats: list[int], labels: dict[int, list[str]]) -> dict:
    fid = rng.choice(feats)
    kind = rng.choice(KINDS)
    cands = labels.get(fid) or []
    if kind in ("verdict", "preference") and not cands:
        kind = "tier"
    kw: dict = {}
    if kind == "tier":
        kw = {"value": rng.choice(judgments.TIERS), "confidence": rng.randint(1, 3)}
    elif kind == "verdict":
        kw = {"value": rng.choice(judgments.VERDICTS), "label_uuid": rng.choice(cands)}
    elif kind == "preference":
        if rng.random() < 0.2:
            kw = {"value": "neither"}
        else:
            kw = {"label_uuid": rng.choice(cands)}
    elif kind == "gold_label":
        kw = {"value": f"gold {rng.randint(0, 10**6)}"}
    elif kind in ("flag", "note"):
        kw = {"value": f"{kind} by {name} \x1b[31m[bold]x[/bold]"}
    return judgments.make_event(name, fid, kind, seconds_spent=rng.random() * 30, **kw)


def write(db: str, name: str, n: int, seed: int, ackfile: str, gofile: str, assign: bool = False) -> int:
    """``assign``: work like the app, on features handed out by ``store.queue.assign_more``
    (a few at a time, as the queue runs dry) instead of on random features."""
    rng = random.Random(seed)
    project = open_project(db)
    judgments.ensure_annotator(project, name)
    feats = [r["id"] for r in project.query("SELECT id FROM features ORDER BY id")]
    labels: dict[int, list[str]] = {}
    for r in project.query("SELECT feature_id, uuid FROM labels WHERE status = 'ok'"):
        labels.setdefault(r["feature_id"], []).append(r["uuid"])
    Path(f"{gofile}.ready-{name}").touch()
    _wait_for(Path(gofile))
    if assign:
        from saegold.store import queue

        mine: list[int] = []
    live: list[str] = []  # this annotator's own events that are not retracted
    feature_of: dict[str, int] = {}
    retries = errors = 0
    lat: list[float] = []
    with open(ackfile, "a", buffering=1) as ack:
        for _ in range(n):
            if live and rng.random() < UNDO_P:
                target = live.pop(rng.randrange(len(live)))
                ev = judgments.make_event(name, feature_of[target], "retract", target_uuid=target)
            else:
                pool = feats
                if assign:
                    if rng.random() < 0.3 or not mine:
                        _retrying(lambda: queue.assign_more(project, name, n=3))
                        mine = queue.queue(project, name)
                    pool = mine or feats
                ev = _random_event(rng, name, pool, labels)
            while True:
                t0 = time.perf_counter()
                try:
                    judgments.append(project, ev)
                except (StoreError, sqlite3.OperationalError) as exc:
                    if "locked" in str(exc) or "busy" in str(exc):
                        retries += 1
                        continue
                    errors += 1
                    print(f"unretryable: {exc}", file=sys.stderr)
                    raise
                lat.append(time.perf_counter() - t0)
                break
            # Acknowledged only now: append returned.
            ack.write(f"{ev['uuid']} {ev['kind']} {ev['target_uuid'] or '-'}\n")
            if ev["kind"] != "retract":
                live.append(ev["uuid"])
                feature_of[ev["uuid"]] = ev["feature_id"]
    project.close()
    print(json.dumps({"name": name, "writes": len(lat), "retries": retries, "errors": errors,
                      "latencies": lat}))
    return 0


def _retrying(fn):
    while True:
        try:
            return fn()
        except (StoreError, sqlite3.OperationalError) as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            print(f"retry: {exc}", file=sys.stderr)


def read(db: str, stopfile: str, gofile: str, outfile: str) -> int:
    project = open_project(db, readonly=True)
    try:
        from saegold.engine.stats import agreement as _agreement  # noqa: F401
        compute = _agreement_fn(project)
        how = "saegold.engine.stats.agreement"
    except ImportError:
        def compute() -> object:
            return judgments.current(project)
        how = "saegold.store.judgments.current"
    compute()  # warm up (imports, first read) before the writers start
    Path(gofile + ".ready-reader").touch()
    _wait_for(Path(gofile))
    loops, errors, last_error = 0, 0, None
    while not Path(stopfile).exists():
        try:
            compute()
            loops += 1
        except Exception:  # noqa: BLE001 - the test asserts there are none
            errors += 1
            last_error = traceback.format_exc(limit=3)
            time.sleep(0.01)
    project.close()
    Path(outfile).write_text(json.dumps({"loops": loops, "errors": errors, "how": how,
                                         "last_error": last_error}))
    return 0


def _agreement_fn(project):
    """The STATS engineer's agreement on the live project (few bootstrap rounds: the point
    is reading while writers write, not the confidence intervals)."""
    from saegold.engine.stats import agreement

    return lambda: agreement.compute(project, n_boot=20)


def zygote() -> int:
    import signal

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped automatically
    for line in sys.stdin:
        args = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                summary = Path(args[4] + ".summary")
                with open(summary.with_suffix(".tmp"), "w") as out:
                    sys.stdout = out
                    code = write(args[0], args[1], int(args[2]), int(args[3]), args[4], args[5],
                                 assign=len(args) > 6 and args[6] == "assign")
                    out.flush()
                summary.with_suffix(".tmp").rename(summary)
            except BaseException:  # noqa: BLE001 - reported through the missing summary
                traceback.print_exc()
            finally:
                os._exit(code)
        print(pid, flush=True)
    return 0


if __name__ == "__main__":
    cmd, *rest = sys.argv[1:]
    if cmd == "zygote":
        sys.exit(zygote())
    if cmd == "write":
        db, name, n, seed, ackfile, gofile, *mode = rest
        sys.exit(write(db, name, int(n), int(seed), ackfile, gofile, assign=mode == ["assign"]))
    if cmd == "read":
        sys.exit(read(*rest))
    raise SystemExit(f"unknown command {cmd!r}")
