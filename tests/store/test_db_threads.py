"""One connection per thread; a worker thread can close its own."""
from __future__ import annotations

import sqlite3
import threading

import pytest


def test_close_thread_closes_only_that_threads_connection(project):
    main = project.db
    seen = {}

    def work():
        seen["db"] = project.db
        project.db.execute("SELECT 1").fetchone()
        project.close_thread()
        project.close_thread()                      # a second call is harmless

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert seen["db"] is not main and seen["db"] not in project._all and main in project._all
    with pytest.raises(sqlite3.ProgrammingError):   # closed
        seen["db"].conn.execute("SELECT 1")
    assert project.db.execute("SELECT 1").fetchone() == (1,)
