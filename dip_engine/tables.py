"""Reading published tables (XLSX workbooks and CSV files) into header + rows with line numbers."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from terminology.textfile import decode_table_text


class TableError(ValueError):
    """A file that cannot be read as a table (wrong format, encoding, empty)."""


@dataclass
class Sheet:
    name: str
    headers: list[object]
    rows: list[tuple[int, list[object]]]  # (line / row number in the file, cells)


def _csv_sheets(path: Path) -> list[Sheet]:
    text = decode_table_text(path.read_bytes())
    if text is None:
        raise TableError(f"{path.name}: neither UTF-8 nor GB18030 text")
    reader = csv.reader(text.splitlines(keepends=True))
    try:
        headers = next(reader)
    except StopIteration:
        raise TableError(f"{path.name}: empty file") from None
    rows: list[tuple[int, list[object]]] = []
    line = reader.line_num
    for cells in reader:
        start = line + 1
        line = reader.line_num
        if any(c.strip() for c in cells):
            rows.append((start, list(cells)))
    return [Sheet(path.stem, list(headers), rows)]


def _xlsx_sheets(path: Path) -> list[Sheet]:
    import openpyxl

    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for broken files
        raise TableError(
            f"{path.name}: not a readable XLSX workbook ({exc.__class__.__name__}: {exc})"
        ) from None
    sheets = []
    try:
        for ws in wb.worksheets:
            it = ws.iter_rows(values_only=True)
            headers: list[object] | None = None
            rows: list[tuple[int, list[object]]] = []
            for number, cells in enumerate(it, start=1):
                if headers is None:
                    if any(c not in (None, "") for c in cells):
                        headers = list(cells)
                    continue
                if any(c not in (None, "") for c in cells):
                    rows.append((number, list(cells)))
            if headers is not None:
                sheets.append(Sheet(ws.title, headers, rows))
    finally:
        wb.close()
    return sheets


def read_sheets(path: str | Path) -> list[Sheet]:
    """All sheets of an XLSX workbook, or the single sheet of a CSV file."""
    path = Path(path)
    if not path.is_file():
        raise TableError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return _xlsx_sheets(path)
    if suffix in (".csv", ".txt", ".tsv"):
        return _csv_sheets(path)
    raise TableError(f"{path.name}: unsupported file type {suffix!r} (use .xlsx or .csv)")
