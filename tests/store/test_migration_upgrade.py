"""A database created at an older schema step upgrades cleanly and keeps its data."""
from __future__ import annotations

import sqlite3

from sqlite_utils import Database

from saegold.store.db import open_project
from saegold.store.importers.judgments import import_judgments
from saegold.store.schema import known_migrations, migrations


def test_m001_database_upgrades_and_keeps_data(tmp_path):
    path = tmp_path / "old.db"
    db = Database(sqlite3.connect(path))
    migrations.apply(db, stop_before="m002_import_log")
    assert [m.name for m in migrations.applied(db)] == ["m001_core"]
    db.execute("INSERT INTO sources(name, model_id, sae_id, created_at) VALUES ('m/s', 'm', 's', 't')")
    db.execute("INSERT INTO features(source_id, idx, density) VALUES (1, 12, 0.25)")
    db.execute("INSERT INTO labels(uuid, feature_id, method, text, origin, created_at) "
               "VALUES ('L1', 1, 'baez', 'colons', 'saegold', 't')")
    db.execute("INSERT INTO judgments(uuid, annotator, feature_id, kind, value, created_at) "
               "VALUES ('J1', 'alice', 1, 'tier', 'input', '2026-01-01T00:00:00Z')")
    db.conn.commit()
    assert "import_log" not in db.table_names()
    db.conn.close()

    with open_project(path) as project:
        assert project.schema_version == len(known_migrations())
        assert project.scalar("PRAGMA user_version") == len(known_migrations())
        assert project.scalar("SELECT count(*) FROM import_log") == 0
        assert project.query("SELECT idx, density FROM features") == [{"idx": 12, "density": 0.25}]
        assert project.scalar("SELECT text FROM labels WHERE uuid = 'L1'") == "colons"
        assert project.scalar("SELECT value FROM judgments WHERE uuid = 'J1'") == "input"
        # the append-only triggers survived the upgrade
        try:
            with project.write() as w:
                w.execute("DELETE FROM judgments")
            raise AssertionError("DELETE on judgments was allowed")
        except sqlite3.DatabaseError as exc:
            assert "append-only" in str(exc)
        # the new table is used at once
        f = tmp_path / "j.jsonl"
        f.write_text('{"uuid":"J2","annotator":"alice","source":"m/s","feature":12,"kind":"verdict",'
                     '"method":"baez","value":"correct","created_at":"2026-01-02T00:00:00Z"}\n')
        assert import_judgments(project, [f]).new == 1
        assert project.scalar("SELECT records FROM import_log") == 1
    with open_project(path) as again:  # opening an up-to-date database changes nothing
        assert again.schema_version == len(known_migrations())
        assert again.scalar("SELECT count(*) FROM _sqlite_migrations") == len(known_migrations())
