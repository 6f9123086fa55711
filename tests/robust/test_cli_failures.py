"""A newer schema, a read-only file, a full disk and a locked file: one clear line, exit 2,
and the database exactly as it was."""
from __future__ import annotations

import contextlib
import gc
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from robust_harness import REPO, seed_project, table_dump

import saegold.store.db as store_db
NOTE = {"annotator": "zoe", "source": "tiny-model/0-res", "feature": 0, "kind": "note",
        "value": "hello", "created_at": "2026-11-01T00:00:00Z"}


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("saegold: error: ")
    return lines[0]


@pytest.fixture
def jsonl(tmp_path) -> Path:
    path = tmp_path / "j.jsonl"
    path.write_text("\n".join(json.dumps({**NOTE, "feature": i % 40, "value": f"n{i}"})
                              for i in range(300)) + "\n")
    return path


@pytest.fixture
def other(tmp_path) -> Path:
    return seed_project(tmp_path / "other.db")


def test_newer_schema_is_one_line(seeded, cli, jsonl, other):
    with contextlib.closing(sqlite3.connect(seeded)) as conn, conn:
        conn.execute("INSERT INTO _sqlite_migrations(migration_set, name, applied_at) "
                     "VALUES ('saegold', 'm999_from_the_future', 'x')")
    before = table_dump(seeded)
    for args in (["init"], ["import", "judgments", jsonl], ["merge", other], ["backup", seeded.with_name("b.db")]):
        rc, out, err = cli("--db", seeded, *args)
        assert rc == 2
        assert "newer saegold" in _one_line(err)
    assert table_dump(seeded) == before


def _drop_root_privileges() -> list[str]:
    """As root, file modes do not stop writes: run without CAP_DAC_OVERRIDE (setpriv)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: a read-only file cannot be simulated")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner"]


def test_read_only_file_is_one_line(seeded, jsonl, other, tmp_path):
    prefix = _drop_root_privileges()
    before = table_dump(seeded)
    seeded.chmod(0o444)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for args in (["import", "judgments", str(jsonl)], ["merge", str(other)]):
        r = subprocess.run([*prefix, sys.executable, "-m", "saegold.tui.cli", "--db", str(seeded), *args],
                           capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
        assert r.returncode == 2, r.stderr
        assert "read-only" in _one_line(r.stderr)
    seeded.chmod(0o664)
    assert table_dump(seeded) == before


def test_full_disk_is_one_line(seeded, cli, jsonl, other, monkeypatch):
    """The disk fills mid-transaction (max_page_count at the current size): nothing lands."""
    connect = store_db.Project._connect

    def cramped(self):
        db = connect(self)
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages}")
        return db

    before = table_dump(seeded)
    monkeypatch.setattr(store_db.Project, "_connect", cramped)
    for args in (["import", "judgments", jsonl], ["merge", other]):
        rc, out, err = cli("--db", seeded, *args)
        assert rc == 2
        assert "disk is full" in _one_line(err)
    monkeypatch.undo()
    assert table_dump(seeded) == before


def test_locked_file_is_one_line(seeded, cli, jsonl, other, monkeypatch):
    monkeypatch.setattr(store_db, "BUSY_TIMEOUT_MS", 200)
    before = table_dump(seeded)
    holder = sqlite3.connect(seeded, isolation_level=None)
    try:
        # A writer that holds its lock past the busy timeout.
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("INSERT INTO annotators(name, role, created_at) VALUES ('hog', 'annotator', 'x')")
        for args in (["import", "judgments", jsonl], ["merge", other]):
            rc, out, err = cli("--db", seeded, *args)
            assert rc == 2
            assert "locked by another process" in _one_line(err)
        holder.execute("ROLLBACK")
        # A connection in exclusive locking mode shuts out even readers.
        holder.execute("PRAGMA locking_mode = EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("INSERT INTO annotators(name, role, created_at) VALUES ('hog', 'annotator', 'x')")
        for args in (["init"], ["import", "judgments", jsonl], ["backup", seeded.with_name("b.db")]):
            rc, out, err = cli("--db", seeded, *args)
            assert rc == 2
            assert "locked by another process" in _one_line(err)
        holder.execute("ROLLBACK")
    finally:
        holder.close()
    assert table_dump(seeded) == before


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 400 KiB filesystem (tmpfs); needs root (or CAP_SYS_ADMIN) to mount."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({r.stderr.strip() or 'not root'}); "
                    "the full disk is covered by max_page_count above")
    try:
        yield mnt
    finally:
        gc.collect()  # close any connection a failed assertion left behind
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], check=False)  # detach even if busy


def test_really_full_disk_is_one_line(tiny_disk, cli, tmp_path, seeded):
    db = seed_project(tiny_disk / "p.db", n_features=3)
    big = tmp_path / "big.jsonl"
    big.write_text("\n".join(json.dumps({**NOTE, "feature": i % 3, "value": "x" * 5000 + str(i)})
                             for i in range(200)) + "\n")
    before = table_dump(db)
    rc, out, err = cli("--db", db, "import", "judgments", big)
    assert rc == 2
    assert "disk is full" in _one_line(err)
    assert table_dump(db) == before
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    # A backup onto the full disk fails in one line and leaves no partial file behind.
    filler = tiny_disk / "filler"
    try:
        with open(filler, "wb", buffering=0) as f:
            while True:
                f.write(b"\0" * 4096)
    except OSError:
        pass  # the disk is now full
    rc, out, err = cli("--db", seeded, "backup", tiny_disk / "snap.db")
    assert rc == 2
    assert "backup" in _one_line(err)
    assert "disk is full" in err
    assert [p.name for p in tiny_disk.iterdir() if "snap" in p.name] == []


def test_damaged_pages_are_one_line(tmp_path, cli, jsonl):
    """A file whose judgment pages are scribbled over: reports and writes say so in one line."""
    from saegold.store import judgments

    db = seed_project(tmp_path / "damaged.db")
    with store_db.open_project(db) as p:
        fids = [r["id"] for r in p.query("SELECT id FROM features")]
        judgments.append_many(p, [judgments.make_event("a", fids[i % len(fids)], "note", value="x" * 200)
                                  for i in range(3000)])
    data = bytearray(db.read_bytes())
    pages = len(data) // 4096
    for i in range(int(pages * 0.4), int(pages * 0.95)):
        data[i * 4096 + 100:i * 4096 + 600] = b"\xde\xad\xbe\xef" * 125
    db.write_bytes(bytes(data))
    for args in (["status"], ["agreement", "--bootstrap", "10"], ["import", "judgments", jsonl]):
        rc, out, err = cli("--db", db, *args)
        assert rc == 2, err
        assert "damaged" in _one_line(err)
    # Damaged feature and label pages, met by streamed exports outside the store's helpers.
    db2 = seed_project(tmp_path / "damaged2.db", n_features=400)
    data = bytearray(db2.read_bytes())
    pages = len(data) // 4096
    for i in range(int(pages * 0.4), int(pages * 0.95)):
        data[i * 4096 + 100:i * 4096 + 600] = b"\xde\xad\xbe\xef" * 125
    db2.write_bytes(bytes(data))
    for args in (["export", "labels"], ["export", "features"]):
        rc, out, err = cli("--db", db2, *args)
        assert rc == 2, err
        assert "damaged" in _one_line(err)


def test_read_only_open_of_an_odd_file_name(tmp_path):
    """open_project(readonly=True) reads the named file, never a file cut at '#' or '?'."""
    path = seed_project(tmp_path / "team #1?x.db")
    with store_db.open_project(path, readonly=True) as p:
        assert p.scalar("SELECT count(*) FROM features") == 40
    assert sorted(f.name for f in tmp_path.iterdir() if not f.name.startswith("team #1?x.db")) == []
