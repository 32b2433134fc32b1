"""Read published terminology tables (TSV, CSV, XLSX) into checked rows plus per-row rejects.

A national table is 10–40 thousand rows typed by people; one broken row must never cost the other
thirty thousand, so every problem becomes a :class:`Reject` with the file's line number and a
reason, and the rest of the file is imported. Which table a file holds (code list or map,
diagnoses or procedures) is recognised from its headers — the published Chinese ones and common
variants — and, for bare ``code/name`` files, from the codes themselves.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import cache
from itertools import islice
from pathlib import Path

from cds_service.tables import (
    HeaderNotFound,
    Row,
    Table,
    TableError,
    TableSpec,
    cell_text,
    header_key,
    open_table,
    raw_rows,
)
from terminology.normalize import normalize_diagnosis, normalize_procedure
from terminology.structure import TABLES

__all__ = [
    "KINDS",
    "Reject",
    "ParsedTable",
    "TableFormatError",
    "read_table",
    "pinyin_initials",
]

#: dx = 医保版 ICD-10 code list, px = 医保版 ICD-9-CM-3 list, *-map = 国临版 → 医保版 maps.
KINDS = ("dx", "px", "dx-map", "px-map")
KIND_LABELS = {
    "dx": "医保版 ICD-10 疾病诊断编码表",
    "px": "医保版 ICD-9-CM-3 手术操作编码表",
    "dx-map": "国临版 → 医保版 疾病诊断映射表",
    "px-map": "国临版 → 医保版 手术操作映射表",
}
MAX_NAME_LENGTH = 300
_HEADER_SCAN_ROWS = 10
_DX_SHAPE = re.compile(r"^[A-Za-zＡ-Ｚａ-ｚ]\s*[0-9０-９]")
_PX_SHAPE = re.compile(r"^[0-9０-９]{2}")


class TableFormatError(ValueError):
    """The file as a whole cannot be read as a terminology table (wrong format, unknown headers)."""


@dataclass(frozen=True, slots=True)
class Reject:
    line: int
    reason: str
    values: tuple[str, ...] = ()


@dataclass
class ParsedTable:
    """Accepted rows of one file. Code lists: (code, name, initials); maps: (key, source_code,
    source_name, target_code, target_name)."""

    kind: str
    source: str
    header: tuple[str, ...]
    rows: list[tuple[str, ...]] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    normalised: int = 0
    blank_lines: int = 0
    sheet: str | None = None

    @property
    def label(self) -> str:
        return KIND_LABELS[self.kind]


HEADERS = TABLES / "table_headers.toml"
_MAP_COLUMNS = frozenset({"source_code", "target_code"})
_LIST_COLUMNS = frozenset({"code", "name"})
_OPTYPE_HEADERS = ("typecode", "type", "entryoption")


@cache
def _spec() -> TableSpec:
    return TableSpec.from_toml(HEADERS, "terminology")


def _is_header(columns) -> bool:
    return _MAP_COLUMNS <= columns.keys() or _LIST_COLUMNS <= columns.keys()


def _numeric(value: object) -> bool:
    """An Excel cell stored as a number: ``47.0100`` typed into a number cell reads back as 47.01."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numeric_reason(raw: str) -> str:
    return f"Excel 把编码 {raw} 存成了数字，末尾的 0 可能已丢失：请把编码列设为文本格式后重新导出"


def _kind_hint_from_text(text: str) -> str | None:
    key = header_key(text)
    if any(t in key for t in ("手术", "操作", "icd9", "cm3", "procedure")):
        return "px"
    if any(t in key for t in ("疾病", "诊断", "icd10", "diagnos")):
        return "dx"
    return None


def _kind_from_codes(codes: list[str]) -> str | None:
    dx = sum(1 for c in codes if _DX_SHAPE.match(c))
    px = sum(1 for c in codes if _PX_SHAPE.match(c))
    if dx == px == 0:
        return None
    return "dx" if dx > px else "px"


# --- pinyin -------------------------------------------------------------------------------------
def pinyin_initials(name: str) -> str:
    """Upper-case pinyin initials of a name, Latin letters and digits kept (``HIV感染`` → ``HIVGR``);
    when the name has such non-Chinese parts, a second variant of the Chinese initials only follows
    after a space (``受压区Ⅳ期压疮`` → ``SYQIVQYC SYQQYC``), because users type either.

    Computed once at import so loading the terminology never touches pypinyin.
    """
    from pypinyin import Style, lazy_pinyin

    text = unicodedata.normalize("NFKC", name)
    pieces = lazy_pinyin(text, style=Style.FIRST_LETTER, errors="default")
    full = "".join(c for c in "".join(pieces).upper() if c.isascii() and c.isalnum())
    chinese_only = "".join(
        p[0].upper() for p, ch in zip(pieces, _chinese_segments(text, pieces), strict=False) if ch and p
    )
    return full if chinese_only in ("", full) else f"{full} {chinese_only}"


def _chinese_segments(text: str, pieces: list[str]) -> list[bool]:
    """For each lazy_pinyin piece, whether it came from a Chinese character (one piece per hanzi)."""
    flags, pos = [], 0
    for piece in pieces:
        ch = text[pos : pos + 1]
        if ch and ("\u3400" <= ch <= "\u9fff" or "\U00020000" <= ch <= "\U0002ebef"):
            flags.append(True)
            pos += 1
        else:
            flags.append(False)
            pos += len(piece)
    return flags


# --- reading ------------------------------------------------------------------------------------
def read_table(path: str | Path, kind: str | None = None) -> ParsedTable:
    """Parse one file; raise :class:`TableFormatError` only when the whole file is unusable."""
    path = Path(path)
    if kind is not None and kind not in KINDS:
        raise TableFormatError(f"未知的表类型 {kind!r}（可选：{', '.join(KINDS)}）")
    try:
        try:
            table = open_table(path, _spec(), accept=_is_header, header_within=_HEADER_SCAN_ROWS)
        except HeaderNotFound:
            table = _headerless(path)
    except TableError as exc:
        raise TableFormatError(str(exc).removeprefix(f"{path.name}：")) from None
    with table:
        return _parse(path, table, kind)


def _headerless(path: Path) -> Table:
    """A bare code/name file without a header row: accepted only when its first cells are codes."""
    first_rows = raw_rows(path)
    try:
        head = [[cell_text(c) for c in cells] for _line, cells in islice(first_rows, _HEADER_SCAN_ROWS)]
    finally:
        first_rows.close()  # a workbook stays open until its row generator is closed
    rows = [cells for cells in head if any(cells)]
    if rows and _kind_from_codes([c[0] for c in rows if c[0]]) and all(len(c) >= 2 for c in rows):
        return open_table(path, _spec(), accept=lambda _columns: False, headerless={"code": 0, "name": 1})
    first = rows[0] if rows else []
    if any(header_key(c) in _OPTYPE_HEADERS for c in first):
        raise TableFormatError(_OPTYPES_MESSAGE)
    raise TableFormatError(
        f"无法识别表头：{first[:6]}（需要 编码/名称 两列，或 国临版/医保版 编码与名称四列）"
    )


_OPTYPES_MESSAGE = "这是手术操作类型表（SS/ZLXCZ/ZDXCZ），不是编码表：请用 DIP 目录的导入命令导入"


def _parse(path: Path, table: Table, kind: str | None) -> ParsedTable:
    if any(header_key(c) in ("typecode", "entryoption") for c in table.header):
        raise TableFormatError(_OPTYPES_MESSAGE)
    is_map = _MAP_COLUMNS <= table.columns.keys()
    table.required = _MAP_COLUMNS if is_map else _LIST_COLUMNS
    rows = list(table)
    detected_kind = kind
    if detected_kind is None:
        hint = _kind_hint_from_text(" ".join(table.header) + " " + path.name)
        if hint is None:
            hint = _kind_from_codes([r.text("source_code" if is_map else "code") for r in rows[:200]])
        if hint is None:
            raise TableFormatError("无法判断是诊断还是手术操作编码：请用 --kind 指定")
        detected_kind = f"{hint}-map" if is_map else hint
    elif detected_kind.endswith("-map") != is_map:
        raise TableFormatError(f"表头与指定类型 {kind} 不符：{list(table.header)[:6]}")

    parsed = ParsedTable(detected_kind, str(path), table.header, sheet=table.sheet)
    if is_map:
        _collect_map(parsed, rows)
    else:
        _collect_codes(parsed, rows)
    parsed.rejects.extend(Reject(p.line, p.message) for p in table.problems)
    parsed.rejects.sort(key=lambda r: r.line)
    parsed.blank_lines = table.blank_lines
    return parsed


def _normalizer(kind: str):
    return normalize_diagnosis if kind.startswith("dx") else normalize_procedure


def _values(row: Row) -> tuple[str, ...]:
    return tuple(cell_text(c) for c in row.cells[:6])


def _collect_codes(table: ParsedTable, rows: list[Row]) -> None:
    normalize = _normalizer(table.kind)
    seen: dict[str, int] = {}
    for row in rows:
        line = row.line
        raw_code, name = row.text("code"), unicodedata.normalize("NFC", row.text("name"))
        if _numeric(row["code"]):
            table.rejects.append(Reject(line, _numeric_reason(raw_code), _values(row)))
            continue
        result = normalize(raw_code)
        if not result.ok or result.code is None:
            table.rejects.append(Reject(line, f"编码格式错误：{raw_code[:40]!r}", _values(row)))
            continue
        if result.asterisk and not result.dagger:
            table.rejects.append(
                Reject(line, f"单独的星号编码不能作为编码表条目：{raw_code!r}", _values(row))
            )
            continue
        if len(name) > MAX_NAME_LENGTH:
            table.rejects.append(Reject(line, f"名称过长（{len(name)} 字）：{result.code}", _values(row)))
            continue
        if result.code in seen:
            table.rejects.append(
                Reject(line, f"重复编码 {result.code}（保留第 {seen[result.code]} 行）", _values(row))
            )
            continue
        if result.changes:
            table.normalised += 1
        seen[result.code] = line
        table.rows.append((result.code, name, pinyin_initials(name)))


def _collect_map(table: ParsedTable, rows: list[Row]) -> None:
    normalize = _normalizer(table.kind)
    seen: dict[str, tuple[int, str]] = {}
    for row in rows:
        line = row.line
        src_raw, tgt_raw = row.text("source_code"), row.text("target_code")
        numeric = next((row.text(c) for c in ("source_code", "target_code") if _numeric(row[c])), None)
        if numeric is not None:
            table.rejects.append(Reject(line, _numeric_reason(numeric), _values(row)))
            continue
        src, tgt = normalize(src_raw), normalize(tgt_raw)
        if not src.ok or src.code is None:
            table.rejects.append(Reject(line, f"国临版编码格式错误：{src_raw[:40]!r}", _values(row)))
            continue
        if not tgt.ok or tgt.code is None:
            table.rejects.append(Reject(line, f"医保版编码格式错误：{tgt_raw[:40]!r}", _values(row)))
            continue
        src_name = unicodedata.normalize("NFC", row.text("source_name"))
        tgt_name = unicodedata.normalize("NFC", row.text("target_name"))
        if src.code in seen:
            first_line, first_target = seen[src.code]
            why = "重复" if first_target == tgt.code else f"冲突（第 {first_line} 行映射到 {first_target}）"
            table.rejects.append(
                Reject(line, f"国临版编码 {src.code} {why}，保留第 {first_line} 行", _values(row))
            )
            continue
        if src.changes or tgt.changes:
            table.normalised += 1
        seen[src.code] = (line, tgt.code)
        table.rows.append(
            (src.code, src_raw, src_name[:MAX_NAME_LENGTH], tgt.code, tgt_name[:MAX_NAME_LENGTH])
        )
