"""Reading rule tables as published: every sheet of an XLSX workbook, or one CSV file, as rows of
text with their line numbers. The only module that touches openpyxl / csv for rules.

Cells become trimmed text with runs of white space collapsed; the bureau's wording is otherwise kept
as published (:func:`fold` gives the NFKC form used to match headers and values). Whole numbers
stored as numbers read as integers (``14`` not ``14.0``); item codes stored as numbers lose their
leading zeros, which :func:`code_text` restores.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from terminology.textfile import decode_table_text

TABLE_SUFFIXES = (".xlsx", ".xlsm", ".csv")
HEADER_SCAN_ROWS = 10  # a header may sit below a title row or two


class TableError(ValueError):
    """The file cannot be read as a table (with the reason, in Chinese)."""


@dataclass(frozen=True)
class Sheet:
    title: str
    rows: tuple[tuple[int, tuple[str, ...]], ...]  # (1-based line/row number, cells)


def cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return " ".join(str(value).split())


def fold(value: str) -> str:
    """NFKC form for matching (full-width brackets, digits and letters fold to ASCII)."""
    return " ".join(unicodedata.normalize("NFKC", value).split())


def header_key(value: str) -> str:
    """A header cell for matching: NFKC, no spaces, no line breaks, no '*' required-markers."""
    return "".join(fold(value).split()).replace("*", "")


def read_tables(path: Path) -> list[Sheet]:
    """Every non-empty sheet of a workbook, or the one table of a CSV (titled by the file stem)."""
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise TableError(f"不支持的文件类型 {path.suffix or '(无扩展名)'}（支持 xlsx、csv）")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TableError(f"无法读取文件：{exc}") from None
    if suffix == ".csv":
        return [_csv_sheet(raw, path.stem)]
    return _workbook_sheets(raw)


def _csv_sheet(raw: bytes, title: str) -> Sheet:
    text = decode_table_text(raw)
    if text is None:
        raise TableError("无法识别文件编码（既不是 UTF-8 也不是 GB18030）")
    reader = csv.reader(io.StringIO(text, newline=""))
    rows = []
    try:
        for cells in reader:
            rows.append((reader.line_num, tuple(cell_text(c) for c in cells)))
    except csv.Error as exc:
        raise TableError(f"CSV 解析错误（第 {reader.line_num} 行）：{exc}") from None
    return Sheet(unicodedata.normalize("NFKC", title), tuple(rows))


def _workbook_sheets(raw: bytes) -> list[Sheet]:
    from zipfile import BadZipFile

    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
    except (BadZipFile, KeyError, OSError, ValueError) as exc:
        raise TableError(f"不是有效的 xlsx 工作簿（{type(exc).__name__}）") from None
    sheets = []
    try:
        for worksheet in workbook.worksheets:
            rows = []
            for number, values in enumerate(worksheet.iter_rows(values_only=True), start=1):
                cells = tuple(cell_text(v) for v in values)
                if any(cells):
                    rows.append((number, cells))
            if rows:
                sheets.append(Sheet(unicodedata.normalize("NFKC", worksheet.title), tuple(rows)))
    finally:
        workbook.close()
    return sheets


def code_text(raw: str, digits: int | None = None) -> str:
    """A code cell as text; a purely numeric code shorter than ``digits`` gets its zeros back."""
    code = "".join(fold(raw).split()).upper()
    if digits and code.isdigit() and len(code) < digits:
        return code.zfill(digits)
    return code
