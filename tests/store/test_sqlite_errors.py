"""One translator of SQLite failures, keyed on the error code, not on the message text."""
from __future__ import annotations

import sqlite3

import pytest

from saegold.store import settings
from saegold.store.db import open_project
from saegold.store.errors import StoreError
from saegold.store.sqlite_errors import translate


def _error(cls, message: str, code: int, name: str) -> sqlite3.Error:
    """An error as SQLite raises it (these codes cannot be provoked portably in a test:
    a -shm file that cannot grow needs a disk full to the byte)."""
    exc = cls(message)
    exc.sqlite_errorcode, exc.sqlite_errorname = code, name
    return exc


def test_a_real_full_database_is_the_disk(tmp_path):
    conn = sqlite3.connect(tmp_path / "x.db")
    conn.execute("CREATE TABLE t(a)")
    conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")
    with pytest.raises(sqlite3.OperationalError) as info:
        conn.executemany("INSERT INTO t VALUES (?)", [("x" * 4000,)] * 10)
    conn.close()
    assert "disk is full" in str(translate(tmp_path / "x.db", info.value))


def test_a_shm_that_cannot_grow_is_a_full_disk_not_an_io_error(tmp_path):
    exc = _error(sqlite3.OperationalError, "disk I/O error", 4874, "SQLITE_IOERR_SHMSIZE")
    msg = str(translate(tmp_path / "p.db", exc))
    assert "disk is full" in msg and "I/O" not in msg


def test_a_read_only_directory_is_named_as_such(tmp_path):
    (tmp_path / "p.db").write_bytes(b"")
    exc = _error(sqlite3.OperationalError, "attempt to write a readonly database", 1544,
                 "SQLITE_READONLY_DIRECTORY")
    msg = str(translate(tmp_path / "p.db", exc))
    assert f"directory {tmp_path} is read-only" in msg
    assert "database file is read-only" not in msg


def test_statement_errors_are_not_translated_even_when_their_text_looks_alike(tmp_path):
    # Old text matching took any message holding "full", "locked" or "readonly" for the disk.
    conn = sqlite3.connect(tmp_path / "x.db")
    for sql in ("SELECT * FROM full_disk_log", "SELECT locked, readonly FROM sqlite_master",
                "INSERT INTO nowhere_full VALUES (1)"):
        with pytest.raises(sqlite3.OperationalError) as info:
            conn.execute(sql)
        assert translate(tmp_path / "x.db", info.value) is None, sql
    conn.close()


def test_every_store_path_translates(tmp_path, monkeypatch):
    """settings and queue reads go through the translator too (they used raw executes)."""
    from saegold.store import queue

    p = open_project(tmp_path / "p.db", create=True)
    try:
        busy = _error(sqlite3.OperationalError, "database is locked", 5, "SQLITE_BUSY")

        class Stuck:
            def __init__(self, real):
                self.real = real

            def query(self, *a, **k):
                raise busy

            def execute(self, *a, **k):
                raise busy

            def __getattr__(self, name):
                return getattr(self.real, name)

        real = p.db
        p._local.db = Stuck(real)
        for call in (lambda: settings.get(p, "overlap"), lambda: queue.queue(p, "amy"),
                     lambda: queue.disagreements(p)):
            with pytest.raises(StoreError, match="locked by another process"):
                call()
        p._local.db = real
    finally:
        p.close()
