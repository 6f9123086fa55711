"""`import judgments` refuses what it used to take silently (issue 12.7): a quoted or float
feature index, an empty file, and one uuid used twice in a file with different content."""
from __future__ import annotations

import json

import pytest

from saegold.store.errors import BadInput
from saegold.store.features import get_or_create_source, upsert_feature
from saegold.store.importers.judgments import import_judgments

SRC = "gemma-2-2b/20-gemmascope-res-16k"


@pytest.fixture
def proj(project):
    with project.write() as db:
        sid = get_or_create_source(db, "gemma-2-2b", "20-gemmascope-res-16k")
        upsert_feature(db, sid, 6)
    return project


def rec(uuid="u1", feature=6, value="input", **kw):
    return {"uuid": uuid, "annotator": "alice", "source": SRC, "feature": feature, "kind": "tier",
            "value": value, "created_at": "2026-11-26T10:00:00Z", **kw}


def write(tmp_path, *records, name="j.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _unchanged(project):
    return (project.scalar("SELECT count(*) FROM judgments"), project.scalar("SELECT count(*) FROM import_log"),
            project.scalar("SELECT count(*) FROM annotators"))


@pytest.mark.parametrize("feature, shown", [("6", "'6'"), (6.0, "6.0"), (True, "bool")])
def test_a_feature_index_must_be_a_json_integer(proj, tmp_path, feature, shown):
    before = _unchanged(proj)
    with pytest.raises(BadInput) as info:
        import_judgments(proj, [write(tmp_path, rec(feature=feature))])
    assert info.value.field == "feature" and info.value.record == "line 1"
    assert f"expected a JSON integer feature index, got {shown}" in str(info.value)
    assert _unchanged(proj) == before
    assert import_judgments(proj, [write(tmp_path, rec(feature=6))]).new == 1


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_an_empty_file_is_an_error_and_logs_nothing(proj, tmp_path, content):
    path = tmp_path / "empty.jsonl"
    path.write_text(content)
    before = _unchanged(proj)
    with pytest.raises(BadInput, match="holds no judgment records"):
        import_judgments(proj, [path])
    assert _unchanged(proj) == before


def test_one_uuid_twice_in_a_file_blames_the_file_not_the_database(proj, tmp_path):
    path = write(tmp_path, rec("dup", value="input"), rec("x2", value="output"), rec("dup", value="cross"))
    before = _unchanged(proj)
    with pytest.raises(BadInput) as info:
        import_judgments(proj, [path])
    msg = str(info.value)
    assert info.value.record == "line 3" and info.value.field == "uuid"
    assert "also the uuid of record line 1 in this import" in msg and "different value" in msg
    assert "already recorded" not in msg
    assert _unchanged(proj) == before
    # The same uuid already in the project (an earlier import) still says so.
    import_judgments(proj, [write(tmp_path, rec("dup", value="input"), name="a.jsonl")])
    with pytest.raises(BadInput, match="already recorded with a different value .by an earlier import"):
        import_judgments(proj, [write(tmp_path, rec("dup", value="cross"), name="b.jsonl")])
