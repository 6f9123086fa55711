"""``saegold backup``: consistent online snapshots while annotators write."""
from __future__ import annotations

import os
import stat
import threading

import pytest
from robust_harness import run_writers

from saegold.store.backup import backup, verify
from saegold.store.db import open_project
from saegold.store.errors import StoreError


def _consistent(path) -> int:
    """A snapshot opens as a project, passes integrity_check, and is internally whole."""
    assert verify(path) == ["ok"]
    with open_project(path) as p:
        orphans = p.scalar("SELECT count(*) FROM judgments r WHERE r.kind = 'retract' AND NOT EXISTS "
                           "(SELECT 1 FROM judgments t WHERE t.uuid = r.target_uuid)")
        assert orphans == 0
        assert p.scalar("PRAGMA foreign_key_check") is None
        return p.scalar("SELECT count(*) FROM judgments")


def test_backup_while_eight_annotators_write(seeded, tmp_path):
    result: dict = {}
    writers = threading.Thread(target=lambda: result.update(
        run=run_writers(seeded, tmp_path / "work", 8, 150, seed=5)))
    writers.start()
    counts = []
    with open_project(seeded) as p:
        while writers.is_alive() or not counts:
            dest = tmp_path / f"snap-{len(counts)}.db"
            r = backup(p, dest)
            assert r.judgments == _consistent(dest)
            counts.append(r.judgments)
    writers.join()
    assert "run" in result
    assert counts == sorted(counts)  # snapshots move forward in time
    assert len(counts) >= 2
    final = backup(open_project(seeded), tmp_path / "final.db")
    assert final.judgments == 8 * 150 == _consistent(tmp_path / "final.db")


def test_backup_refuses_to_clobber_and_cleans_up(project, tmp_path):
    dest = tmp_path / "b.db"
    backup(project, dest)
    with pytest.raises(StoreError, match="already exists"):
        backup(project, dest)
    backup(project, dest, overwrite=True)
    with pytest.raises(StoreError, match="is the project database itself"):
        backup(project, project.path, overwrite=True)
    with pytest.raises(StoreError, match="no such directory"):
        backup(project, tmp_path / "nope" / "b.db")
    assert sorted(f.name for f in tmp_path.iterdir() if "partial" in f.name) == []


def test_backup_keeps_the_group_writable_mode(project, tmp_path):
    dest = tmp_path / "b.db"
    old = os.umask(0o077)
    try:
        backup(project, dest)
    finally:
        os.umask(old)
    assert stat.S_IMODE(dest.stat().st_mode) == 0o664


def test_cli_backup(seeded, tmp_path, cli):
    dest = tmp_path / "cli.db"
    rc, out, err = cli("--db", seeded, "backup", dest)
    assert rc == 0, err
    assert "integrity ok" in out
    assert verify(dest) == ["ok"]
    rc, out, err = cli("--db", seeded, "backup", dest)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "already exists" in err
