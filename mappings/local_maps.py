"""Hospital-supplied maps from local HIS dictionary codes to 医保版 codes.

A hospital drops CSV files into ``<data home>/local_maps/`` (or passes them explicitly); each row
is ``source system, source code, source name, target code``. The file name (without extension)
names the map in the resolution path, e.g. ``local-map:HIS1``. Bad rows are reported with line
numbers and skipped; a file never aborts the others.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from terminology.textfile import decode_table_text

__all__ = ["LocalEntry", "LocalMaps", "load_local_maps", "local_maps_for_home", "LOCAL_MAPS_DIR"]

LOCAL_MAPS_DIR = "local_maps"
_MAX_FIELD = 500

_HEADERS = {
    "source_system": ("sourcesystem", "system", "源系统", "来源系统", "编码系统", "本地系统"),
    "source_code": ("sourcecode", "code", "源编码", "本地编码", "院内编码", "his编码", "来源编码"),
    "source_name": ("sourcename", "name", "display", "源名称", "本地名称", "院内名称", "his名称"),
    "target_code": ("targetcode", "target", "医保编码", "医保版编码", "目标编码", "医保版2.0编码"),
}


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
        name = path.stem
        try:
            content = decode_table_text(path.read_bytes())
        except OSError as exc:
            self.rejects.append((str(path), 0, f"无法读取文件：{exc}"))
            return
        if content is None:
            self.rejects.append((str(path), 0, "无法识别文件编码（既不是 UTF-8 也不是 GB18030）"))
            return
        reader = csv.reader(io.StringIO(content, newline=""))
        try:
            header = next(reader)
        except (StopIteration, csv.Error):
            self.rejects.append((str(path), 1, "文件为空或不是 CSV"))
            return
        keys = [
            unicodedata.normalize("NFKC", h).strip().lower().replace(" ", "").replace("_", "") for h in header
        ]
        cols: dict[str, int] = {}
        for role, names in _HEADERS.items():
            for i, k in enumerate(keys):
                if k in names and role not in cols:
                    cols[role] = i
        if not {"source_code", "target_code"} <= cols.keys() or "source_system" not in cols:
            # headerless file in the documented column order
            cols = {"source_system": 0, "source_code": 1, "source_name": 2, "target_code": 3}
            rows = [(1, header)]
        else:
            rows = []
        try:
            rows.extend((reader.line_num, row) for row in reader)
        except csv.Error as exc:
            self.rejects.append((str(path), reader.line_num, f"CSV 解析错误：{exc}"))
        for line, row in rows:
            if not any(c.strip() for c in row):
                continue
            if len(row) <= max(cols.values()):
                self.rejects.append((str(path), line, "列数不足"))
                continue
            system = row[cols["source_system"]].strip()
            code = row[cols["source_code"]].strip()
            target = row[cols["target_code"]].strip()
            label = row[cols["source_name"]].strip() if "source_name" in cols else ""
            if not system or not code or not target:
                self.rejects.append((str(path), line, "源系统、源编码或目标编码为空"))
                continue
            if max(len(system), len(code), len(target)) > _MAX_FIELD:
                self.rejects.append((str(path), line, "字段过长"))
                continue
            key = (_system_key(system), code)
            if key in self.entries:
                first = self.entries[key]
                self.rejects.append(
                    (str(path), line, f"重复的源编码 {code}（保留 {first.map_name} 第 {first.line} 行）")
                )
                continue
            self.entries[key] = LocalEntry(name, system, code, label[:_MAX_FIELD], target, line)
            self.systems.add(key[0])


def _system_key(system: str) -> str:
    return system.strip().split("|", 1)[0].rstrip("/").lower()


def load_local_maps(paths) -> LocalMaps:
    """Read CSV files (or every ``*.csv`` in a directory) into one :class:`LocalMaps`."""
    maps = LocalMaps()
    if paths is None:
        return maps
    if isinstance(paths, (str, Path)):
        paths = [paths]
    for p in paths:
        p = Path(p)
        if p.is_dir():
            for f in sorted(p.glob("*.csv")):
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
    files = sorted(folder.glob("*.csv")) if folder.is_dir() else []
    stamp = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files)
    cached = _home_cache.get(str(folder))
    if cached and cached[0] == stamp:
        return cached[1]
    maps = load_local_maps(files)
    _home_cache[str(folder)] = (stamp, maps)
    return maps
