"""The project file and its WAL/SHM side files are group-writable for a shared annotation group."""
from __future__ import annotations

import os
import stat

import pytest

from saegold.store import judgments
from saegold.store.db import open_project


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_db_wal_and_shm_are_group_writable(tmp_path, umask):
    old = os.umask(umask)
    try:
        path = tmp_path / "shared.db"
        p = open_project(path, create=True)
        judgments.ensure_annotator(p, "alice")  # a write: the WAL and SHM now exist
        wal, shm = path.with_name("shared.db-wal"), path.with_name("shared.db-shm")
        assert wal.exists() and shm.exists()
        assert _mode(path) == 0o664
        # SQLite gives the side files the main file's mode, whatever the umask.
        assert _mode(wal) == 0o664
        assert _mode(shm) == 0o664
        p.close()
    finally:
        os.umask(old)


def test_setgid_directory_gives_every_file_the_group(tmp_path):
    """The README's recipe: a setgid directory owned by the annotation group."""
    shared = tmp_path / "project"
    shared.mkdir()
    gid = 65534 if os.geteuid() == 0 else os.getgid()  # root can pick a group it is not in
    os.chown(shared, -1, gid)
    shared.chmod(0o2775)
    p = open_project(shared / "p.db", create=True)
    judgments.ensure_annotator(p, "alice")
    for name in ("p.db", "p.db-wal", "p.db-shm"):
        st = os.stat(shared / name)
        assert st.st_gid == gid, name
        assert stat.S_IMODE(st.st_mode) & 0o060 == 0o060, name
    p.close()
