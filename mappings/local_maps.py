"""Hospital-supplied maps from local HIS dictionary codes to 医保版 codes.

A hospital drops CSV or XLSX files into ``<data home>/local_maps/`` (or passes them explicitly);
each row is ``source system, source code, source name, target code`` (header spellings in
``local_map_headers.toml``; a file without a header row is read in that order). The file name
(without extension) names the map in the resolution path, e.g. ``local-map:HIS1``. Bad rows are
reported with line numbers and skipped; a file never aborts the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from cds_service.tables import Row, Table, TableError, TableSpec, open_table

__all__ = ["LocalEntry", "LocalMaps", "load_local_maps", "local_maps_for_home", "LOCAL_MAPS_DIR"]

LOCAL_MAPS_DIR = "local_maps"
_MAX_FIELD = 500

HEADERS = Path(__file__).with_name("local_map_headers.toml")
#: a file without a header row is read in the documented column order
DOCUMENTED_ORDER = {"source_system": 0, "source_code": 1, "source_name": 2, "target_code": 3}


@cache
def _spec() -> TableSpec:
    return TableSpec.from_toml(HEADERS, "local_map", required=("source_system", "source_code", "target_code"))


@dataclass(frozen=True, slots=True)
class LocalEntry:
    map_name: str
    source_system: str
    source_code: str
    source_name: str
    target_code: str
    line: int


@dataclass
class LocalMaps:
    """(source system, source code) → entry; plus the problems found while reading."""

    entries: dict[tuple[str, str], LocalEntry] = field(default_factory=dict)
    systems: set[str] = field(default_factory=set)
    rejects: list[tuple[str, int, str]] = field(default_factory=list)  # (file, line, reason)

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, system: str | None, code: str | None) -> LocalEntry | None:
        if not system or not code:
            return None
        return self.entries.get((_system_key(system), code.strip()))

    def knows_system(self, system: str | None) -> bool:
        return system is not None and system != "" and _system_key(system) in self.systems

    def add_file(self, path: str | Path) -> None:
        path = Path(path)
        try:
            table = open_table(path, _spec(), headerless=DOCUMENTED_ORDER)
        except TableError as exc:
            self.rejects.append((str(path), 0, str(exc)))
            return
        try:
            with table:
                for row in table:
                    self._add_row(path.stem, table, row)
        except TableError as exc:  # broken part-way (a CSV syntax error): the rows before it stay
            table.reject(0, str(exc))
        self.rejects.extend(
            (str(path), p.line, p.message) for p in sorted(table.problems, key=lambda p: p.line)
        )

    def _add_row(self, name: str, table: Table, row: Row) -> None:
        system, code = row.text("source_system"), row.text("source_code")
        target, label = row.text("target_code"), row.text("source_name")
        if max(len(system), len(code), len(target)) > _MAX_FIELD:
            table.reject(row, "字段过长")
            return
        key = (_system_key(system), code)
        if key in self.entries:
            first = self.entries[key]
            table.reject(row, f"重复的源编码 {code}（保留 {first.map_name} 第 {first.line} 行）")
            return
        self.entries[key] = LocalEntry(name, system, code, label[:_MAX_FIELD], target, row.line)
        self.systems.add(key[0])


def _map_files(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.suffix.lower() in (".csv", ".xlsx") and f.is_file())


def _system_key(system: str) -> str:
    return system.strip().split("|", 1)[0].rstrip("/").lower()


def load_local_maps(paths) -> LocalMaps:
    """Read map files (or every ``*.csv`` / ``*.xlsx`` in a directory) into one :class:`LocalMaps`."""
    maps = LocalMaps()
    if paths is None:
        return maps
    if isinstance(paths, (str, Path)):
        paths = [paths]
    for p in paths:
        p = Path(p)
        if p.is_dir():
            for f in _map_files(p):
                maps.add_file(f)
        else:
            maps.add_file(p)
    return maps


_home_cache: dict[str, tuple[tuple, LocalMaps]] = {}


def local_maps_for_home(home: str | Path | None) -> LocalMaps:
    """The maps in ``<home>/local_maps``, re-read only when a file changed."""
    if home is None:
        return LocalMaps()
    folder = Path(home) / LOCAL_MAPS_DIR
    files = _map_files(folder) if folder.is_dir() else []
    stamp = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files)
    cached = _home_cache.get(str(folder))
    if cached and cached[0] == stamp:
        return cached[1]
    maps = load_local_maps(files)
    _home_cache[str(folder)] = (stamp, maps)
    return maps
