"""Gold resolution recomputed from the policy definitions, independently of engine.gold.

``majority``: the value strictly more annotators gave than any other (a tie is unresolved);
``unanimous``: the value when every annotator who answered gave it; ``adjudicated``: the
lead's (latest) decision wins, else the majority.  Pairwise agreement: share of agreeing
annotator pairs.
"""
from __future__ import annotations

import itertools
from collections import Counter

import numpy as np

from saegold.engine import gold
from saegold.store import features as store_features
from saegold.store import labels as store_labels
from saegold.store.judgments import TIERS, append_many, ensure_annotator, make_event

VERDICTS = ("correct", "partly", "wrong")


def majority(votes):
    c = Counter(votes).most_common()
    if not c or (len(c) > 1 and c[0][1] == c[1][1]):
        return None
    return c[0][0]


def unanimous(votes):
    return votes[0] if votes and len(set(votes)) == 1 else None


def _time(t: int) -> str:
    return f"2026-01-01T00:{t // 60:02d}:{t % 60:02d}.000000Z"


def test_majority_unanimous_and_pair_agreement(project):
    rng = np.random.default_rng(7)
    names = ["ann", "bob", "cy", "dee"]
    with project.write() as db:
        sid = store_features.get_or_create_source(db, "m", "s", layer=2)
        fids = [store_features.upsert_feature(db, sid, i) for i in range(30)]
        labs = {fid: store_labels.add_label(db, fid, "baez", f"label {fid}", origin="saegold") for fid in fids}
    events, expect, t = [], {}, 0
    for fid in fids:
        who = [n for n in names if rng.random() < 0.7]
        tiers, verdicts = [], []
        for n in who:
            tier = TIERS[int(rng.integers(0, 2))]          # two values: ties and majorities both occur
            v = VERDICTS[int(rng.integers(0, 3))]
            tiers.append(tier)
            verdicts.append(v)
            t += 1
            events.append(make_event(n, fid, "tier", value=tier, seconds_spent=5.0, created_at=_time(t)))
            t += 1
            events.append(make_event(n, fid, "verdict", value=v, label_uuid=labs[fid], seconds_spent=5.0,
                                     created_at=_time(t)))
        expect[fid] = (tiers, verdicts)
    for n in names:
        ensure_annotator(project, n)
    append_many(project, events)

    for policy, rule in (("majority", majority), ("unanimous", unanimous)):
        recs = {fids[r["feature"]]: r for r in gold.gold_records(project, policy=policy)}
        assert set(recs) == {f for f, (tiers, _) in expect.items() if tiers}
        for fid, r in recs.items():
            tiers, verdicts = expect[fid]
            assert r["tier"] == rule(tiers)
            (cand,) = r["candidates"]
            assert cand["verdict"] == rule(verdicts)
            assert (cand["correct"], cand["partly"], cand["wrong"]) == tuple(verdicts.count(v) for v in VERDICTS)
            pairs = list(itertools.combinations(tiers, 2))
            assert r["tier_agreement"] == (sum(a == b for a, b in pairs) / len(pairs) if pairs else None)
            assert r["n_annotators"] == len(tiers)
            assert r["gold_label"] == ("label %d" % fid if rule(verdicts) == "correct" else None)


def test_the_latest_adjudication_wins(project):
    """Two leads adjudicate the same feature: the later decision is the lead's decision."""
    with project.write() as db:
        sid = store_features.get_or_create_source(db, "m", "s", layer=2)
        fid = store_features.upsert_feature(db, sid, 0)
        lab = store_labels.add_label(db, fid, "baez", "a label", origin="saegold")
    for n in ("amy", "zed"):
        ensure_annotator(project, n, "lead")
    ensure_annotator(project, "ann")
    append_many(project, [
        make_event("ann", fid, "tier", value="cross", created_at=_time(1)),
        make_event("zed", fid, "adj_tier", value="input", created_at=_time(2)),
        make_event("zed", fid, "adj_verdict", value="wrong", label_uuid=lab, created_at=_time(3)),
        make_event("zed", fid, "adj_gold_label", value="zed's label", created_at=_time(4)),
        make_event("amy", fid, "adj_tier", value="output", created_at=_time(5)),
        make_event("amy", fid, "adj_verdict", value="correct", label_uuid=lab, created_at=_time(6)),
        make_event("amy", fid, "adj_gold_label", value="amy's label", created_at=_time(7)),
        # zed's latest event is a note-free re-check of nothing but the label's verdict, which
        # amy then overrides again; zed's tier (earlier than amy's) must not come back.
        make_event("zed", fid, "adj_verdict", value="partly", label_uuid=lab, created_at=_time(8)),
        make_event("amy", fid, "adj_verdict", value="correct", label_uuid=lab, created_at=_time(9)),
        make_event("zed", fid, "adj_gold_label", value="zed's second label", created_at=_time(10)),
    ])
    (r,) = gold.gold_records(project, policy="adjudicated")
    assert (r["tier"], r["tier_source"]) == ("output", "adjudication")
    assert r["candidates"][0]["verdict"] == "correct"
    assert r["gold_label"] == "zed's second label"          # the latest gold label decision
    assert r["adjudicated_by"] == ["amy", "zed"]
