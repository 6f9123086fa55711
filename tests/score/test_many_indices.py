"""Selecting more features than SQLite allows variables in one statement (250,000 here; 32,766
in some builds) works: the indices travel as one JSON parameter."""
from __future__ import annotations

import sqlite3

from saegold.engine.labeling.inputs import feature_rows
from saegold.engine.scoring.inputscore import score_stored
from saegold.store import features as F


def test_index_lists_longer_than_the_variable_limit(project):
    with project.write() as db:
        src = F.get_or_create_source(db, "m", "s", layer=1)
        for i in range(60):
            F.upsert_feature(db, src, i)
    project.db.conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 20)
    wanted = list(range(0, 120, 2))                          # 60 indices, 30 of them stored
    rows = feature_rows(project, source="m/s", indices=wanted)
    assert [r["idx"] for r in rows] == list(range(0, 60, 2))
    assert score_stored(project, source="m/s", features=wanted) == 0   # nothing to score, but no error
