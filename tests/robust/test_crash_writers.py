"""kill -9 of annotator processes at random moments loses nothing acknowledged."""
from __future__ import annotations

import random

from robust_harness import check_nothing_lost, run_writers

from saegold.store.db import open_project

TRIALS = 20


def test_kill_minus_nine_loses_nothing_acknowledged(seeded, tmp_path):
    rng = random.Random(8)
    killed = stored = acked = 0
    for trial in range(TRIALS):
        kills = {i: 0.01 + rng.random() * 0.4 for i in range(2)}  # every writer, mid-stream
        result = run_writers(seeded, tmp_path / "work", 2, 5000, kill_after=kills, seed=100 + trial, fork=True,
                             prefix=f"t{trial}-")
        figures = check_nothing_lost(seeded, result, exact=not result.killed)
        killed += len(result.killed)
        acked += figures["acked"]
        stored += figures["stored"]
    # The trials really interrupted writers mid-stream, and work got done around the kills.
    assert killed == 2 * TRIALS
    assert acked > 0
    # At most one event per killed writer can be stored without its ack (killed between
    # commit and the ack line): never more.
    assert 0 <= stored - acked <= killed
    with open_project(seeded) as p:
        assert p.scalar("PRAGMA integrity_check") == "ok"
        assert p.scalar("PRAGMA journal_mode") == "wal"
