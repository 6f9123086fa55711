"""The one translator of SQLite failures into one-line errors a user can act on.

Keyed on the error code SQLite gives (``sqlite_errorcode`` / ``sqlite_errorname``, Python
3.11+), never on the message text, and named for the real cause: a read-only directory or
file system, a full disk, a lock held too long, a damaged file.  Anything else (a bad
statement, a broken constraint) is a bug or the caller's business: :func:`translate`
returns None for it, and the caller re-raises the original.
"""
from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

from .errors import Locked, StoreError

# Primary result codes (the low byte of an extended code).
_PERM, _BUSY, _LOCKED, _NOMEM, _READONLY = 3, 5, 6, 7, 8
_IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = 10, 11, 13, 14, 26
_READONLY_DIRECTORY = 1544          # SQLITE_READONLY_DIRECTORY: cannot create -wal / -shm
_IOERR_SHMSIZE = 4874               # SQLITE_IOERR_SHMSIZE: no room to grow the -shm file


def code_of(exc: BaseException) -> tuple[int | None, str]:
    """``(extended code, name)`` of an sqlite3 error; ``(None, '')`` for one without."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code, getattr(exc, "sqlite_errorname", "") or ""


def is_damaged(exc: BaseException) -> bool:
    """The file itself is corrupt, or is not an SQLite database at all."""
    code, _ = code_of(exc)
    return code is not None and code & 0xFF in (_CORRUPT, _NOTADB)


def is_environmental(exc: BaseException) -> bool:
    """The file, the directory, the disk or another process is at fault, not the statement."""
    code, _ = code_of(exc)
    return code is not None and code & 0xFF in (_PERM, _BUSY, _LOCKED, _NOMEM, _READONLY, _IOERR,
                                                 _FULL, _CANTOPEN, _CORRUPT, _NOTADB)


def translate(path: str | os.PathLike, exc: BaseException) -> StoreError | None:
    """The one-line :class:`StoreError` for ``exc`` met on the database at ``path``, or
    None when it is not a failure of the file, the disk or a lock."""
    if not isinstance(exc, sqlite3.Error):
        return None
    code, name = code_of(exc)
    if code is None:
        return None
    path = Path(path)
    primary = code & 0xFF
    if primary in (_CORRUPT, _NOTADB):
        return StoreError(f"{path}: the database file is damaged ({exc}); restore it from a backup "
                          f"(saegold backup) or recover what is readable with `sqlite3 {path} .recover`")
    if primary in (_BUSY, _LOCKED):
        return Locked(f"{path}: the database is locked by another process (timed out)")
    if primary == _FULL or code == _IOERR_SHMSIZE or (primary == _IOERR and _disk_full(path)):
        return StoreError(f"{path}: the disk is full; nothing was written")
    if primary in (_READONLY, _CANTOPEN, _PERM):
        return StoreError(cannot_write(path, code, name))
    if primary == _IOERR:
        return StoreError(f"{path}: disk I/O error ({name}); check the disk and the file system")
    if primary == _NOMEM:
        return StoreError(f"{path}: out of memory while using the database")
    return None


def cannot_write(path: Path, code: int, name: str) -> str:
    """The real reason SQLite could not open or write ``path``."""
    folder = path.resolve().parent if path.exists() else path.parent
    if read_only_mount(folder):
        return f"cannot write {path}: it is on a read-only file system"
    if code == _READONLY_DIRECTORY or (path.exists() and not writable(folder)):
        return (f"cannot write {path}: the directory {folder} is read-only for this user "
                f"(SQLite creates {path.name}-wal and {path.name}-shm next to the database)")
    if path.exists() and not os.access(path, os.R_OK):
        return f"cannot read {path}: permission denied"
    if path.exists() and not os.access(path, os.W_OK):
        return f"cannot write {path}: the database file is read-only for this user"
    if not path.exists() and not folder.is_dir():
        return f"{folder}: no such directory"
    if code & 0xFF == _READONLY:
        return f"cannot write {path}: the database was opened read-only ({name})"
    return f"cannot open {path} ({name})"


def read_only_mount(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def writable(folder: Path) -> bool:
    """Can this process create files in ``folder`` (mode, ownership, mount)?"""
    return os.access(folder, os.W_OK | os.X_OK) and not read_only_mount(folder)


def _disk_full(path: Path) -> bool:
    try:
        return shutil.disk_usage(path.resolve().parent).free < 64 * 1024
    except OSError:
        return False
