"""A page's tables: one definition renders as HTML and exports to XLSX, so both always agree."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    # text | int | money (fen) | ratio (e4) | percent (0..1) | time | yuan / number (decimal strings
    # as a loaded `dip-cds settle` output has them; a cell that is not a number stays text)
    kind: str = "text"
    link: Callable[[dict[str, Any]], str | None] | None = None  # HTML only


@dataclass
class Table:
    id: str
    title: str
    columns: Sequence[Column]
    rows: list[dict[str, Any]]
    total: dict[str, Any] | None = None  # the 合计 row, computed from ``rows``
    note: str = ""
    limit: int | None = None  # HTML shows this many rows; the export has them all
    extra: dict[str, Any] = field(default_factory=dict)

    def shown(self) -> list[dict[str, Any]]:
        return self.rows if self.limit is None else self.rows[: self.limit]


def yuan(cents: int | None) -> Decimal | None:
    return None if cents is None else (Decimal(cents) / 100).quantize(Decimal("0.01"))


def _decimal(value: Any) -> Decimal | None:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def display(value: Any, kind: str) -> str:
    """A cell as the page shows it (unknown is 「—」, never 0)."""
    if value is None or value == "":
        return "—"
    if kind == "money":
        return f"{yuan(value):,.2f}"
    if kind == "ratio":
        return f"{Decimal(value) / 100:.1f}%"
    if kind == "percent":
        return f"{Decimal(str(value)) * 100:.1f}%"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "time" and isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if kind == "yuan" and (number := _decimal(value)) is not None:
        return f"{number:,.2f}"
    return str(value)


def _xlsx_value(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "money":
        return float(Decimal(value) / 100)
    if kind == "ratio":
        return float(Decimal(value) / 10000)
    if kind == "percent":
        return float(value)
    if kind == "int":
        return int(value)
    if kind == "time" and isinstance(value, datetime):
        return value.replace(tzinfo=None)
    if kind in ("yuan", "number") and (number := _decimal(value)) is not None:
        return float(number)
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text  # never a formula from stored text


NUMBER_FORMATS = {
    "money": "#,##0.00",
    "yuan": "#,##0.00",
    "ratio": "0.0%",
    "percent": "0.0%",
    "int": "0",
    "time": "yyyy-mm-dd hh:mm",
}


def to_xlsx(table: Table, meta: Sequence[tuple[str, str]] = ()) -> bytes:
    """The whole table (every row, then the 合计 row) as an XLSX workbook."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = "".join(ch for ch in table.title if ch not in "[]:*?/\\")[:31] or "Sheet"
    for label, value in meta:
        sheet.append([label, value])
    if meta:
        sheet.append([])
    sheet.append([c.title for c in table.columns])
    for cell in sheet[sheet.max_row]:
        cell.font = Font(bold=True)
    body = list(table.rows) + ([table.total] if table.total else [])
    for row in body:
        sheet.append([_xlsx_value(row.get(c.key), c.kind) for c in table.columns])
        for cell, column in zip(sheet[sheet.max_row], table.columns, strict=True):
            if column.kind in NUMBER_FORMATS:
                cell.number_format = NUMBER_FORMATS[column.kind]
    if table.total:
        for cell in sheet[sheet.max_row]:
            cell.font = Font(bold=True)
    for index, column in enumerate(table.columns, start=1):
        sheet.column_dimensions[sheet.cell(row=1, column=index).column_letter].width = max(
            10, len(column.title) * 2 + 2
        )
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
