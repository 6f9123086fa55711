"""Errors raised by the project store. Each renders as one clear line."""
from __future__ import annotations


class SaegoldError(Exception):
    """Base class: an error whose message is fit to show a user as one line."""


class StoreError(SaegoldError):
    """The project database cannot be opened or used as asked."""


class Locked(StoreError):
    """Another process held the project's write lock for longer than this connection waits."""


class SchemaTooNew(StoreError):
    """The database was written by a newer saegold than this one."""


class BadInput(SaegoldError):
    """A record in an input file is malformed.

    ``file``, ``record`` (line number, array index or id) and ``field`` name the culprit.
    """

    def __init__(self, file: str | None, record: object, field: str | None, problem: str):
        self.file, self.record, self.field, self.problem = file, record, field, problem
        where = [p for p in (
            str(file) if file else None,
            f"record {record}" if record is not None else None,
            f"field {field!r}" if field else None,
        ) if p]
        super().__init__(f"{': '.join(where)}: {problem}" if where else problem)
