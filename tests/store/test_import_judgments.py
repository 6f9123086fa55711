"""Importing judgments made elsewhere: shapes, candidate resolution, identity, idempotence."""
from __future__ import annotations

import json

import pytest

from saegold.store import judgments
from saegold.store.errors import BadInput
from saegold.store.features import get_or_create_source, upsert_feature
from saegold.store.importers.judgments import import_judgments
from saegold.store.labels import add_label

from store_samples import dump

SRC = "gemma-2-2b/20-gemmascope-res-16k"


@pytest.fixture
def proj(project):
    """Feature 12 with one baez label, two eleuther labels and a failed output_logits
    attempt; feature 13 with one baez label."""
    with project.write() as db:
        sid = get_or_create_source(db, "gemma-2-2b", "20-gemmascope-res-16k")
        f12, f13 = upsert_feature(db, sid, 12), upsert_feature(db, sid, 13)
        project.labels = {
            "baez": add_label(db, f12, "baez", "numbers in sports results", origin="saegold"),
            "e1": add_label(db, f12, "eleuther_acts_top5", "scores", origin="neuronpedia"),  # several of one method: imported
            "e2": add_label(db, f12, "eleuther_acts_top5", "sports", origin="neuronpedia"),  # several of one method: imported
            "failed": add_label(db, f12, "output_logits", None, status="failed", origin="saegold"),
            "baez13": add_label(db, f13, "baez", "colons", origin="saegold"),
        }
    project.fids = {12: f12, 13: f13}
    return project


def ev(uuid, kind, value=None, *, annotator="alice", feature=12, t="2026-11-26T10:00:00Z", **kw):
    rec = {"uuid": uuid, "annotator": annotator, "source": SRC, "feature": feature, "kind": kind,
           "created_at": t, **kw}
    if value is not None:
        rec["value"] = value
    return rec


def write(tmp_path, *records, name="j.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_issue_examples(proj, tmp_path):
    path = write(tmp_path,
                 ev("u1", "tier", "input", confidence=2),
                 ev("u2", "verdict", "correct", method="baez", t="2026-11-26T10:00:05Z"))
    report = import_judgments(proj, [path])
    assert (report.new, report.existing, report.records, report.annotators_new) == (2, 0, 2, ["alice"])
    rows = proj.query("SELECT uuid, annotator, feature_id, kind, label_uuid, value, confidence, login, "
                      "created_at FROM judgments ORDER BY seq")
    assert rows == [
        {"uuid": "u1", "annotator": "alice", "feature_id": proj.fids[12], "kind": "tier", "label_uuid": None,
         "value": "input", "confidence": 2, "login": None, "created_at": "2026-11-26T10:00:00.000000Z"},
        {"uuid": "u2", "annotator": "alice", "feature_id": proj.fids[12], "kind": "verdict",
         "label_uuid": proj.labels["baez"], "value": "correct", "confidence": None, "login": None,
         "created_at": "2026-11-26T10:00:05.000000Z"},
    ]
    view = judgments.current(proj)[judgments.Key(proj.fids[12], "alice")]
    assert view.tier == "input" and view.verdicts == {proj.labels["baez"]: "correct"}
    assert judgments.role_of(proj, "alice") == "annotator"


def test_reimport_is_a_no_op(proj, tmp_path):
    path = write(tmp_path, ev("u1", "tier", "cross", confidence=3), ev("u2", "note", "odd one"),
                 {k: v for k, v in ev(None, "skip").items() if k != "uuid"})  # uuid derived
    import_judgments(proj, [path])
    before = dump(proj)
    report = import_judgments(proj, [path])
    assert (report.new, report.existing) == (0, 3)
    assert dump(proj) == before


def every_kind(proj) -> list[dict]:
    """One record of every kind (the lead must be registered as a lead)."""
    return [
        ev("t1", "tier", "output", confidence=1),
        ev("v3", "verdict", "partly", label_uuid=proj.labels["e2"]),
        ev("v4", "verdict", "wrong", label_uuid=proj.labels["e1"], method="eleuther_acts_top5"),
        ev("p1", "preference", method="baez"),
        ev("p2", "preference", "neither", feature=13),
        ev("p3", "preference", "baez", feature=13),  # value names the method
        ev("g1", "gold_label", "sports scores"),
        ev("s1", "skip", feature=13),
        ev("f1", "flag", "tokenizer artefact", feature=13),
        ev("n1", "note", "see also 14403"),
        ev("r1", "retract", target_uuid="s1", t="2026-11-26T10:01:00Z", feature=13),
        ev("a1", "adj_tier", "input", annotator="lead", confidence=3),
        ev("a2", "adj_verdict", "correct", annotator="lead", method="baez"),
        ev("a3", "adj_gold_label", "sports results", annotator="lead"),
        {"uuid": "r2", "annotator": "alice", "kind": "retract", "target_uuid": "n1",
         "created_at": "2026-11-26T10:02:00Z"},  # feature taken from the target
    ]


def test_every_kind(proj, tmp_path):
    judgments.ensure_annotator(proj, "lead", role="lead")
    recs = every_kind(proj)
    report = import_judgments(proj, [write(tmp_path, *recs)])
    assert report.new == len(recs)
    kinds = {r["uuid"]: r for r in proj.query("SELECT * FROM judgments")}
    assert kinds["p1"]["label_uuid"] == proj.labels["baez"] and kinds["p1"]["value"] is None
    assert kinds["p2"]["value"] == "neither" and kinds["p2"]["label_uuid"] is None
    assert kinds["p3"]["label_uuid"] == proj.labels["baez13"] and kinds["p3"]["value"] == "baez"
    assert kinds["r2"]["feature_id"] == proj.fids[12]
    assert kinds["a2"]["label_uuid"] == proj.labels["baez"]
    view = judgments.current(proj)
    alice12, alice13 = view[judgments.Key(proj.fids[12], "alice")], view[judgments.Key(proj.fids[13], "alice")]
    assert alice12.tier == "output" and alice12.confidence == 1
    assert alice12.verdicts == {proj.labels["e2"]: "partly", proj.labels["e1"]: "wrong"}
    assert alice12.preference == proj.labels["baez"] and alice12.gold_label == "sports scores"
    assert alice12.notes == []  # retracted by r2
    assert alice13.skipped is False and alice13.flags == ["tokenizer artefact"]
    assert alice13.preference == proj.labels["baez13"]
    adj = view[judgments.Key(proj.fids[12], "lead", is_adjudication=True)]
    assert adj.is_adjudication and adj.tier == "input" and adj.gold_label == "sports results"


BAD = {
    # name: (record, field, words)
    "method with two labels": (ev("x", "verdict", "correct", method="eleuther_acts_top5"), "method", "2 'eleuther_acts_top5' labels"),
    "method with only a failed label": (ev("x", "verdict", "correct", method="output_logits"), "method", "no usable"),
    "verdict without a candidate": (ev("x", "verdict", "correct"), "method", "missing"),
    "label of another feature": (ev("x", "verdict", "correct", label_uuid="nope"), "label_uuid", "not a label of this feature"),
    "failed label by uuid": (ev("x", "verdict", "wrong", label_uuid="FAILED"), "label_uuid", "failed labelling attempt"),
    "label/method disagree": (ev("x", "verdict", "correct", method="baez", label_uuid="E1"), "method", "not 'baez'"),
    "bad verdict value": (ev("x", "verdict", "great", method="baez"), "value", "not one of"),
    "bad tier": (ev("x", "tier", "inputs"), "value", "not one of"),
    "bad kind": (ev("x", "opinion", "x"), "kind", "not one of"),
    "confidence 4": (ev("x", "tier", "input", confidence=4), "confidence", "1, 2 or 3"),
    "confidence as string": (ev("x", "tier", "input", confidence="2"), "confidence", "1, 2 or 3"),
    "confidence on a verdict": (ev("x", "verdict", "correct", method="baez", confidence=2), "confidence", "only a tier"),
    "unknown feature": (ev("x", "tier", "input", feature=99), "feature", "not in this project"),
    "unknown source": (ev("x", "tier", "input") | {"source": "m/other"}, "source", "unknown source"),
    "source without slash": (ev("x", "tier", "input") | {"source": "gemma"}, "source", "MODEL/SOURCE"),
    "negative feature": (ev("x", "tier", "input", feature=-1), "feature", "negative"),
    "no annotator": (ev("x", "tier", "input", annotator=""), "annotator", "empty"),
    "bad time": (ev("x", "tier", "input", t="yesterday"), "created_at", "ISO 8601"),
    "no time": ({k: v for k, v in ev("x", "tier", "input").items() if k != "created_at"}, "created_at", "missing"),
    "gold label without text": (ev("x", "gold_label"), "value", "missing"),
    "gold label not text": (ev("x", "gold_label", 3), "value", "expected a string, got an integer"),
    "retract unknown": (ev("x", "retract", target_uuid="zzz"), "target_uuid", "names no judgment"),
    "adjudication by a non-lead": (ev("x", "adj_tier", "input"), "annotator", "not a lead"),
    "unknown field": (ev("x", "tier", "input", confidance=2), "confidance", "unknown field"),
    "negative seconds": (ev("x", "tier", "input", seconds_spent=-3), "seconds_spent", "negative"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_record_names_line_and_field_and_changes_nothing(proj, tmp_path, case):
    record, field, words = BAD[case]
    if record.get("label_uuid") in ("E1", "FAILED"):
        record["label_uuid"] = proj.labels["e1" if record["label_uuid"] == "E1" else "failed"]
    path = write(tmp_path, ev("ok1", "tier", "input"), record)
    before = dump(proj)
    with pytest.raises(BadInput) as err:
        import_judgments(proj, [path])
    assert (err.value.file, err.value.record, err.value.field) == (str(path), "line 2", field)
    assert words in str(err.value)
    assert dump(proj) == before


def test_identity_rules_apply(proj, tmp_path):
    import_judgments(proj, [write(tmp_path, ev("a", "tier", "input"), name="a.jsonl")])
    before = dump(proj)
    with pytest.raises(BadInput, match="cannot retract an event of 'alice'") as err:
        import_judgments(proj, [write(tmp_path, ev("b", "retract", annotator="bob", target_uuid="a"), name="b.jsonl")])
    assert err.value.field == "target_uuid"
    assert dump(proj) == before


def test_same_uuid_different_content_is_refused(proj, tmp_path):
    import_judgments(proj, [write(tmp_path, ev("a", "tier", "input"), name="a.jsonl")])
    with pytest.raises(BadInput, match="already recorded with a different value"):
        import_judgments(proj, [write(tmp_path, ev("a", "tier", "output"), name="b.jsonl")])


def test_times_are_normalised_to_utc(proj, tmp_path):
    import_judgments(proj, [write(tmp_path, ev("a", "tier", "input", t="2026-11-26T12:00:00+02:00"),
                                  ev("b", "tier", "input", t="2026-11-26T10:00:00.5", annotator="bob"))])
    assert [r["created_at"] for r in proj.query("SELECT created_at FROM judgments ORDER BY seq")] == [
        "2026-11-26T10:00:00.000000Z", "2026-11-26T10:00:00.500000Z"]


def test_skip_bad_leaves_no_trace_of_rejected_records(proj, tmp_path):
    path = write(tmp_path, ev("a", "tier", "input"),
                 ev("b", "adj_tier", "input", annotator="mallory"),  # not a lead: rejected
                 ev("c", "verdict", "correct", method="eleuther_acts_top5", annotator="carol"),  # ambiguous
                 ev("d", "verdict", "correct", method="baez"))
    report = import_judgments(proj, [path], skip_bad=True)
    assert [(e.record, e.field) for e in report.rejected] == [("line 2", "annotator"), ("line 3", "method")]
    assert [r["uuid"] for r in proj.query("SELECT uuid FROM judgments ORDER BY seq")] == ["a", "d"]
    assert [r["name"] for r in proj.query("SELECT name FROM annotators")] == ["alice"]  # no carol, no mallory
    assert proj.query("SELECT kind, records, rejected FROM import_log") == [
        {"kind": "judgments", "records": 2, "rejected": 2}]


def test_export_judgments_round_trip(proj, tmp_path):
    from saegold.store.db import open_project
    from saegold.store.export import export

    judgments.ensure_annotator(proj, "lead", role="lead")
    import_judgments(proj, [write(tmp_path, *every_kind(proj))])
    out = tmp_path / "out.jsonl"
    n = export(proj, "judgments", fmt="jsonl", output=out)
    assert n == proj.scalar("SELECT count(*) FROM judgments")
    before = dump(proj)
    assert import_judgments(proj, [out]).existing == n  # its own export: nothing new
    after = dump(proj)
    assert len(after.pop("import_log")) == len(before.pop("import_log")) + 1  # a new file, logged
    assert after == before
    # another project holding the same candidates (same label UUIDs) takes the file whole
    other = open_project(tmp_path / "other.db", create=True)
    with other.write() as db:
        sid = get_or_create_source(db, "gemma-2-2b", "20-gemmascope-res-16k")
        fids = {i: upsert_feature(db, sid, i) for i in (12, 13)}
        for lb in proj.query("SELECT l.*, f.idx FROM labels l JOIN features f ON f.id = l.feature_id"):
            add_label(db, fids[lb["idx"]], lb["method"], lb["text"], origin=lb["origin"],
                      status=lb["status"], uuid=lb["uuid"])
    judgments.ensure_annotator(other, "lead", role="lead")
    assert import_judgments(other, [out]).new == n
    cols = "uuid, annotator, kind, label_uuid, value, confidence, target_uuid, seconds_spent, created_at"
    assert other.query(f"SELECT {cols} FROM judgments ORDER BY seq") == proj.query(
        f"SELECT {cols} FROM judgments ORDER BY seq")
    other.close()


def test_events_written_by_saegold_reimport_as_no_op(proj, tmp_path):
    """Events as the app writes them (login, seconds, microsecond times) survive export+import."""
    from saegold.store.export import export

    mk, f12 = judgments.make_event, proj.fids[12]
    judgments.append_many(proj, [
        mk("alice", f12, "tier", value="obscure", confidence=2, seconds_spent=3.25, login="alice_os"),
        mk("alice", f12, "verdict", value="wrong", label_uuid=proj.labels["e1"], seconds_spent=9.5),
        mk("alice", f12, "preference", label_uuid=proj.labels["baez"]),
        mk("alice", f12, "preference", value="neither"),
        mk("alice", f12, "flag", value=None),
    ])
    out = tmp_path / "mine.jsonl"
    export(proj, "judgments", fmt="jsonl", output=out)
    before = {k: v for k, v in dump(proj).items() if k != "import_log"}
    report = import_judgments(proj, [out])
    assert (report.new, report.existing) == (0, 5)
    assert {k: v for k, v in dump(proj).items() if k != "import_log"} == before
