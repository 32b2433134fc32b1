"""SQLite in WAL mode, safely switched on by several processes starting at once.

Every gunicorn worker opens the service database when it starts. Switching a database to WAL needs
a moment of exclusive access, and SQLite answers "database is locked" at once (without waiting out
the busy timeout) when two connections try it together — on a fresh data home that failed the
second worker's boot. WAL is a property of the database file: a connection that finds it set has
nothing to do; one that must set it retries for a few seconds.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

ATTEMPTS = 100
PAUSE_SECONDS = 0.05


def use_wal(dbapi_conn: Any) -> None:
    """Put the connection's database in WAL mode (retrying while another process does the same)."""
    cur = dbapi_conn.cursor()
    try:
        cur.execute("PRAGMA busy_timeout=10000")
        for attempt in range(ATTEMPTS):
            try:
                if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
                    return
                cur.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == ATTEMPTS - 1:
                    raise
                time.sleep(PAUSE_SECONDS)
    finally:
        cur.close()
