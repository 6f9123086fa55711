import sqlite3

import pytest

from saegold.store import judgments, settings
from saegold.store.db import open_project
from saegold.store.errors import SchemaTooNew, StoreError


def test_wal_and_version(project):
    assert project.scalar("PRAGMA journal_mode") == "wal"
    assert project.schema_version >= 1
    assert project.scalar("PRAGMA busy_timeout") >= 1000


def test_settings_round_trip(project):
    assert settings.get(project, "overlap") == 2
    settings.set(project, "overlap", 3)
    assert settings.get(project, "overlap") == 3
    with pytest.raises(StoreError):
        settings.set(project, "no_such_setting", 1)


def test_newer_schema_refused(tmp_path):
    path = tmp_path / "p.db"
    with open_project(path, create=True) as p, p.write() as db:
        db.execute("INSERT INTO _sqlite_migrations(migration_set, name, applied_at) "
                   "VALUES ('saegold', 'm999_from_the_future', 'x')")
    with pytest.raises(SchemaTooNew, match="newer saegold"):
        open_project(path)


def test_missing_file_is_clear(tmp_path):
    with pytest.raises(StoreError, match="no such project database"):
        open_project(tmp_path / "nope.db")


def _feature(project):
    from saegold.store.features import get_or_create_source, upsert_feature
    with project.write() as db:
        sid = get_or_create_source(db, "m", "s")
        return upsert_feature(db, sid, 0)


def test_judgments_append_only(project):
    fid = _feature(project)
    ev = judgments.make_event("alice", fid, "tier", value="input", confidence=2)
    assert judgments.append(project, ev) is True
    assert judgments.append(project, ev) is False  # retried write: idempotent
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        with project.write() as db:
            db.execute("UPDATE judgments SET value = 'output'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        with project.write() as db:
            db.execute("DELETE FROM judgments")
    assert project.scalar("SELECT value FROM judgments") == "input"


def test_retract_and_identity(project):
    fid = _feature(project)
    judgments.ensure_annotator(project, "alice")
    judgments.ensure_annotator(project, "bob")
    ev = judgments.make_event("alice", fid, "tier", value="cross", confidence=3)
    judgments.append(project, ev)
    with pytest.raises(StoreError, match="cannot retract"):
        judgments.append(project, judgments.make_event("bob", fid, "retract", target_uuid=ev["uuid"]))
    judgments.append(project, judgments.make_event("alice", fid, "retract", target_uuid=ev["uuid"]))
    view = judgments.current(project)
    assert view[judgments.Key(fid, "alice")].tier is None if judgments.Key(fid, "alice") in view else True
    assert project.scalar("SELECT count(*) FROM judgments") == 2


def test_opening_a_project_does_not_import_pandas(tmp_path):
    """sqlite-utils would import pandas (most of a second, on every command) only for table
    creation from Python values, which saegold never does; pandas still imports afterwards."""
    import subprocess
    import sys

    probe = ("import sys; from saegold.store.db import open_project; "
             f"open_project({str(tmp_path / 'p.db')!r}, create=True).close(); "
             "print('pandas' in sys.modules); import pandas; print(pandas.DataFrame({'a': [1]}).shape)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "(1,", "1)"]
