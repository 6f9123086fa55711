"""Read-only commands work on a project in a read-only directory or on a read-only mount;
write commands name the real cause in one line (exit 2).

Tests run as root here, where file modes stop nothing: a read-only mount is a real tmpfs
remounted ro, and a read-only directory is checked in a child without CAP_DAC_OVERRIDE
(setpriv).  Each skips, saying why, where mounting or setpriv is not permitted."""
from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from robust_harness import REPO, seed_project, table_dump

NOTE = {"annotator": "zoe", "source": "tiny-model/0-res", "feature": 0, "kind": "note",
        "value": "hello", "created_at": "2026-11-01T00:00:00Z"}

READ_ONLY_COMMANDS = (["status"], ["status", "--json"], ["export", "labels"], ["export", "judgments"],
                      ["agreement", "--bootstrap", "5"], ["calibrate", "--bootstrap", "5", "--json"],
                      ["bench", "--report"], ["export", "gold"])


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("saegold: error: ")
    return lines[0]


def _mount(args: list[str]) -> None:
    r = subprocess.run(["mount", *args], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount here ({r.stderr.strip() or 'not root'})")


def _umount(mnt: Path) -> None:
    gc.collect()  # close any connection a failed assertion left behind
    if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture
def ro_mount(tmp_path):
    """A seeded project (closed cleanly: no -wal, no -shm) on a tmpfs remounted read-only."""
    mnt = tmp_path / "ro"
    mnt.mkdir()
    _mount(["-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)])
    try:
        seed_project(mnt / "p.db")
        assert sorted(p.name for p in mnt.iterdir()) == ["p.db"]
        _mount(["-o", "remount,ro", str(mnt)])
        yield mnt / "p.db"
    finally:
        _umount(mnt)


def test_read_only_commands_work_on_a_read_only_mount(ro_mount, cli, tmp_path):
    before = table_dump(ro_mount)
    for args in READ_ONLY_COMMANDS:
        rc, out, err = cli("--db", ro_mount, *args)
        assert rc == 0, (args, err)
    rc, out, err = cli("--db", ro_mount, "status", "--json")
    assert json.loads(out)["tables"]["features"] == 40
    rc, out, err = cli("--db", ro_mount, "export", "labels")
    assert len(out.splitlines()) == 80
    rc, out, err = cli("--db", ro_mount, "backup", tmp_path / "snap.db")
    assert rc == 0, err
    assert table_dump(tmp_path / "snap.db") == before
    assert table_dump(ro_mount) == before
    assert sorted(p.name for p in ro_mount.parent.iterdir()) == ["p.db"]


def test_write_commands_on_a_read_only_mount_name_the_cause(ro_mount, cli, tmp_path):
    jsonl = tmp_path / "j.jsonl"
    jsonl.write_text(json.dumps(NOTE) + "\n")
    before = table_dump(ro_mount)
    for args in (["import", "judgments", jsonl], ["init"], ["calibrate", "--store-thresholds", "--yes"]):
        rc, out, err = cli("--db", ro_mount, *args)
        assert rc == 2, (args, err)
        line = _one_line(err)
        assert "read-only file system" in line, line
        assert "unable to open" not in line
    assert table_dump(ro_mount) == before


def _no_dac() -> list[str]:
    """As root, directory modes do not stop writes: run the child without CAP_DAC_OVERRIDE."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: a read-only directory cannot be simulated")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner"]


def _close_cleanly(db: Path) -> None:
    """The last connection to close checkpoints and removes -wal and -shm."""
    import sqlite3

    conn = sqlite3.connect(db)
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    conn.close()


def _saegold(prefix: list[str], db: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([*prefix, sys.executable, "-m", "saegold.tui.cli", "--db", str(db), *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def test_read_only_directory(tmp_path):
    prefix = _no_dac()
    folder = tmp_path / "shared"
    folder.mkdir()
    db = seed_project(folder / "p.db")
    jsonl = tmp_path / "j.jsonl"
    jsonl.write_text(json.dumps(NOTE) + "\n")
    before = table_dump(db)
    _close_cleanly(db)
    assert sorted(p.name for p in folder.iterdir()) == ["p.db"]
    folder.chmod(0o555)
    try:
        for args in (["status", "--json"], ["export", "labels"], ["bench", "--report"],
                     ["backup", tmp_path / "snap.db"]):
            r = _saegold(prefix, db, *args, cwd=tmp_path)
            assert r.returncode == 0, (args, r.stderr)
        r = _saegold(prefix, db, "import", "judgments", jsonl, cwd=tmp_path)
        assert r.returncode == 2, r.stderr
        line = _one_line(r.stderr)
        assert f"directory {folder} is read-only" in line, line
        assert "database file is read-only" not in line
        assert sorted(p.name for p in folder.iterdir()) == ["p.db"]
    finally:
        folder.chmod(0o755)
    assert table_dump(db) == before


def test_read_only_directory_with_a_left_over_wal_is_not_read_stale(tmp_path):
    """A -wal without its -shm in a read-only directory: refused, never read without it."""
    import sqlite3

    prefix = _no_dac()
    folder = tmp_path / "shared"
    folder.mkdir()
    db = seed_project(folder / "p.db")
    # Leave committed changes in the -wal (as a killed writer does), then lose the -shm.
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("INSERT INTO annotators(name, role, created_at) VALUES ('late', 'annotator', 'x')")
    conn.commit()
    shutil.copy(db, tmp_path / "main.copy")
    shutil.copy(db.with_name("p.db-wal"), tmp_path / "wal.copy")
    conn.close()
    for f in folder.iterdir():
        f.unlink()
    shutil.copy(tmp_path / "main.copy", db)
    shutil.copy(tmp_path / "wal.copy", db.with_name("p.db-wal"))
    folder.chmod(0o555)
    try:
        r = _saegold(prefix, db, "status", "--json", cwd=tmp_path)
    finally:
        folder.chmod(0o755)
    assert r.returncode == 2, r.stdout
    assert "p.db-wal holds changes" in _one_line(r.stderr)
