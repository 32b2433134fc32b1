"""``dip-cds data import-rules FILE|DIR…``: read rule files, validate, store, report.

Each file is one rule set and is imported on its own, atomically: a file with an unknown layout (or
that would clash with another active rule set) is rejected with the reason and nothing of it is
stored; the others still import. Within a file, bad rows are rejected with their line and reason.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from yb_audit import store
from yb_audit.local_rules import read_local_rules
from yb_audit.tables import TABLE_SUFFIXES, TableError, read_tables
from yb_audit.workbooks import LayoutError, ParsedRuleSet, parse_rule_tables

RULE_SUFFIXES = (*TABLE_SUFFIXES, ".toml")


@dataclass
class FileReport:
    path: str
    ok: bool
    name: str = ""
    batch: str = ""
    version: int = 0
    unchanged: bool = False
    layout: str = ""
    kinds: list[str] = field(default_factory=list)
    rules: int = 0
    rows: int = 0
    codes: int = 0
    rejects: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str = ""

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def rule_files(paths: list[Path]) -> tuple[list[Path], list[str]]:
    """The rule files named or inside the directories named (sorted); and what was skipped."""
    files: list[Path] = []
    skipped: list[str] = []
    for path in paths:
        if path.is_dir():
            for child in sorted(path.iterdir()):
                if (
                    child.is_file()
                    and child.suffix.lower() in RULE_SUFFIXES
                    and not child.name.startswith(("~$", "."))
                ):
                    files.append(child)
                elif child.is_file():
                    skipped.append(f"{child}: 不是规则文件，已跳过")
        else:
            files.append(path)
    return files, skipped


def parse_file(path: Path, prefix: str | None = None) -> ParsedRuleSet:
    """Parse one rule file (raises ``LayoutError`` / ``TableError`` / ``OSError``)."""
    if path.suffix.lower() == ".toml":
        return read_local_rules(path)
    return parse_rule_tables(read_tables(path), path.stem, path.name, prefix)


def import_file(home: Path, path: Path, prefix: str | None = None) -> FileReport:
    report = FileReport(str(path), ok=False)
    try:
        raw = path.read_bytes()
        parsed = parse_file(path, prefix)
        outcome = store.save(home, parsed, path.name, hashlib.sha256(raw).hexdigest())
    except (LayoutError, TableError, store.RuleStoreError) as exc:
        report.error = str(exc)
        return report
    except OSError as exc:
        report.error = f"无法读取文件：{exc}"
        return report
    report.ok = True
    report.name, report.batch, report.layout = parsed.name, parsed.batch, parsed.layout
    report.version, report.unchanged = outcome.version, outcome.unchanged
    report.kinds, report.rules, report.rows, report.codes = (
        parsed.kinds(),
        len(parsed.rules),
        parsed.rows,
        parsed.codes,
    )
    report.rejects = [str(r) for r in parsed.rejects]
    report.notes = list(parsed.notes)
    return report


def import_paths(
    home: Path, paths: list[Path], prefix: str | None = None
) -> tuple[list[FileReport], list[str]]:
    files, skipped = rule_files(paths)
    return [import_file(home, f, prefix) for f in files], skipped
