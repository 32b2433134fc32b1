"""One reader for the tables people publish and hospitals export: CSV, TSV and XLSX.

Why in the core: every domain reads such files — terminology code lists and maps, DIP catalogs and
operation-type lists, hospital price lists, local code maps, the NHSA 智能审核 rule workbooks — and
``cds_service`` is the one package all of them may import (the core imports no domain, see
``tests/test_layering.py``). It depends on the standard library and openpyxl only.

What it does so that no importer has to: decode UTF-8 (with or without BOM) or GB18030; pick the
delimiter; open a workbook read-only and choose the sheet by name, by pattern or by its header;
find the header row among the first rows (bureaus put titles above it); match header cells against
aliases declared as data (:class:`TableSpec`, usually from TOML); report missing columns as one
file-level error (:class:`TableError`) and bad rows with their line numbers (:class:`Problem`);
yield rows as :class:`Row` — values keyed by canonical column names, with the line number.

    spec = TableSpec.from_toml(HEADERS, "drug_codes", required=["code"])
    with open_table(path, spec, sheet=re.compile("知识点|Sheet2")) as table:
        for row in table:
            code = row.text("code")
            if not code.isalnum():
                table.reject(row, f"国标代码格式错误：{code}")
    table.problems  # [Problem(line=12, message=…, sheet=…), …]
"""

from __future__ import annotations

import csv
import fnmatch
import io
import re
import tomllib
import unicodedata
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "ENCODINGS",
    "HeaderNotFound",
    "Problem",
    "RawSheet",
    "Row",
    "SheetSelector",
    "Table",
    "TableError",
    "TableSpec",
    "cell_text",
    "decode_table_text",
    "header_key",
    "open_table",
    "raw_rows",
    "read_sheets",
    "sheet_names",
]

#: UTF-8 first (a BOM is dropped), then GB18030, the superset of GBK/GB2312 that Chinese Excel and
#: HIS exports use when they are not UTF-8.
ENCODINGS = ("utf-8-sig", "gb18030")
TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
WORKBOOK_SUFFIXES = (".xlsx", ".xlsm")
HEADER_WITHIN = 20  # rows searched for the header (title rows come first in published workbooks)

SheetSelector = str | re.Pattern[str] | Callable[[str], bool] | None


class TableError(ValueError):
    """The file as a whole cannot be read as the table asked for (format, encoding, sheet, header)."""


class HeaderNotFound(TableError):
    """No row among the first ones has the columns asked for. ``missing``: the canonical names not
    found in the closest row, ``seen``: that row's cells (for the importer's own message)."""

    def __init__(self, message: str, missing: Sequence[str] = (), seen: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.missing = tuple(missing)
        self.seen = tuple(seen)


@dataclass(frozen=True, slots=True)
class Problem:
    """A bad row: its line (CSV line / worksheet row, 1-based) and what is wrong with it."""

    line: int
    message: str
    sheet: str | None = None

    def __str__(self) -> str:
        where = f"{self.sheet} " if self.sheet else ""
        return f"{where}第 {self.line} 行：{self.message}"


# --- text and cells -------------------------------------------------------------------------------
def decode_table_text(raw: bytes) -> str | None:
    """The decoded text, or None when the bytes are neither encoding (the caller says so in its words)."""
    for encoding in ENCODINGS:
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return None


_HEADER_NOTE = re.compile(r"[(（\[［【][^)）\]］】]*[)）\]］】]|[(（\[［【].*$")
_HEADER_NOISE = re.compile(r"[\s`'\"“”‘’_\-－]+")


def header_key(cell: object) -> str:
    """Comparable form of a header cell: NFKC, without blanks, quotes, ``_``/``-`` and notes in
    brackets, case-folded — ``病种类型（1.核心病种；2.综合病种）`` = ``病种类型``, ``DIP_CODE`` =
    ``dip code``, `` `YEAR` `` = ``year``."""
    text = unicodedata.normalize("NFKC", "" if cell is None else str(cell))
    return _HEADER_NOISE.sub("", _HEADER_NOTE.sub("", text)).casefold()


def cell_text(value: object) -> str:
    """A cell as text: '' for empty, ``12`` for the number 12.0, an ISO date for a date, stripped."""
    if type(value) is str:  # the common case first: every cell of a text file
        return value.strip()
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


def _blank(cells: Sequence[object]) -> bool:
    try:
        return not "".join(cells).strip()  # type: ignore[arg-type]  # text rows: one C call
    except TypeError:  # worksheet rows hold numbers, dates, None
        return all(c is None or (isinstance(c, str) and not c.strip()) for c in cells)


# --- the columns a table must / may have, as data ---------------------------------------------------
@dataclass(frozen=True)
class TableSpec:
    """Canonical column names, each with the header spellings accepted for it (compared through
    :func:`header_key`; an alias with ``*`` is a glob: ``*编码`` matches ``主要诊断编码``), and which
    columns are required. Exact spellings are matched before globs; a column serves one name."""

    columns: Mapping[str, tuple[str, ...]]
    required: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        unknown = set(self.required) - set(self.columns)
        if unknown:
            raise ValueError(f"required columns without aliases: {sorted(unknown)}")

    @classmethod
    def from_mapping(cls, columns: Mapping[str, Iterable[str]], required: Iterable[str] = ()) -> TableSpec:
        return cls({name: tuple(aliases) for name, aliases in columns.items()}, frozenset(required))

    @classmethod
    def from_toml(
        cls, path: str | Path, section: str, *, required: Iterable[str] = (), extra: str | Path | None = None
    ) -> TableSpec:
        """The ``[section]`` of a TOML alias file (``name = ["alias", …]``); aliases for the same
        section in ``extra`` (a region's or hospital's additions, when the file exists) are appended."""
        columns: dict[str, list[str]] = {}
        sources = [Path(path)] + ([Path(extra)] if extra is not None and Path(extra).is_file() else [])
        for source in sources:
            try:
                with source.open("rb") as fh:
                    table = tomllib.load(fh).get(section, {})
            except tomllib.TOMLDecodeError as exc:
                raise TableError(f"{source}: {exc}") from None
            for name, aliases in table.items():
                if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
                    raise TableError(f"{source}: [{section}] {name} 应为字符串列表")
                columns.setdefault(name, []).extend(aliases)
        if not columns:
            raise TableError(f"{path}: 没有 [{section}] 表头定义")
        return cls.from_mapping(columns, required)

    def match(self, header: Sequence[object]) -> dict[str, int]:
        """Canonical name → column index for the header cells present."""
        keys = [header_key(c) for c in header]
        found: dict[str, int] = {}
        taken: set[int] = set()
        for globs in (False, True):
            for name, aliases in self.columns.items():
                if name in found:
                    continue
                for alias in aliases:
                    if ("*" in alias) != globs:
                        continue
                    wanted = header_key(alias)
                    hit = next(
                        (
                            i
                            for i, k in enumerate(keys)
                            if k
                            and i not in taken
                            and (fnmatch.fnmatchcase(k, wanted) if globs else k == wanted)
                        ),
                        None,
                    )
                    if hit is not None:
                        found[name] = hit
                        taken.add(hit)
                        break
        return found

    def missing(self, found: Mapping[str, int]) -> list[str]:
        return [name for name in self.columns if name in self.required and name not in found]

    def label(self, name: str) -> str:
        """How to name a column to a person: its first alias (the usual Chinese header)."""
        return next((a for a in self.columns.get(name, ()) if "*" not in a), name)


# --- rows ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Row:
    """One data row: ``values`` by canonical name (None where the column is absent or the row is
    short), the raw ``cells``, and the ``line`` to quote in a message."""

    line: int
    values: Mapping[str, object]
    cells: tuple[object, ...] = ()

    def __getitem__(self, name: str) -> object:
        return self.values.get(name)

    def text(self, name: str) -> str:
        return cell_text(self.values.get(name))


def sheet_names(path: str | Path) -> list[str]:
    """The sheets of a workbook; a text file is one sheet named after the file."""
    path = _checked(path)
    if path.suffix.lower() in TEXT_SUFFIXES:
        return [path.stem]
    workbook = _open_workbook(path)
    try:
        return list(workbook.sheetnames)
    finally:
        workbook.close()


def raw_rows(path: str | Path, sheet: str | None = None) -> Generator[tuple[int, list[object]], None, None]:
    """(line, cells) of a text file, or of one worksheet (the first when ``sheet`` is None); close
    the generator when stopping early, so a workbook is not left open."""
    path = _checked(path)
    if path.suffix.lower() in TEXT_SUFFIXES:
        yield from _text_rows(path)
        return
    workbook = _open_workbook(path)
    try:
        yield from _worksheet_rows(workbook, path, sheet)
    finally:
        workbook.close()


@dataclass
class RawSheet:
    """A whole sheet in memory: its first non-blank row as ``header`` and the non-blank rows after it."""

    name: str
    header: list[object]
    header_line: int
    rows: list[tuple[int, list[object]]]


def read_sheets(path: str | Path) -> list[RawSheet]:
    """Every sheet that has a row at all (a text file is one sheet), for importers that decide
    which sheet is which by matching several specs against each header."""
    path = _checked(path)
    if path.suffix.lower() in TEXT_SUFFIXES:
        return _raw_sheets([(path.stem, _text_rows(path))])
    workbook = _open_workbook(path)
    try:
        return _raw_sheets([(name, _worksheet_rows(workbook, path, name)) for name in workbook.sheetnames])
    finally:
        workbook.close()


def _raw_sheets(sheets: list[tuple[str, Iterator[tuple[int, list[object]]]]]) -> list[RawSheet]:
    out = []
    for name, rows in sheets:
        header: list[object] | None = None
        header_line = 0
        body: list[tuple[int, list[object]]] = []
        for line, cells in rows:
            if _blank(cells):
                continue
            if header is None:
                header, header_line = cells, line
            else:
                body.append((line, cells))
        if header is not None:
            out.append(RawSheet(name, header, header_line, body))
    return out


# --- one table ---------------------------------------------------------------------------------------
@dataclass
class Table:
    """An open table: where its header is, which columns were found, and its rows (iterate once).

    Rows that lack a value in a ``required`` column (the spec's, or set here before iterating when
    the layout decides it) are not yielded; each becomes a :class:`Problem`. Importers add their
    own findings with :meth:`reject`, so one list holds every bad row with its line."""

    source: str
    sheet: str | None
    header_line: int
    header: tuple[str, ...]
    columns: dict[str, int]
    spec: TableSpec
    problems: list[Problem] = field(default_factory=list)
    blank_lines: int = 0
    required: frozenset[str] | None = None
    _rows: Iterator[tuple[int, list[object]]] = field(default_factory=lambda: iter(()), repr=False)
    _close: Callable[[], None] = field(default=lambda: None, repr=False)

    def __iter__(self) -> Iterator[Row]:
        names = list(self.columns.items())
        wanted = self.spec.required if self.required is None else self.required
        required = [(n, self.columns[n]) for n in self.spec.columns if n in wanted and n in self.columns]
        try:
            for line, cells in self._rows:
                if _blank(cells):
                    self.blank_lines += 1
                    continue
                values = {n: (cells[i] if i < len(cells) else None) for n, i in names}
                empty = [n for n, _i in required if cell_text(values[n]) == ""]
                if empty:
                    self.reject(line, "缺少" + "、".join(f"“{self.spec.label(n)}”" for n in empty))
                    continue
                yield Row(line, values, tuple(cells))
        finally:
            self.close()

    def reject(self, row: Row | int, message: str) -> None:
        self.problems.append(Problem(row.line if isinstance(row, Row) else row, message, self.sheet))

    @property
    def absent(self) -> list[str]:
        """Optional columns the file does not have."""
        return [n for n in self.spec.columns if n not in self.columns]

    def close(self) -> None:
        self._close()

    def __enter__(self) -> Table:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_table(
    path: str | Path,
    spec: TableSpec,
    *,
    sheet: SheetSelector = None,
    header_within: int = HEADER_WITHIN,
    accept: Callable[[Mapping[str, int]], bool] | None = None,
    headerless: Mapping[str, int] | None = None,
) -> Table:
    """Open the table described by ``spec``; raise :class:`TableError` when the file or the sheet
    cannot be read, :class:`HeaderNotFound` when no header row has the required columns (the
    message names them and quotes the closest row).

    ``sheet``: a name, a compiled pattern searched in the names (NHSA sheets are sentences:
    ``re.compile("知识点明细")``), a predicate, or None for the first sheet whose header fits.
    ``accept(columns)`` replaces "every required column" as the test of a header row (a file that
    may be one of two layouts). ``headerless``: column positions to use when no header is found
    (a file in the documented column order): every row, from the first, is then data."""
    path = _checked(path)
    fits = accept or (lambda columns: bool(columns) and not spec.missing(columns))
    if path.suffix.lower() in TEXT_SUFFIXES:
        rows = _text_rows(path)
        found = _find_header(rows, spec, header_within, fits)
        if isinstance(found, _Miss):
            if headerless is not None:
                return Table(path.name, None, 0, (), dict(headerless), spec, _rows=_text_rows(path))
            raise _header_error(path, [(None, found)], spec)
        line, header, columns = found
        return Table(path.name, None, line, _header_texts(header), columns, spec, _rows=rows)

    workbook = _open_workbook(path)
    try:
        names = _select_sheets(workbook.sheetnames, sheet, path)
        misses: list[tuple[str | None, _Miss]] = []
        for name in names:
            head = _worksheet_rows(workbook, path, name, max_row=header_within)
            found = _find_header(head, spec, header_within, fits)
            if isinstance(found, _Miss):
                misses.append((name, found))
                continue
            line, header, columns = found
            rows = _worksheet_rows(workbook, path, name, min_row=line + 1)
            return Table(
                path.name, name, line, _header_texts(header), columns, spec, _rows=rows, _close=workbook.close
            )
        if headerless is not None and names:
            rows = _worksheet_rows(workbook, path, names[0])
            return Table(
                path.name, names[0], 0, (), dict(headerless), spec, _rows=rows, _close=workbook.close
            )
        raise _header_error(path, misses, spec)
    except BaseException:
        workbook.close()
        raise


@dataclass(frozen=True)
class _Miss:
    line: int
    header: list[object]
    columns: dict[str, int]


def _find_header(
    rows: Iterator[tuple[int, list[object]]],
    spec: TableSpec,
    within: int,
    fits: Callable[[Mapping[str, int]], bool],
) -> tuple[int, list[object], dict[str, int]] | _Miss:
    """The first row among the first ``within`` whose columns ``fit``; else the closest row, for
    the error message."""
    best = _Miss(0, [], {})
    for count, (line, cells) in enumerate(rows, start=1):
        if not _blank(cells):
            columns = spec.match(cells)
            if fits(columns):
                return line, cells, columns
            if len(columns) > len(best.columns) or not best.header:
                best = _Miss(line, cells, columns)
        if count >= within:
            break
    return best


def _header_error(path: Path, misses: list[tuple[str | None, _Miss]], spec: TableSpec) -> HeaderNotFound:
    sheet, miss = max(misses, key=lambda m: len(m[1].columns), default=(None, _Miss(0, [], {})))
    missing = spec.missing(miss.columns) or list(spec.required) or list(spec.columns)
    wanted = "、".join(f"“{spec.label(n)}”" for n in missing)
    seen = [cell_text(c) for c in miss.header[:12] if cell_text(c)]
    if not miss.header:
        return HeaderNotFound(f"{path.name}：文件中没有数据行，缺少列 {wanted}", missing)
    where = f"工作表“{sheet}”" if sheet else ""
    return HeaderNotFound(
        f"{path.name}：找不到表头，缺少列 {wanted}（{where}第 {miss.line} 行为：{'、'.join(seen)}）",
        missing,
        seen,
    )


def _header_texts(header: list[object]) -> tuple[str, ...]:
    return tuple(cell_text(c) for c in header)


def _select_sheets(names: list[str], sheet: SheetSelector, path: Path) -> list[str]:
    if sheet is None:
        return list(names)
    if isinstance(sheet, str):
        if sheet not in names:
            raise TableError(f"{path.name}：没有工作表“{sheet}”（工作表：{'、'.join(names)}）")
        return [sheet]
    test = sheet.search if isinstance(sheet, re.Pattern) else sheet
    chosen = [n for n in names if test(n)]
    if not chosen:
        raise TableError(f"{path.name}：没有符合条件的工作表（工作表：{'、'.join(names)}）")
    return chosen


# --- files -----------------------------------------------------------------------------------------
def _checked(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise TableError(f"文件不存在：{path}")
    suffix = path.suffix.lower()
    if suffix == ".xls":
        raise TableError(f"{path.name}：不支持旧版 .xls 文件，请在 Excel 中另存为 .xlsx 或 CSV")
    if suffix not in TEXT_SUFFIXES + WORKBOOK_SUFFIXES:
        raise TableError(f"{path.name}：不支持的文件类型 {suffix or '（无扩展名）'}，请使用 CSV、TSV 或 XLSX")
    return path


def _text_rows(path: Path) -> Iterator[tuple[int, list[object]]]:
    """Rows of a CSV/TSV file with the line each starts on; the delimiter is the one (tab, comma,
    semicolon) the first line uses most, a tab for ``.tsv``."""
    text = decode_table_text(path.read_bytes())
    if text is None:
        raise TableError(f"{path.name}：无法识别文件编码（既不是 UTF-8 也不是 GB18030）")
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    delimiter = "\t" if path.suffix.lower() == ".tsv" else max(",\t;", key=first.count)
    if not first.count(delimiter):
        delimiter = ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    return _csv_rows(reader, path)


def _csv_rows(reader: Any, path: Path) -> Iterator[tuple[int, list[object]]]:
    start = 1
    try:
        for cells in reader:
            yield start, list(cells)
            start = reader.line_num + 1
    except csv.Error as exc:
        raise TableError(f"{path.name}：第 {reader.line_num} 行无法解析（{exc}）") from None


def _open_workbook(path: Path) -> Any:
    import openpyxl

    try:
        return openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many types for broken files
        raise TableError(f"{path.name}：无法打开 Excel 文件（{type(exc).__name__}: {exc}）") from None


def _worksheet_rows(
    workbook: Any, path: Path, sheet: str | None, *, min_row: int = 1, max_row: int | None = None
) -> Iterator[tuple[int, list[object]]]:
    if sheet is not None and sheet not in workbook.sheetnames:
        raise TableError(f"{path.name}：没有工作表“{sheet}”（工作表：{'、'.join(workbook.sheetnames)}）")
    worksheet = workbook[sheet] if sheet is not None else workbook.worksheets[0]
    rows = worksheet.iter_rows(min_row=min_row, max_row=max_row, values_only=True)
    return ((number, list(cells)) for number, cells in enumerate(rows, start=min_row))
