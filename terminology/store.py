"""The versioned terminology store: one SQLite file ``terminology.sqlite`` in the data home.

Several versions of a table (医保版 1.0, 2.0, later 3.0) live side by side; exactly one per kind is
active and is what :func:`terminology.load_terminology` loads. Re-importing a kind+version
replaces it atomically, so a half-imported file never becomes visible.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from terminology.importer import KINDS, ParsedTable
from terminology.search import pack_postings

__all__ = ["DB_NAME", "TableVersion", "TerminologyStore"]

DB_NAME = "terminology.sqlite"

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tables (
    kind TEXT NOT NULL, version TEXT NOT NULL, active INTEGER NOT NULL DEFAULT 0,
    source TEXT, imported_at TEXT, row_count INTEGER, reject_count INTEGER,
    PRIMARY KEY (kind, version)
);
CREATE TABLE IF NOT EXISTS codes (
    kind TEXT NOT NULL, version TEXT NOT NULL, code TEXT NOT NULL, name TEXT NOT NULL, initials TEXT NOT NULL,
    PRIMARY KEY (kind, version, code)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS search_cache (
    kind TEXT NOT NULL, version TEXT NOT NULL, postings BLOB NOT NULL, PRIMARY KEY (kind, version)
);
CREATE TABLE IF NOT EXISTS maps (
    kind TEXT NOT NULL, version TEXT NOT NULL, source_key TEXT NOT NULL, source_code TEXT NOT NULL,
    source_name TEXT NOT NULL, target_code TEXT NOT NULL, target_name TEXT NOT NULL,
    PRIMARY KEY (kind, version, source_key)
) WITHOUT ROWID;
"""

# Indexes added after stores were already in use. CREATE INDEX IF NOT EXISTS is the migration: an
# older store gets them the first time it is opened writable (~0.05 s for the full 医保版 tables).
# codes_by_code serves find_in_other_versions ("is this unknown code in another version?", asked
# for every unknown code), which otherwise scans every row of the kind. Keyed on code alone: SQLite
# (3.40, no ANALYZE) ignores an index on (kind, code) in favour of the primary key's kind prefix.
_INDEXES = """
CREATE INDEX IF NOT EXISTS codes_by_code ON codes (code);
"""


@dataclass(frozen=True, slots=True)
class TableVersion:
    kind: str
    version: str
    active: bool
    source: str
    imported_at: str
    row_count: int
    reject_count: int


class TerminologyStore:
    """Thin data-access layer; ``path`` may be ``':memory:'`` (used for the built-in sample)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        # one connection shared by request threads (lookups of retired codes): serialise access
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False)
        self._conn.executescript(_SCHEMA)
        try:
            self._conn.executescript(_INDEXES)
        except sqlite3.OperationalError as exc:  # read-only or busy store: still usable, just slower
            log.warning(
                "terminology store: could not add indexes (%s); lookups of unknown codes are slower", exc
            )

    @classmethod
    def in_home(cls, home: str | Path) -> TerminologyStore:
        Path(home).mkdir(parents=True, exist_ok=True)
        return cls(Path(home) / DB_NAME)

    def close(self) -> None:
        self._conn.close()

    # --- writing --------------------------------------------------------------------------------
    def save(self, table: ParsedTable, version: str, activate: bool = True) -> TableVersion:
        """Replace ``table.kind`` @ ``version`` with the parsed rows in one transaction."""
        if table.kind not in KINDS:
            raise ValueError(f"unknown kind {table.kind!r}")
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self._conn:
            self._conn.execute("DELETE FROM codes WHERE kind=? AND version=?", (table.kind, version))
            self._conn.execute("DELETE FROM maps WHERE kind=? AND version=?", (table.kind, version))
            if table.kind.endswith("-map"):
                self._conn.executemany(
                    "INSERT INTO maps VALUES (?,?,?,?,?,?,?)",
                    ((table.kind, version, *row) for row in table.rows),
                )
            else:
                self._conn.executemany(
                    "INSERT INTO codes VALUES (?,?,?,?,?)",
                    ((table.kind, version, *row) for row in table.rows),
                )
                # fuzzy-search postings, in the order the codes are loaded (ORDER BY code)
                names = [name for _code, name, _initials in sorted(table.rows)]
                self._conn.execute(
                    "INSERT OR REPLACE INTO search_cache VALUES (?,?,?)",
                    (table.kind, version, pack_postings(names)),
                )
            self._conn.execute(
                "INSERT OR REPLACE INTO tables VALUES (?,?,?,?,?,?,?)",
                (table.kind, version, 0, table.source, now, len(table.rows), len(table.rejects)),
            )
            has_active = self._conn.execute(
                "SELECT 1 FROM tables WHERE kind=? AND active=1", (table.kind,)
            ).fetchone()
            if activate or not has_active:
                self._activate(table.kind, version)
        return next(v for v in self.versions() if v.kind == table.kind and v.version == version)

    def activate(self, kind: str, version: str) -> None:
        with self._conn:
            found = self._conn.execute(
                "SELECT 1 FROM tables WHERE kind=? AND version=?", (kind, version)
            ).fetchone()
            if not found:
                raise KeyError(f"{kind} {version} 未导入")
            self._activate(kind, version)

    def _activate(self, kind: str, version: str) -> None:
        self._conn.execute("UPDATE tables SET active = (version = ?) WHERE kind = ?", (version, kind))

    # --- reading --------------------------------------------------------------------------------
    def versions(self) -> list[TableVersion]:
        rows = self._conn.execute("SELECT * FROM tables ORDER BY kind, version").fetchall()
        return [
            TableVersion(r[0], r[1], bool(r[2]), r[3] or "", r[4] or "", r[5] or 0, r[6] or 0) for r in rows
        ]

    def active_version(self, kind: str) -> str | None:
        row = self._conn.execute("SELECT version FROM tables WHERE kind=? AND active=1", (kind,)).fetchone()
        return row[0] if row else None

    def codes(self, kind: str, version: str) -> list[tuple[str, str, str]]:
        """(code, name, initials) sorted by code."""
        cur = self._conn.execute(
            "SELECT code, name, initials FROM codes WHERE kind=? AND version=? ORDER BY code", (kind, version)
        )
        return cur.fetchall()

    def postings(self, kind: str, version: str) -> bytes | None:
        """Search postings packed at import; None for stores written before they existed."""
        row = self._conn.execute(
            "SELECT postings FROM search_cache WHERE kind=? AND version=?", (kind, version)
        ).fetchone()
        return row[0] if row else None

    def map_rows(self, kind: str, version: str) -> list[tuple[str, str, str, str, str]]:
        """(source_key, source_code, source_name, target_code, target_name)."""
        cur = self._conn.execute(
            "SELECT source_key, source_code, source_name, target_code, target_name FROM maps "
            "WHERE kind=? AND version=?",
            (kind, version),
        )
        return cur.fetchall()

    def find_in_other_versions(self, kind: str, code: str, exclude: str | None) -> list[tuple[str, str]]:
        """(version, name) of ``code`` in versions other than ``exclude``: how 'retired' is detected."""
        with self._lock:
            cur = self._conn.execute(
                "SELECT version, name FROM codes WHERE kind=? AND code=? AND version IS NOT ?",
                (kind, code, exclude),
            )
            return cur.fetchall()

    def is_empty(self) -> bool:
        return self._conn.execute("SELECT 1 FROM tables LIMIT 1").fetchone() is None
