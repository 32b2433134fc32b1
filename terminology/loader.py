"""Import files into the store, and load the active terminology fast at service start.

Loading reads plain rows from SQLite (names and pinyin initials were prepared at import) into lists
and dicts; no pypinyin, no re-normalisation. When nothing has been imported the built-in sample
under ``terminology/sample`` is imported into an in-memory store — the same code path, so the
sample proves the importer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from terminology.importer import KIND_LABELS, ParsedTable, TableFormatError, read_table
from terminology.model import CodeMap, CodeTable, Terminology
from terminology.store import DB_NAME, TableVersion, TerminologyStore
from terminology.systems import GL_ICD9CM3, GL_ICD10, YB_ICD9CM3, YB_ICD10

__all__ = ["SAMPLE_DIR", "SAMPLE_LABEL", "FileReport", "import_files", "load_terminology"]

SAMPLE_DIR = Path(__file__).with_name("sample")
SAMPLE_LABEL = "内置示例术语（SAMPLE：仅含演示用的几百个真实编码，请导入完整的医保版编码表）"
DEFAULT_VERSION = "2.0"


@dataclass
class FileReport:
    """What happened to one file; ``error`` set when the whole file could not be read."""

    path: str
    kind: str | None = None
    version: str | None = None
    accepted: int = 0
    normalised: int = 0
    rejects: list = field(default_factory=list)
    error: str | None = None
    sheet: str | None = None
    active: bool = False

    @property
    def label(self) -> str:
        return KIND_LABELS.get(self.kind or "", "未识别")


def import_files(
    home: str | Path | None,
    paths: Sequence[str | Path],
    version: str = DEFAULT_VERSION,
    kind: str | None = None,
    activate: bool = True,
    store: TerminologyStore | None = None,
) -> list[FileReport]:
    """Import each file; a broken file is reported and skipped, the others still import."""
    own_store = store is None
    if store is None:
        store = TerminologyStore.in_home(home)  # type: ignore[arg-type]
    reports = []
    try:
        for path in paths:
            report = FileReport(str(path), version=version)
            try:
                table: ParsedTable = read_table(path, kind)
            except TableFormatError as exc:
                report.error = str(exc)
                reports.append(report)
                continue
            saved: TableVersion = store.save(table, version, activate=activate)
            report.kind, report.accepted = table.kind, len(table.rows)
            report.normalised, report.rejects, report.sheet = table.normalised, table.rejects, table.sheet
            report.active = saved.active
            reports.append(report)
    finally:
        if own_store:
            store.close()
    return reports


def _code_table(store: TerminologyStore, kind: str, version: str) -> CodeTable:
    rows = store.codes(kind, version)
    system = YB_ICD10 if kind == "dx" else YB_ICD9CM3
    table = CodeTable(kind, version, system, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
    table.search_index.use_postings(store.postings(kind, version))
    table.search_index.prepare()  # build anything missing now so the first request does not pay for it
    return table


def _code_map(store: TerminologyStore, kind: str, version: str) -> CodeMap:
    source = GL_ICD10 if kind == "dx-map" else GL_ICD9CM3
    entries = {r[0]: (r[1], r[2], r[3], r[4]) for r in store.map_rows(kind, version)}
    return CodeMap(kind[:2], version, source, entries)


_sample_cache: dict[str, TerminologyStore] = {}


def _sample_store() -> TerminologyStore:
    """The sample imported once per process into memory."""
    if "store" not in _sample_cache:
        store = TerminologyStore(":memory:")
        files = sorted(p for p in SAMPLE_DIR.iterdir() if p.suffix in (".tsv", ".csv"))
        import_files(None, files, version=DEFAULT_VERSION, store=store)
        _sample_cache["store"] = store
    return _sample_cache["store"]


def load_terminology(home: str | Path | None = None) -> Terminology:
    """The active imported terminology in ``home``; the built-in sample for what was not imported."""
    store = None
    problem = None
    if home is not None and (Path(home) / DB_NAME).exists():
        try:
            store = TerminologyStore.in_home(home)
            if store.is_empty():
                store.close()
                store = None
        except sqlite3.DatabaseError as exc:  # a damaged file must not take the service down
            store, problem = None, f"术语库 {DB_NAME} 无法读取（{exc}），请重新导入"
    parts: dict[str, object] = {}
    from_sample: list[str] = []
    for kind in ("dx", "px", "dx-map", "px-map"):
        source, version = store, store.active_version(kind) if store else None
        if source is None or version is None:
            source = _sample_store()
            version = source.active_version(kind)
            from_sample.append(kind)
            if version is None:  # the package's own sample: a broken install, not bad data
                raise RuntimeError(f"the built-in terminology sample has no {kind} table")
        if kind.endswith("-map"):
            parts[kind] = _code_map(source, kind, version)
        else:
            parts[kind] = _code_table(source, kind, version)
    if len(from_sample) == 4:
        label, is_sample = (f"{problem}；{SAMPLE_LABEL}" if problem else SAMPLE_LABEL), True
    elif from_sample:
        missing = "、".join(KIND_LABELS[k] for k in from_sample)
        label, is_sample = f"已导入术语（未导入：{missing}，这些部分使用内置示例）", True
    else:
        label, is_sample = (
            f"医保版 ICD-10 {parts['dx'].version} / ICD-9-CM-3 {parts['px'].version}（已导入）",  # type: ignore[attr-defined]
            False,
        )
    return Terminology(
        parts["dx"],  # type: ignore[arg-type]
        parts["px"],  # type: ignore[arg-type]
        parts["dx-map"],  # type: ignore[arg-type]
        parts["px-map"],  # type: ignore[arg-type]
        is_sample=is_sample,
        label=label,
        store=store if store is not None else _sample_store(),
        home=Path(home) if home is not None else None,
    )
