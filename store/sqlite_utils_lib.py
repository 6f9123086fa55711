"""sqlite-utils, imported without pandas: every store module takes it from here.

sqlite-utils imports pandas (when installed) only to map ``pandas.Timestamp`` to TEXT in
tables it creates from Python values, which saegold never does (every table is made in SQL,
:mod:`store.schema`); pandas takes most of a second to import, on every command that opens a
project (tests/perf/perf_store.py: `saegold status`).  When pandas is already loaded (a
command that uses it), nothing changes, and a later ``import pandas`` loads it as usual.
"""
from __future__ import annotations

import sys

_blocked = "pandas" not in sys.modules and "sqlite_utils.db" not in sys.modules
if _blocked:
    sys.modules["pandas"] = None  # type: ignore[assignment]  # `import pandas` -> ImportError
try:
    from sqlite_utils import Database, Migrations
finally:
    # typeshed types sys.modules without None, but the block above put None there on purpose
    if _blocked and "pandas" in sys.modules and sys.modules["pandas"] is None:
        del sys.modules["pandas"]  # type: ignore[unreachable]

__all__ = ["Database", "Migrations"]
