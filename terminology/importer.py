"""Read published terminology tables (TSV, CSV, XLSX) into checked rows plus per-row rejects.

A national table is 10–40 thousand rows typed by people; one broken row must never cost the other
thirty thousand, so every problem becomes a :class:`Reject` with the file's line number and a
reason, and the rest of the file is imported. Which table a file holds (code list or map,
diagnoses or procedures) is recognised from its headers — the published Chinese ones and common
variants — and, for bare ``code/name`` files, from the codes themselves.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from terminology.normalize import normalize_diagnosis, normalize_procedure
from terminology.textfile import decode_table_text

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


# --- cells --------------------------------------------------------------------------------------
class _NumericCell(str):
    """An Excel cell stored as a number: ``47.0100`` typed into a number cell reads back as 47.01."""


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return _NumericCell(str(value))
    return str(value).strip()


def _numeric_reason(raw: str) -> str:
    return f"Excel 把编码 {raw} 存成了数字，末尾的 0 可能已丢失：请把编码列设为文本格式后重新导出"


def _header_key(text: str) -> str:
    return re.sub(r"[\s_\-()（）]", "", unicodedata.normalize("NFKC", text)).lower()


def _iter_text_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    text = decode_table_text(path.read_bytes())
    if text is None:
        raise TableFormatError("无法识别文件编码（既不是 UTF-8 也不是 GB18030）")
    first = text.split("\n", 1)[0]
    delimiter = "\t" if path.suffix.lower() == ".tsv" or first.count("\t") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        for row in reader:
            yield reader.line_num, [c.strip() for c in row]
    except csv.Error as exc:
        raise TableFormatError(f"第 {reader.line_num} 行无法解析：{exc}") from exc


def _iter_xlsx_rows(path: Path, sheet_holder: list[str]) -> Iterator[tuple[int, list[str]]]:
    import openpyxl

    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for broken files
        raise TableFormatError(f"无法打开 Excel 文件：{exc}") from exc
    try:
        # the first sheet whose first rows contain a recognisable header
        chosen = wb.worksheets[0]
        for ws in wb.worksheets:
            head = [
                [_cell(v) for v in row] for row in ws.iter_rows(max_row=_HEADER_SCAN_ROWS, values_only=True)
            ]
            if any(_roles(r) for r in head):
                chosen = ws
                break
        sheet_holder.append(chosen.title)
        for line, row in enumerate(chosen.iter_rows(values_only=True), start=1):
            yield line, [_cell(v) for v in row]
    finally:
        wb.close()


# --- headers ------------------------------------------------------------------------------------
def _is_code_header(key: str) -> bool:
    return key in ("code", "icd") or key.endswith(("编码", "代码", "code", "编号"))


def _is_name_header(key: str) -> bool:
    return key in ("name", "display", "描述") or key.endswith(("名称", "name", "display"))


def _side(key: str) -> str | None:
    if any(t in key for t in ("国临", "临床", "source", "clinical", "gl")):
        return "source"
    if any(t in key for t in ("医保", "target", "yb", "nhsa")):
        return "target"
    return None


def _roles(cells: list[str]) -> dict[str, int]:
    """Column roles from a header row: code/name, or source_/target_ code/name for maps."""
    keys = [_header_key(c) for c in cells]
    roles: dict[str, int] = {}
    for i, key in enumerate(keys):
        if not key:
            continue
        kind = "code" if _is_code_header(key) else "name" if _is_name_header(key) else None
        if kind is None:
            continue
        side = _side(key)
        role = f"{side}_{kind}" if side else kind
        roles.setdefault(role, i)
    if {"source_code", "target_code"} <= roles.keys():
        return roles
    if "code" in roles and "name" in roles:
        return {"code": roles["code"], "name": roles["name"]}
    return {}


def _kind_hint_from_text(text: str) -> str | None:
    key = _header_key(text)
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
    if not path.is_file():
        raise TableFormatError(f"文件不存在：{path}")
    suffix = path.suffix.lower()
    sheet_holder: list[str] = []
    if suffix in (".xlsx", ".xlsm"):
        rows_iter = _iter_xlsx_rows(path, sheet_holder)
    elif suffix in (".csv", ".tsv", ".txt"):
        rows_iter = _iter_text_rows(path)
    elif suffix == ".xls":
        raise TableFormatError("不支持旧版 .xls 文件，请在 Excel 中另存为 .xlsx 或 CSV")
    else:
        raise TableFormatError(f"不支持的文件类型 {suffix or '(无扩展名)'}：请使用 TSV、CSV 或 XLSX")

    buffered: list[tuple[int, list[str]]] = []
    roles: dict[str, int] = {}
    header: tuple[str, ...] = ()
    for line, cells in rows_iter:
        buffered.append((line, cells))
        found = _roles(cells)
        if found:
            roles, header = found, tuple(cells)
            buffered.clear()
            break
        if len(buffered) >= _HEADER_SCAN_ROWS:
            break
    if not roles:
        # headerless code/name file: accept only if the first cells look like codes
        sample = [cells[0] for _, cells in buffered if cells and cells[0]]
        if buffered and _kind_from_codes(sample) and all(len(c) >= 2 for _, c in buffered if any(c)):
            roles = {"code": 0, "name": 1}
        else:
            first = buffered[0][1] if buffered else []
            if any(_header_key(c) in ("typecode", "type", "entryoption") for c in first):
                raise TableFormatError(
                    "这是手术操作类型表（SS/ZLXCZ/ZDXCZ），不是编码表：请用 DIP 目录的导入命令导入"
                )
            raise TableFormatError(
                f"无法识别表头：{first[:6]}（需要 编码/名称 两列，或 国临版/医保版 编码与名称四列）"
            )

    if any(_header_key(c) in ("typecode", "entryoption") for c in header):
        raise TableFormatError(
            "这是手术操作类型表（SS/ZLXCZ/ZDXCZ），不是编码表：请用 DIP 目录的导入命令导入"
        )
    is_map = "source_code" in roles
    detected_kind = kind
    if detected_kind is None:
        hint = _kind_hint_from_text(" ".join(header) + " " + path.name)
        if hint is None:
            remaining = list(rows_iter) if not buffered else buffered
            if not buffered:
                buffered = remaining
            col = roles.get("source_code", roles.get("code", 0))
            hint = _kind_from_codes([c[col] for _, c in buffered[:200] if len(c) > col])
        if hint is None:
            raise TableFormatError("无法判断是诊断还是手术操作编码：请用 --kind 指定")
        detected_kind = f"{hint}-map" if is_map else hint
    elif detected_kind.endswith("-map") != is_map:
        raise TableFormatError(f"表头与指定类型 {kind} 不符：{list(header)[:6]}")

    table = ParsedTable(detected_kind, str(path), header, sheet=sheet_holder[0] if sheet_holder else None)

    def all_rows() -> Iterator[tuple[int, list[str]]]:
        yield from buffered
        yield from rows_iter

    if is_map:
        _collect_map(table, roles, all_rows())
    else:
        _collect_codes(table, roles, all_rows())
    return table


def _normalizer(kind: str):
    return normalize_diagnosis if kind.startswith("dx") else normalize_procedure


def _collect_codes(table: ParsedTable, roles: dict[str, int], rows: Iterator[tuple[int, list[str]]]) -> None:
    normalize = _normalizer(table.kind)
    ci, ni = roles["code"], roles["name"]
    seen: dict[str, int] = {}
    for line, cells in rows:
        if not any(cells):
            table.blank_lines += 1
            continue
        values = tuple(cells[:6])
        if len(cells) <= max(ci, ni):
            table.rejects.append(Reject(line, "列数不足（缺少编码或名称）", values))
            continue
        raw_code, name = cells[ci], unicodedata.normalize("NFC", cells[ni])
        if isinstance(raw_code, _NumericCell):
            table.rejects.append(Reject(line, _numeric_reason(raw_code), values))
            continue
        result = normalize(raw_code)
        if not result.ok or result.code is None:
            table.rejects.append(Reject(line, f"编码格式错误：{raw_code[:40]!r}", values))
            continue
        if result.asterisk and not result.dagger:
            table.rejects.append(Reject(line, f"单独的星号编码不能作为编码表条目：{raw_code!r}", values))
            continue
        if not name:
            table.rejects.append(Reject(line, f"名称为空：{result.code}", values))
            continue
        if len(name) > MAX_NAME_LENGTH:
            table.rejects.append(Reject(line, f"名称过长（{len(name)} 字）：{result.code}", values))
            continue
        if result.code in seen:
            table.rejects.append(
                Reject(line, f"重复编码 {result.code}（保留第 {seen[result.code]} 行）", values)
            )
            continue
        if result.changes:
            table.normalised += 1
        seen[result.code] = line
        table.rows.append((result.code, name, pinyin_initials(name)))


def _collect_map(table: ParsedTable, roles: dict[str, int], rows: Iterator[tuple[int, list[str]]]) -> None:
    normalize = _normalizer(table.kind)
    si, ti = roles["source_code"], roles["target_code"]
    sn, tn = roles.get("source_name"), roles.get("target_name")
    seen: dict[str, tuple[int, str]] = {}
    for line, cells in rows:
        if not any(cells):
            table.blank_lines += 1
            continue
        values = tuple(cells[:6])
        needed = max(i for i in (si, ti, sn, tn) if i is not None)
        if len(cells) <= needed:
            cells = cells + [""] * (needed + 1 - len(cells))
        src_raw, tgt_raw = cells[si], cells[ti]
        numeric = next((c for c in (src_raw, tgt_raw) if isinstance(c, _NumericCell)), None)
        if numeric is not None:
            table.rejects.append(Reject(line, _numeric_reason(numeric), values))
            continue
        src, tgt = normalize(src_raw), normalize(tgt_raw)
        if not src.ok or src.code is None:
            table.rejects.append(Reject(line, f"国临版编码格式错误：{src_raw[:40]!r}", values))
            continue
        if not tgt.ok or tgt.code is None:
            reason = "医保版目标编码为空" if not tgt_raw else f"医保版编码格式错误：{tgt_raw[:40]!r}"
            table.rejects.append(Reject(line, reason, values))
            continue
        src_name = unicodedata.normalize("NFC", cells[sn]) if sn is not None else ""
        tgt_name = unicodedata.normalize("NFC", cells[tn]) if tn is not None else ""
        if src.code in seen:
            first_line, first_target = seen[src.code]
            why = "重复" if first_target == tgt.code else f"冲突（第 {first_line} 行映射到 {first_target}）"
            table.rejects.append(Reject(line, f"国临版编码 {src.code} {why}，保留第 {first_line} 行", values))
            continue
        if src.changes or tgt.changes:
            table.normalised += 1
        seen[src.code] = (line, tgt.code)
        table.rows.append(
            (src.code, src_raw, src_name[:MAX_NAME_LENGTH], tgt.code, tgt_name[:MAX_NAME_LENGTH])
        )
