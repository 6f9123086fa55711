"""The import log (schema ``m002_import_log``): one row per imported file, by content."""
from __future__ import annotations

from pathlib import Path

from ..sqlite_utils_lib import Database

from ..db import Project, now


def log_import(db: Database, kind: str, path: str | Path, sha256: str, size: int, records: int,
               rejected: int) -> None:
    """Record an imported file; the same bytes imported again leave the first row as it is."""
    db.execute(
        "INSERT OR IGNORE INTO import_log(kind, path, sha256, bytes, records, rejected, imported_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [kind, str(path), sha256, size, records, rejected, now()],
    )


def imports(project: Project) -> list[dict]:
    """Every logged import, oldest first."""
    return project.query("SELECT * FROM import_log ORDER BY id")
