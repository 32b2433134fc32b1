"""``catalogs.sqlite`` in the data home: imported catalogs and the procedure-type table.

Groups are stored one row each (readable with any SQLite tool); loading all of 平顶山's 4,536
rows and building the index takes a few tens of milliseconds, so no separate snapshot is needed.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from dip_engine.catalog import Catalog
from dip_engine.optypes import OpTypeEntry
from grouper import Group

FILENAME = "catalogs.sqlite"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS catalogs (
    id INTEGER PRIMARY KEY, region TEXT NOT NULL, name TEXT NOT NULL, version TEXT, year INTEGER,
    effective_from TEXT, effective_to TEXT, region_avg_cost TEXT, source TEXT, imported_at TEXT,
    report TEXT, UNIQUE (region, year)
);
CREATE TABLE IF NOT EXISTS groups (
    catalog_id INTEGER NOT NULL REFERENCES catalogs(id) ON DELETE CASCADE,
    code TEXT NOT NULL, type TEXT NOT NULL, dx_key TEXT NOT NULL, op_type TEXT, name TEXT,
    procedures TEXT, procedure_names TEXT, score TEXT NOT NULL, avg_cost TEXT, avg_los REAL, cv REAL,
    case_count INTEGER, primary_care INTEGER NOT NULL DEFAULT 0, extra TEXT,
    PRIMARY KEY (catalog_id, code)
);
CREATE TABLE IF NOT EXISTS optypes (
    code TEXT PRIMARY KEY, type_code TEXT, entry_option TEXT, name TEXT
);
"""


def db_path(home: Path) -> Path:
    return Path(home) / FILENAME


class StoreError(RuntimeError):
    """``catalogs.sqlite`` cannot be used (corrupt, not a database, newer schema)."""


def connect(home: Path) -> sqlite3.Connection:
    path = db_path(home)
    try:
        con = sqlite3.connect(path)
        con.execute("PRAGMA foreign_keys = ON")
        con.executescript(_SCHEMA)
        con.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        version = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} 不是可用的目录库（{exc}）；请移走该文件后重新导入目录") from None
    if int(version) > SCHEMA_VERSION:
        con.close()
        raise StoreError(f"{path} 由更新版本的 dip-cds 创建（schema {version}），请升级")
    return con


def _dec(v: str | None) -> Decimal | None:
    return Decimal(v) if v not in (None, "") else None


def save_catalog(
    home: Path, catalog: Catalog, report: dict | None = None, make_default: bool = False
) -> None:
    """Store a catalog, replacing the same region + year; the first one imported becomes the default."""
    with closing(connect(home)) as con, con:
        con.execute("DELETE FROM catalogs WHERE region = ? AND year IS ?", (catalog.region, catalog.year))
        cur = con.execute(
            "INSERT INTO catalogs (region, name, version, year, effective_from, effective_to, region_avg_cost,"
            " source, imported_at, report) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                catalog.region, catalog.name, catalog.version, catalog.year,
                catalog.effective_from.isoformat() if catalog.effective_from else None,
                catalog.effective_to.isoformat() if catalog.effective_to else None,
                str(catalog.region_avg_cost) if catalog.region_avg_cost is not None else None,
                catalog.source, datetime.now(UTC).isoformat(timespec="seconds"),
                json.dumps(report, ensure_ascii=False) if report else None,
            ),
        )  # fmt: skip
        cid = cur.lastrowid
        con.executemany(
            "INSERT INTO groups VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [
                (
                    cid, g.code, g.type, g.dx_key, g.op_type, g.name,
                    json.dumps([list(s) for s in g.procedures], ensure_ascii=False) if g.procedures else None,
                    json.dumps(list(g.procedure_names), ensure_ascii=False) if g.procedure_names else None,
                    str(g.score), str(g.avg_cost) if g.avg_cost is not None else None,
                    g.avg_los, g.cv, g.case_count, int(g.primary_care),
                    json.dumps(dict(g.extra), ensure_ascii=False) if g.extra else None,
                )
                for g in catalog.groups
            ],
        )  # fmt: skip
        has_default = con.execute("SELECT 1 FROM meta WHERE key = 'default_region'").fetchone()
        if make_default or not has_default:
            con.execute("INSERT OR REPLACE INTO meta VALUES ('default_region', ?)", (catalog.region,))


def _group(row: tuple) -> Group:
    code, gtype, dx_key, op_type, name, procs, pnames, score, avg_cost, avg_los, cv, count, primary, extra = (
        row
    )
    slots_codes = tuple(tuple(s) for s in json.loads(procs)) if procs else ()
    return Group(
        code=code,
        type=gtype,
        dx_key=dx_key,
        score=Decimal(score),
        name=name or "",
        slots=tuple(frozenset(c.upper() for c in s) for s in slots_codes),
        procedures=slots_codes,
        procedure_names=tuple(json.loads(pnames)) if pnames else (),
        op_type=op_type,
        avg_cost=_dec(avg_cost),
        avg_los=avg_los,
        cv=cv,
        case_count=count,
        primary_care=bool(primary),
        extra=tuple(json.loads(extra).items()) if extra else (),
    )


def load_stored_catalogs(home: Path) -> tuple[list[Catalog], str | None]:
    """All stored catalogs and the default region ([] when the store does not exist)."""
    path = db_path(home)
    if not path.is_file():
        return [], None
    with closing(connect(home)) as con:
        meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
        out = []
        for cid, region, name, version, year, ef, et, avg, source in con.execute(
            "SELECT id, region, name, version, year, effective_from, effective_to, region_avg_cost, source"
            " FROM catalogs ORDER BY id"
        ).fetchall():
            rows = con.execute(
                "SELECT code, type, dx_key, op_type, name, procedures, procedure_names, score, avg_cost, avg_los,"
                " cv, case_count, primary_care, extra FROM groups WHERE catalog_id = ?",
                (cid,),
            ).fetchall()
            out.append(
                Catalog(
                    region=region,
                    name=name,
                    groups=tuple(_group(r) for r in rows),
                    version=version or "",
                    year=year,
                    effective_from=date.fromisoformat(ef) if ef else None,
                    effective_to=date.fromisoformat(et) if et else None,
                    region_avg_cost=_dec(avg),
                    source=source or "",
                    home=Path(home),
                )  # fmt: skip
            )
    return out, meta.get("default_region")


def save_optypes(home: Path, entries: list[OpTypeEntry], source: str) -> None:
    """Replace the procedure-type table."""
    with closing(connect(home)) as con, con:
        con.execute("DELETE FROM optypes")
        con.executemany(
            "INSERT OR REPLACE INTO optypes VALUES (?,?,?,?)",
            [(e.code, e.type_code, e.entry_option, e.name) for e in entries],
        )
        con.execute("INSERT OR REPLACE INTO meta VALUES ('optypes_source', ?)", (source,))


def load_optypes(home: Path) -> tuple[dict[str, OpTypeEntry], str | None]:
    path = db_path(home)
    if not path.is_file():
        return {}, None
    with closing(connect(home)) as con:
        rows = con.execute("SELECT code, type_code, entry_option, name FROM optypes").fetchall()
        src = con.execute("SELECT value FROM meta WHERE key = 'optypes_source'").fetchone()
    return {r[0].upper(): OpTypeEntry(*r) for r in rows}, (src[0] if src else None)


def catalog_report(home: Path, region: str, year: int | None = None) -> dict | None:
    with closing(connect(home)) as con:
        row = con.execute(
            "SELECT report FROM catalogs WHERE region = ? AND (? IS NULL OR year = ?) ORDER BY year DESC",
            (region, year, year),
        ).fetchone()
    return json.loads(row[0]) if row and row[0] else None
