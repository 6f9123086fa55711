"""The feature screen's reads live in the store (store.feature_view), the app holds no SQL,
and what the store returns is what the project holds."""
from __future__ import annotations

import json
import re
import tokenize
from pathlib import Path

from saegold.store import feature_view as fv
from saegold.store.db import now
from saegold.tui.app.model import find_feature, load_feature

APP = Path(__file__).resolve().parents[2] / "tui" / "app"
SQL = re.compile(r"\b(SELECT|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM)\b")


def sql_strings(path: Path) -> list[str]:
    """The string literals of a module that hold SQL (not the key bar's SELECT group, say)."""
    with path.open("rb") as f:
        return [t.string for t in tokenize.tokenize(f.readline)
                if t.type in (tokenize.STRING, getattr(tokenize, "FSTRING_MIDDLE", -1)) and SQL.search(t.string)]


def test_the_app_holds_no_sql():
    found = {p.name: sql_strings(p) for p in sorted(APP.glob("*.py"))}
    assert {k: v for k, v in found.items() if v} == {}


def test_reads_what_the_project_holds(filled):
    fid = filled.scalar("SELECT id FROM features WHERE idx = 1")
    lid, uuid = filled.query("SELECT id, uuid FROM labels WHERE feature_id = ? ORDER BY id LIMIT 1", [fid])[0].values()
    with filled.write() as db:
        db.execute("UPDATE bench_scores SET details = ? WHERE label_id = ? AND benchmark = 'detection' "
                   "AND control = 'true'", [json.dumps({"ci": [0.41, 0.77]}), lid])
        db.execute("INSERT INTO intruder_scores(feature_id, value, n, details, created_at) VALUES (?, ?, ?, ?, ?)",
                   [fid, 0.6, 10, json.dumps({"ci": [0.31, 0.83], "chance": 0.2}), now()])
    head = fv.head(filled, fid)
    assert (head.idx, head.source, head.model_id, head.sae_id) == (1, "tiny-model/layer1-res", "tiny-model",
                                                                    "layer1-res")
    assert fv.head(filled, 10_000) is None
    lt = fv.logit_tokens(filled, fid)
    assert lt.promoted[0] == (" up1_0", 3.0) and len(lt.suppressed) == 6 and len(lt.amplified_next) == 5
    tax = fv.taxonomy(filled, fid)
    assert tax.category == "output" and tax.continuation.startswith("From my experience")
    labels = {c.uuid: c for c in fv.labels(filled, fid)}
    score = labels[uuid].scores["detection"]["true"]
    assert (score.value, score.ci_low, score.ci_high, score.n) == (0.5, 0.41, 0.77, 20)
    assert labels[uuid].scores["fuzzing"]["true"].ci_low is None        # no interval stored
    got = fv.intruder(filled, fid)
    assert (got.value, got.ci_low, got.ci_high, got.n, got.chance) == (0.6, 0.31, 0.83, 10, 0.2)
    assert fv.intruder(filled, fid + 1) is None
    assert find_feature(filled, 3, head.source) == filled.scalar("SELECT id FROM features WHERE idx = 3")
    assert find_feature(filled, 3, "no/such-source") is not None and find_feature(filled, 999, None) is None
    view = load_feature(filled, fid, "alice")
    assert view.candidate(uuid).bench["detection"]["true"].ci_high == 0.77 and view.intruder == got
    # the candidates' order is the annotator's own shuffle, the same every time
    assert [c.uuid for c in load_feature(filled, fid, "alice").candidates] == view.candidate_uuids
