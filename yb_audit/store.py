"""``<home>/rules.sqlite``: imported rule sets, versioned by name, one active version per name.

Every import of a rule set (a workbook, a hospital file) is one transaction: a new version is
written and activated, the previous one is kept inactive (``dip-cds data rules --activate`` brings
it back). A file identical to the active version is not stored again. When nothing was imported the
packaged sample rule set (``yb_audit/sample/rules.toml``) is used and labelled as sample.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from yb_audit.model import Rule, RuleSet, RuleSetInfo
from yb_audit.workbooks import ParsedRuleSet

DB_NAME = "rules.sqlite"
SAMPLE_FILE = Path(__file__).resolve().parent / "sample" / "rules.toml"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rulesets (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    batch TEXT NOT NULL,
    title TEXT NOT NULL,
    version INTEGER NOT NULL,
    active INTEGER NOT NULL DEFAULT 0,
    source_file TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    imported_at TEXT NOT NULL,
    layout TEXT NOT NULL,
    rules INTEGER NOT NULL,
    codes INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    rejects INTEGER NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    report TEXT NOT NULL DEFAULT '{}',
    UNIQUE (name, version)
);
CREATE TABLE IF NOT EXISTS rules (
    ruleset_id INTEGER NOT NULL REFERENCES rulesets(id),
    rule_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    name TEXT NOT NULL,
    params TEXT NOT NULL,
    text TEXT NOT NULL,
    severity TEXT NOT NULL,
    source TEXT NOT NULL,
    item_name TEXT NOT NULL,
    item_name2 TEXT NOT NULL,
    codes TEXT NOT NULL,
    codes2 TEXT NOT NULL,
    PRIMARY KEY (ruleset_id, rule_id)
);
"""


class RuleStoreError(ValueError):
    """An import that would leave the active rules inconsistent (nothing was written)."""


@dataclass(frozen=True)
class StoredVersion:
    name: str
    batch: str
    version: int
    active: bool
    rules: int
    codes: int
    rows: int
    rejects: int
    source_file: str
    imported_at: str
    note: str


@dataclass(frozen=True)
class ImportOutcome:
    name: str
    version: int
    unchanged: bool


def db_path(home: Path | str) -> Path:
    return Path(home) / DB_NAME


@contextmanager
def _connect(home: Path | str) -> Iterator[sqlite3.Connection]:
    Path(home).mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(db_path(home), timeout=30)) as con:
        con.executescript(_SCHEMA)
        yield con


def save(home: Path | str, parsed: ParsedRuleSet, source_file: str, sha256: str) -> ImportOutcome:
    """Store ``parsed`` as the new active version of its rule set, atomically."""
    with _connect(home) as con:
        con.execute("BEGIN IMMEDIATE")
        try:
            active = con.execute(
                "SELECT version, sha256 FROM rulesets WHERE name = ? AND active = 1", (parsed.name,)
            ).fetchone()
            if active and active[1] == sha256:
                con.execute("ROLLBACK")
                return ImportOutcome(parsed.name, active[0], True)
            ids = [r.rule_id for r in parsed.rules]
            clash = _clashing_ids(con, parsed.name, ids)
            if clash:
                raise RuleStoreError(
                    f"规则编号与已启用的规则集冲突：{'、'.join(f'{i}（{n}）' for i, n in clash[:10])}"
                )
            version = (
                con.execute(
                    "SELECT COALESCE(MAX(version), 0) FROM rulesets WHERE name = ?", (parsed.name,)
                ).fetchone()[0]
                + 1
            )
            con.execute("UPDATE rulesets SET active = 0 WHERE name = ?", (parsed.name,))
            cur = con.execute(
                "INSERT INTO rulesets (name, batch, title, version, active, source_file, sha256, imported_at, layout,"
                " rules, codes, rows, rejects, note, report) VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    parsed.name,
                    parsed.batch,
                    parsed.title,
                    version,
                    source_file,
                    sha256,
                    datetime.now(UTC).isoformat(timespec="seconds"),
                    parsed.layout,
                    len(parsed.rules),
                    parsed.codes,
                    parsed.rows,
                    len(parsed.rejects),
                    "\n".join(parsed.notes),
                    json.dumps({"rejects": [str(r) for r in parsed.rejects[:1000]]}, ensure_ascii=False),
                ),
            )
            ruleset_id = cur.lastrowid
            con.executemany(
                "INSERT INTO rules VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        ruleset_id,
                        r.rule_id,
                        r.kind,
                        r.subject,
                        r.name,
                        json.dumps(dict(r.params), ensure_ascii=False, sort_keys=True),
                        r.text,
                        r.severity,
                        r.source,
                        r.item_name,
                        r.item_name2,
                        " ".join(r.codes),
                        " ".join(r.codes2),
                    )
                    for r in parsed.rules
                ],
            )
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
    return ImportOutcome(parsed.name, version, False)


def _clashing_ids(con: sqlite3.Connection, name: str, ids: list[str]) -> list[tuple[str, str]]:
    con.execute("CREATE TEMP TABLE IF NOT EXISTS new_ids (rule_id TEXT PRIMARY KEY)")
    con.execute("DELETE FROM new_ids")
    con.executemany("INSERT OR IGNORE INTO new_ids VALUES (?)", [(i,) for i in ids])
    return con.execute(
        "SELECT r.rule_id, s.name FROM rules r JOIN rulesets s ON s.id = r.ruleset_id "
        "JOIN new_ids n ON n.rule_id = r.rule_id WHERE s.active = 1 AND s.name <> ? ORDER BY r.rule_id",
        (name,),
    ).fetchall()


def versions(home: Path | str) -> list[StoredVersion]:
    if not db_path(home).is_file():
        return []
    with _connect(home) as con:
        rows = con.execute(
            "SELECT name, batch, version, active, rules, codes, rows, rejects, source_file, imported_at, note "
            "FROM rulesets ORDER BY name, version"
        ).fetchall()
    return [StoredVersion(r[0], r[1], r[2], bool(r[3]), *r[4:]) for r in rows]


def activate(home: Path | str, name: str, version: int) -> None:
    with _connect(home) as con:
        con.execute("BEGIN IMMEDIATE")
        found = con.execute(
            "SELECT id FROM rulesets WHERE name = ? AND version = ?", (name, version)
        ).fetchone()
        if not found:
            con.execute("ROLLBACK")
            raise RuleStoreError(f"没有规则集「{name}」的第 {version} 版")
        ids = [r[0] for r in con.execute("SELECT rule_id FROM rules WHERE ruleset_id = ?", (found[0],))]
        clash = _clashing_ids(con, name, ids)
        if clash:
            con.execute("ROLLBACK")
            raise RuleStoreError(f"规则编号与已启用的规则集冲突：{'、'.join(i for i, _ in clash[:10])}")
        con.execute("UPDATE rulesets SET active = (version = ?) WHERE name = ?", (version, name))
        con.execute("COMMIT")


def deactivate(home: Path | str, name: str) -> int:
    """Stop using a rule set (its versions stay stored); returns how many were active."""
    with _connect(home) as con:
        cur = con.execute("UPDATE rulesets SET active = 0 WHERE name = ? AND active = 1", (name,))
        con.commit()
        return cur.rowcount


# ----------------------------------------------------------------------------- loading


def _rule(row: tuple[Any, ...]) -> Rule:
    (rule_id, kind, subject, name, params, text, severity, source, item_name, item_name2, codes, codes2) = (
        row[:12]
    )
    return Rule(
        rule_id=rule_id,
        kind=kind,
        batch=row[12],
        ruleset=row[13],
        name=name,
        subject=subject,
        codes=tuple(codes.split()),
        params=json.loads(params),
        text=text,
        severity=severity,
        codes2=tuple(codes2.split()),
        source=source,
        item_name=item_name,
        item_name2=item_name2,
    )


def load_stored(home: Path | str) -> RuleSet | None:
    """The active imported rules; None when nothing is imported (or everything is deactivated)."""
    if not db_path(home).is_file():
        return None
    with _connect(home) as con:
        sets = con.execute(
            "SELECT name, batch, version, rules, source_file, imported_at, note FROM rulesets WHERE active = 1 ORDER BY id"
        ).fetchall()
        if not sets:
            return None
        rows = con.execute(
            "SELECT r.rule_id, r.kind, r.subject, r.name, r.params, r.text, r.severity, r.source, r.item_name,"
            " r.item_name2, r.codes, r.codes2, s.batch, s.name FROM rules r JOIN rulesets s ON s.id = r.ruleset_id"
            " WHERE s.active = 1 ORDER BY s.id, r.rowid"
        ).fetchall()
    infos = [RuleSetInfo(s[0], s[1], s[2], s[3], s[4], s[5], False, s[6]) for s in sets]
    return RuleSet([_rule(r) for r in rows], infos)


def load_sample() -> RuleSet:
    from yb_audit.local_rules import parse_local_rules

    parsed = parse_local_rules(SAMPLE_FILE.read_text(encoding="utf-8"), SAMPLE_FILE.stem, "内置示例规则")
    info = RuleSetInfo(
        parsed.name, parsed.batch, 0, len(parsed.rules), "内置示例规则", "", True, "\n".join(parsed.notes)
    )
    return RuleSet(parsed.rules, [info])


_cache: dict[str, tuple[tuple[int, int] | None, RuleSet]] = {}
_lock = threading.Lock()


def load_rules(home: Path | str | None) -> RuleSet:
    """The active rules of the data home (the sample when none are imported), re-read only when
    ``rules.sqlite`` changed, so an import is picked up by a running service."""
    path = db_path(home) if home is not None else None
    try:
        stat = path.stat() if path is not None else None
        stamp = (stat.st_mtime_ns, stat.st_size) if stat else None
    except OSError:
        stamp = None
    key = str(path)
    with _lock:
        cached = _cache.get(key)
        if cached and cached[0] == stamp:
            return cached[1]
        rules = (load_stored(home) if home is not None and stamp is not None else None) or load_sample()
        _cache[key] = (stamp, rules)
        return rules
