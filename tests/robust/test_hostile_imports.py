"""Property-based hostile input against the importers (Neuronpedia, judgments).

Every generated file (random bytes, truncated JSON, wrong types, huge strings, non-UTF-8
bytes, NaN/inf activations, negative indices, duplicate records) must end either in a
clean import or in one clear line (``SaegoldError``), and on error the database must be
exactly as it was (full table dump compared).  A clean import imported twice changes
nothing the second time.
"""
from __future__ import annotations

import json
import math
import sqlite3
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from robust_harness import seed_project, table_dump

from saegold.store.db import open_project
from saegold.store.errors import SaegoldError
from saegold.store.importers.judgments import import_judgments
from saegold.store.importers.neuronpedia import import_neuronpedia

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# -- hostile values ---------------------------------------------------------------------------

NASTY_TEXT = st.sampled_from([
    "", " ", "\x1b[2J\x1b[31mred", "[bold red]markup[/]", "\u202eevil", "\x00nul", "a" * 30_000,
    "🙂", "\ud800"[:0] + "line\nbreak", "../../etc/passwd",
])
JSON_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                        st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20), NASTY_TEXT)
JSON_ANY = st.recursive(JSON_SCALAR, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=10)
BAD_NUMBER = st.sampled_from([math.nan, math.inf, -math.inf, -1, -(2**40), "7", None, True, [1], {"x": 1}])


def _sometimes(draw) -> bool:
    """True one time in five: most records are damaged in one place at most."""
    return draw(st.integers(0, 4)) == 4


def _mutate(draw, record: dict, fields: list[str]) -> dict:
    """Apply 0-3 hostile edits: wrong type, bad number, huge/nasty text, deleted or unknown key."""
    rec = json.loads(json.dumps(record))
    for _ in range(draw(st.integers(0, 3))):
        how = draw(st.sampled_from(["type", "number", "text", "delete", "extra"]))
        key = draw(st.sampled_from(fields))
        if how == "type":
            rec[key] = draw(JSON_ANY)
        elif how == "number":
            rec[key] = draw(BAD_NUMBER)
        elif how == "text":
            rec[key] = draw(NASTY_TEXT)
        elif how == "delete":
            rec.pop(key, None)
        else:
            rec[draw(st.text(min_size=1, max_size=6))] = draw(JSON_ANY)
    return rec


@st.composite
def np_feature(draw) -> dict:
    n = draw(st.integers(1, 5))
    tokens = draw(st.lists(st.one_of(st.text(max_size=6), NASTY_TEXT.filter(lambda s: len(s) < 50)),
                           min_size=n, max_size=n))
    values = draw(st.lists(st.floats(-5, 50, allow_nan=False), min_size=n, max_size=n))
    act = {"tokens": tokens, "values": values, "maxValue": max(values),
           "maxValueTokenIndex": values.index(max(values))}
    act = _mutate(draw, act, ["tokens", "values", "maxValue", "maxValueTokenIndex"]) \
        if _sometimes(draw) else act
    if _sometimes(draw):  # NaN/inf inside the activations
        act["values"] = [draw(st.sampled_from([math.nan, math.inf, -math.inf, 1.0])) for _ in tokens]
    expl = {"description": draw(st.one_of(st.text(min_size=1, max_size=30), NASTY_TEXT)),
            "typeName": draw(st.sampled_from(["oai_token-act-pair", "np_acts-logits-general", None])),
            "explanationModelName": "gpt-4o-mini", "scores": draw(st.sampled_from([[], [{"value": 0.5}],
                                                                                  [{"value": math.nan}]]))}
    feature = {"modelId": "gemma-2-2b", "layer": draw(st.sampled_from(["20-gemmascope-res-16k", "0-res"])),
               "index": draw(st.integers(-5, 30) if _sometimes(draw) else st.integers(0, 30)),
               "frac_nonzero": draw(BAD_NUMBER if _sometimes(draw) else st.floats(0, 1)),
               "activations": [act], "explanations": [expl],
               "pos_str": [" the", " a"], "pos_values": [1.5, draw(
                   st.floats(allow_nan=True) if _sometimes(draw) else st.floats(-9, 9))]}
    return _mutate(draw, feature, list(feature)) if _sometimes(draw) else feature


@st.composite
def judgment(draw, uuids: list[str]) -> dict:
    kind = draw(st.sampled_from(["tier", "verdict", "preference", "gold_label", "skip", "flag",
                                 "note", "retract", "adj_tier"]))
    rec = {"uuid": draw(st.one_of(st.uuids().map(str), st.sampled_from(["dup-1", "dup-2"]))),
           "annotator": draw(st.sampled_from([" alice", "lead"]) if _sometimes(draw)
                             else st.sampled_from(["alice", "bob"])),
           "source": "tiny-model/0-res", "feature": draw(st.integers(-3, 45) if _sometimes(draw)
                                                         else st.integers(0, 39)),
           "kind": kind, "created_at": draw(st.sampled_from(["yesterday", "2026-13-45T99:00:00Z"])
                                            if _sometimes(draw) else st.sampled_from(
                                                ["2026-11-01T10:00:00Z", "2026-11-01 10:00"]))}
    if kind in ("tier", "adj_tier"):
        rec.update(value=draw(st.sampled_from(["input", "output", "cross", "obscure"])),
                   confidence=draw(st.sampled_from([1, 2, 3, None])))
        if _sometimes(draw):
            rec[draw(st.sampled_from(["value", "confidence"]))] = draw(st.sampled_from(["Input", 0, 4, "2"]))
    elif kind == "verdict":
        rec.update(value=draw(st.sampled_from(["correct", "partly", "wrong", "right"])),
                   method=draw(st.sampled_from(["baez", "eleuther_acts_top5", "nope"])))
    elif kind == "preference":
        rec.update(value=draw(st.sampled_from(["neither", "baez", "eleuther_acts_top5"])))
    elif kind in ("gold_label", "note", "flag", "skip"):
        rec.update(value=draw(st.one_of(st.text(max_size=30), NASTY_TEXT)))
    elif kind == "retract":
        rec.update(target_uuid=draw(st.sampled_from(uuids)) if uuids else "missing")
    if draw(st.booleans()):
        rec["seconds_spent"] = draw(st.one_of(st.floats(0, 100), BAD_NUMBER))
    if _sometimes(draw):
        rec = _mutate(draw, rec, list(rec))
    uuids.append(str(rec.get("uuid")))
    return rec


@st.composite
def hostile_file(draw, records: st.SearchStrategy) -> tuple[str, bytes]:
    """A file of records in one of the accepted layouts, possibly damaged."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from([".json", ".jsonl"])), draw(st.binary(max_size=300))
    if draw(st.integers(0, 19)) == 0:  # pathologically deep nesting
        depth = draw(st.sampled_from([1_000, 100_000]))
        return draw(st.sampled_from([".json", ".jsonl"])), b"[" * depth + b"]" * depth
    recs = draw(st.lists(records, min_size=1, max_size=5))
    if draw(st.booleans()):  # duplicate records
        recs = recs + [draw(st.sampled_from(recs))]
    layout = draw(st.sampled_from([".json", ".json-array", ".jsonl"]))
    if layout == ".jsonl":
        data = "\n".join(json.dumps(r, allow_nan=True) for r in recs).encode()
    elif layout == ".json-array":
        data = json.dumps(recs, allow_nan=True).encode()
    else:
        data = json.dumps(recs[0], allow_nan=True).encode()
    damage = draw(st.sampled_from(["none", "none", "none", "none", "truncate", "bytes"]))
    if damage == "truncate" and len(data) > 1:
        data = data[:draw(st.integers(1, len(data) - 1))]
    elif damage == "bytes":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x00"])) + data[at:]
    return (".jsonl" if layout == ".jsonl" else ".json"), data


# -- the property ------------------------------------------------------------------------------

class Target:
    """One real project reused across a test's examples (each example checks its own effect)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="saegold-hostile-"))
        self.db = seed_project(self.dir / "p.db")
        self.n = 0

    def write(self, suffix: str, data: bytes) -> Path:
        self.n += 1
        path = self.dir / f"in-{self.n}{suffix}"
        path.write_bytes(data)
        return path


def _content(dump: dict, volatile: dict[str, int]) -> dict:
    """A table dump without the columns named in ``volatile`` (table -> column index)."""
    return {t: sorted((r[:volatile[t]] + r[volatile[t] + 1:] if t in volatile else r for r in rows), key=repr)
            for t, rows in dump.items()}


def _check(target: Target, importer, suffix: str, data: bytes, volatile: dict[str, int] | None = None) -> str:
    """Import; on error the DB is untouched, on success a re-import changes nothing (but the
    ``volatile`` columns: a file that contradicts itself is last-wins each time it is read)."""
    volatile = volatile or {}
    path = target.write(suffix, data)
    before = table_dump(target.db)
    with open_project(target.db) as p:
        try:
            importer(p, [path])
        except SaegoldError as exc:
            msg = str(exc)
            assert msg and "\n" not in msg and "\r" not in msg, f"not one line: {msg!r}"
            assert str(path) in msg, f"the error does not name the file: {msg!r}"
            assert table_dump(target.db) == before, "a failed import changed the database"
            return "error"
        assert p.scalar("PRAGMA integrity_check") == "ok"
        after = table_dump(target.db)
        importer(p, [path])  # the same file again adds nothing
        assert _content(table_dump(target.db), volatile) == _content(after, volatile), \
            "re-importing the same file changed the database"
        return "imported"


@pytest.fixture(scope="module")
def np_target() -> Target:
    return Target()


@pytest.fixture(scope="module")
def j_target() -> Target:
    return Target()


@SETTINGS
@given(hostile_file(np_feature()))
def test_neuronpedia_importer_survives_hostile_files(np_target, file):
    _check(np_target, import_neuronpedia, *file)


@SETTINGS
@given(st.data())
def test_judgment_importer_survives_hostile_files(j_target, data):
    uuids: list[str] = [r[0] for r in sqlite3.connect(j_target.db).execute("SELECT uuid FROM judgments")]
    suffix, raw = data.draw(hostile_file(judgment(uuids)))
    _check(j_target, import_judgments, suffix, raw)


@st.composite
def nla_record(draw) -> dict:
    rec = {"source": "tiny-model/0-res", "feature": draw(st.integers(0, 45)), "rank": draw(st.integers(0, 2)),
           "token_index": draw(st.integers(0, 3)),
           "explanation": draw(st.one_of(st.text(min_size=1, max_size=40), NASTY_TEXT)),
           "nla_source": draw(st.sampled_from(["kitft-l41", "other"]))}
    return _mutate(draw, rec, list(rec)) if _sometimes(draw) else rec


def _import_nla(project, paths):
    from saegold.engine.labeling.nla import import_jsonl

    return import_jsonl(project, paths[0])


@pytest.fixture(scope="module")
def nla_target() -> Target:
    from saegold.store.features import put_examples

    target = Target()
    with open_project(target.db) as p, p.write() as db:
        for fid in [r[0] for r in db.execute("SELECT id FROM features").fetchall()]:
            put_examples(db, fid, "top", [{"tokens": ["a", "b", "c"], "acts": [0.0, 1.0, 0.5]}] * 2,
                         origin="scored")
    return target


@SETTINGS
@given(st.data())
def test_nla_jsonl_importer_survives_hostile_files(nla_target, data):
    suffix, raw = data.draw(hostile_file(nla_record()))
    if data.draw(st.integers(0, 9)) == 9:  # pathologically deep JSON
        raw = b"[" * 100_000 + b"]" * 100_000
    _check(nla_target, _import_nla, ".jsonl", raw.replace(b"\n", b" ") if suffix == ".json" else raw,
           volatile={"nla_explanations": 5})  # created_at


def test_nla_reimport_of_the_same_file_changes_nothing():
    target = Target()
    with open_project(target.db) as p, p.write() as db:
        from saegold.store.features import put_examples

        put_examples(db, 1, "top", [{"tokens": ["a", "b"], "acts": [0.0, 1.0]}], origin="scored")
    line = json.dumps({"source": "tiny-model/0-res", "feature": 0, "rank": 0, "token_index": 1,
                       "explanation": "about b", "nla_source": "kitft-l41"}).encode()
    assert _check(target, _import_nla, ".jsonl", line) == "imported"  # strict: created_at kept too
    deep = b"[" * 100_000 + b"]" * 100_000
    assert _check(target, _import_nla, ".jsonl", deep) == "error"


def test_both_outcomes_happen():
    """The strategies are not so hostile that nothing ever imports (or so tame nothing fails)."""
    target = Target()
    good = {"modelId": "gemma-2-2b", "layer": "0-res", "index": 3, "activations": [
        {"tokens": ["a", "b"], "values": [0.0, 2.0]}], "explanations": [{"description": "b after a"}]}
    assert _check(target, import_neuronpedia, ".json", json.dumps(good).encode()) == "imported"
    bad = {**good, "activations": [{"tokens": ["a", "b"], "values": [0.0, math.nan]}]}
    assert _check(target, import_neuronpedia, ".json", json.dumps(bad).encode()) == "error"
    lines = [{"annotator": "alice", "source": "tiny-model/0-res", "feature": 1, "kind": "note",
              "value": "ok", "created_at": "2026-11-01T10:00:00Z"},
             {"annotator": "alice", "source": "tiny-model/0-res", "feature": -1, "kind": "note",
              "value": "negative index", "created_at": "2026-11-01T10:00:00Z"}]
    body = "\n".join(json.dumps(x) for x in lines).encode()
    assert _check(target, import_judgments, ".jsonl", body.split(b"\n")[0]) == "imported"
    assert _check(target, import_judgments, ".jsonl", body) == "error"
