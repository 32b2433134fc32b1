"""Rule tables as published, read through the core's table reader (:mod:`cds_service.tables`):
every sheet of a workbook, or one CSV, as rows of text with their line numbers.

Cells keep the bureau's wording (trimmed, runs of white space collapsed); :func:`fold` gives the
NFKC form used to match values. Item codes stored as numbers lose their leading zeros, which
:func:`code_text` restores.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path

from cds_service.tables import TableError, cell_text, read_sheets

TABLE_SUFFIXES = (".xlsx", ".xlsm", ".csv", ".tsv")
HEADER_SCAN_ROWS = 10  # a header may sit below a title row or two

__all__ = ["HEADER_SCAN_ROWS", "TABLE_SUFFIXES", "Sheet", "TableError", "code_text", "fold", "read_tables"]


@dataclass(frozen=True)
class Sheet:
    title: str
    rows: tuple[tuple[int, tuple[str, ...]], ...]  # (1-based line / row number, cells), header included


def _text(value: object) -> str:
    return " ".join(cell_text(value).split())


def fold(value: str) -> str:
    """NFKC form for matching (full-width brackets, digits and letters fold to ASCII)."""
    return " ".join(unicodedata.normalize("NFKC", value).split())


def read_tables(path: Path) -> list[Sheet]:
    """Every non-empty sheet of a workbook, or the one table of a CSV (titled by the file stem).
    Raises :class:`cds_service.tables.TableError` (in Chinese) when the file cannot be read."""
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise TableError(f"不支持的文件类型 {path.suffix or '(无扩展名)'}（支持 xlsx、csv）")
    sheets = []
    for raw in read_sheets(path):
        rows = [(raw.header_line, tuple(_text(c) for c in raw.header))]
        rows += [(line, tuple(_text(c) for c in cells)) for line, cells in raw.rows]
        sheets.append(Sheet(unicodedata.normalize("NFKC", raw.name), tuple(rows)))
    return sheets


def code_text(raw: str, digits: int | None = None) -> str:
    """A code cell as text; a purely numeric code shorter than ``digits`` gets its zeros back."""
    code = "".join(fold(raw).split()).upper()
    if digits and code.isdigit() and len(code) < digits:
        return code.zfill(digits)
    return code
