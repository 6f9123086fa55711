"""Consistent online snapshots of a project (``saegold backup PATH``).

Annotators may keep working while a backup runs.  The copy uses SQLite's online backup
API over one read transaction held for the whole copy, so the snapshot is the database as
of one instant (WAL readers never block writers, and writers never restart the copy).
The snapshot is written to a temporary file next to PATH, checked with
``PRAGMA integrity_check``, and only then renamed to PATH: a backup that fails leaves
nothing half-written behind.
"""
from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .db import Project, connect_read_only
from .errors import StoreError
from .sqlite_errors import translate

ProgressFn = Callable[[str, int, "int | None"], None]
PAGES_PER_STEP = 1024


@dataclass
class BackupResult:
    path: Path
    pages: int
    bytes: int
    judgments: int
    seconds: float


def backup(project: Project, dest: str | os.PathLike, *, overwrite: bool = False,
           progress: ProgressFn | None = None) -> BackupResult:
    """Snapshot ``project`` to ``dest``; verify it; return what was written."""
    dest = Path(dest)
    if dest.is_dir():
        raise StoreError(f"{dest}: is a directory; give the backup's file name")
    if dest.exists():
        if not overwrite:
            raise StoreError(f"{dest}: already exists (pass --force to replace it)")
        with contextlib.suppress(OSError):
            if os.path.samefile(dest, project.path):
                raise StoreError(f"{dest}: is the project database itself")
    if not dest.parent.exists():
        raise StoreError(f"{dest.parent}: no such directory")
    tmp = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    say = progress or (lambda stage, done, total: None)
    started = time.monotonic()
    # A private connection: the copy holds a read transaction that must not mix with the
    # caller's own work on this thread's connection.
    # It is read-only, so a project on a read-only file, directory or mount can be backed up.
    try:
        src, _ = connect_read_only(project.path, timeout=30, isolation_level=None)
    except sqlite3.DatabaseError as exc:
        raise translate(project.path, exc) or StoreError(
            f"{dest}: cannot start the backup ({exc})") from exc
    try:
        try:
            src.execute("BEGIN")
            judgments = src.execute("SELECT count(*) FROM judgments").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise translate(project.path, exc) or StoreError(
                f"{dest}: cannot start the backup ({exc})") from exc
        try:
            target = sqlite3.connect(tmp, isolation_level=None)
        except sqlite3.DatabaseError as exc:
            err = translate(dest, exc)
            raise StoreError(f"backup failed: {err}" if err else
                             f"{dest}: cannot start the backup ({exc})") from exc
        try:
            def step(status: int, remaining: int, total: int) -> None:
                say("backup", total - remaining, total)

            src.backup(target, pages=PAGES_PER_STEP, progress=step, sleep=0)
            target.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
            check = [r[0] for r in target.execute("PRAGMA integrity_check").fetchall()]
            pages = target.execute("PRAGMA page_count").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            err = translate(dest, exc)
            raise StoreError(f"backup failed: {err}" if err else
                             f"{dest}: backup failed ({exc}); nothing was written") from exc
        finally:
            target.close()
        if check != ["ok"]:
            raise StoreError(f"{dest}: the snapshot failed its integrity check ({check[0]}); "
                             f"nothing was written")
        with contextlib.suppress(OSError):
            os.chmod(tmp, stat.S_IMODE(project.path.stat().st_mode))
        os.replace(tmp, dest)
    except OSError as exc:
        raise StoreError(f"{dest}: cannot write the backup ({exc.strerror})") from exc
    finally:
        src.close()
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return BackupResult(dest, pages, dest.stat().st_size, judgments, time.monotonic() - started)


def verify(path: str | os.PathLike) -> list[str]:
    """``PRAGMA integrity_check`` of a database file (``['ok']`` when sound)."""
    conn = sqlite3.connect(read_only_uri(path), uri=True)
    try:
        return [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
    finally:
        conn.close()


def read_only_uri(path: str | os.PathLike) -> str:
    """A ``mode=ro`` SQLite URI; ``as_uri`` escapes ``?``, ``#`` and ``%`` in the file name."""
    return f"{Path(path).resolve().as_uri()}?mode=ro"
