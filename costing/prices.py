"""The hospital price list: import (CSV/XLSX), storage (``prices.sqlite`` in the data home), lookup.

Draft orders are priced only from this list — a code that is not on it stays unpriced with a reason.
When nothing was imported the hand-made sample list in ``costing/sample/prices.csv`` is used and
labelled as sample.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path

from cds_service.tables import HeaderNotFound, Row, Table, TableError, TableSpec, open_table
from costing.categories import category_names, normalize_category

log = logging.getLogger(__name__)

DB_NAME = "prices.sqlite"
SAMPLE_FILE = Path(__file__).resolve().parent / "sample" / "prices.csv"
HEADERS_FILE = Path(__file__).resolve().parent / "price_headers.toml"
REQUIRED_COLUMNS = ("code", "name", "unit_price", "category")
MAX_ERRORS_REPORTED = 200
_CENT = Decimal("0.01")


def price_key(code: object) -> str:
    """Lookup key of an item code: NFKC, trimmed, upper-case (``33.2400x001`` = ``33.2400X001``)."""
    return unicodedata.normalize("NFKC", str(code)).strip().upper()


@dataclass(frozen=True, slots=True)
class PriceItem:
    code: str
    name: str
    unit_price: Decimal  # yuan per unit
    category: str  # 费用类别 01–14
    unit: str = ""


@dataclass(frozen=True, slots=True)
class PriceRowError:
    line: int  # 1-based line (CSV) or row (XLSX) in the file
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class PriceImportError(ValueError):
    """The file was rejected; ``errors`` lists every bad line."""

    def __init__(self, message: str, errors: Sequence[PriceRowError] = ()) -> None:
        self.errors = list(errors)
        detail = "".join(f"\n  {e}" for e in self.errors[:MAX_ERRORS_REPORTED])
        more = len(self.errors) - MAX_ERRORS_REPORTED
        if more > 0:
            detail += f"\n  … and {more} more"
        super().__init__(message + detail)


@dataclass(frozen=True)
class PriceList:
    """Items by lookup key, plus where they came from (shown on cards)."""

    items: dict[str, PriceItem]
    source: str
    is_sample: bool = False
    imported_at: str | None = None

    def get(self, code: object) -> PriceItem | None:
        if code is None:
            return None
        return self.items.get(price_key(code))

    def __len__(self) -> int:
        return len(self.items)

    @classmethod
    def from_items(cls, items: Iterable[PriceItem], source: str, is_sample: bool = False) -> PriceList:
        return cls({price_key(i.code): i for i in items}, source=source, is_sample=is_sample)


@dataclass
class ImportReport:
    source: str
    item_count: int
    sha256: str
    categories: dict[str, int] = field(default_factory=dict)


# -- parsing -------------------------------------------------------------------------------------


@cache
def _spec() -> TableSpec:
    return TableSpec.from_toml(HEADERS_FILE, "price_list", required=REQUIRED_COLUMNS)


def parse_price(raw: object) -> Decimal | None:
    """'¥1,850.00', '1850元', 1850 → Decimal('1850.00'); negative, NaN or garbage → None."""
    if raw is None or isinstance(raw, bool):
        return None
    text = unicodedata.normalize("NFKC", str(raw)).strip().replace(",", "").replace("¥", "").replace("元", "")
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    if not value.is_finite() or value < 0:
        return None
    return value


def _text(row: Row, column: str) -> str:
    return unicodedata.normalize("NFKC", row.text(column))


def _parse_rows(table: Table) -> list[PriceItem]:
    """Validate every row; all-or-nothing (a price list half imported would misprice orders)."""
    table.required = frozenset()  # an empty value is reported below with the row's other problems
    items: list[PriceItem] = []
    errors: list[PriceRowError] = []
    seen: dict[str, int] = {}
    for row in table:
        code, name = _text(row, "code"), _text(row, "name")
        price_text, category_text = _text(row, "unit_price"), _text(row, "category")
        problems = []
        if not code:
            problems.append("item code is empty")
        if not name:
            problems.append("name is empty")
        price = parse_price(price_text)
        if price is None:
            problems.append(f"unit price {price_text!r} is not a non-negative amount")
        category = normalize_category(category_text)
        if category is None:
            problems.append(f"费用类别 {category_text!r} is not one of 01–14 (or their names)")
        key = price_key(code) if code else ""
        if key and key in seen:
            problems.append(f"item code {code!r} already given on line {seen[key]}")
        if problems or price is None or category is None:
            errors.append(PriceRowError(row.line, "; ".join(problems)))
            continue
        seen[key] = row.line
        items.append(
            PriceItem(code=code, name=name, unit_price=price, category=category, unit=_text(row, "unit"))
        )
    if errors:
        raise PriceImportError(f"{len(errors)} bad line(s); nothing imported", errors)
    if not items:
        raise PriceImportError("the price list has no items")
    return items


def read_price_file(path: Path | str, sheet: str | None = None) -> list[PriceItem]:
    """Parse a CSV/TSV or XLSX price list; raises :class:`PriceImportError` with line numbers."""
    try:
        with open_table(path, _spec(), sheet=sheet) as table:
            return _parse_rows(table)
    except HeaderNotFound:
        expected = ", ".join(REQUIRED_COLUMNS)
        raise PriceImportError(
            f"no header row with the columns {expected} (see costing/price_headers.toml)"
        ) from None
    except TableError as exc:
        raise PriceImportError(str(exc)) from None


# -- storage -------------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS price_list (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    source TEXT NOT NULL, sha256 TEXT NOT NULL, imported_at TEXT NOT NULL, item_count INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS price_item (
    code_key TEXT PRIMARY KEY, code TEXT NOT NULL, name TEXT NOT NULL,
    unit_price TEXT NOT NULL, category TEXT NOT NULL, unit TEXT NOT NULL
);
"""


def import_prices(home: Path | str, path: Path | str, sheet: str | None = None) -> ImportReport:
    """Replace the data home's price list with the file's (atomically: a bad file changes nothing)."""
    path = Path(path)
    items = read_price_file(path, sheet)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    imported_at = datetime.now(UTC).isoformat(timespec="seconds")
    db_path = Path(home) / DB_NAME
    with sqlite3.connect(db_path) as conn:
        conn.executescript(_SCHEMA)
        conn.execute("DELETE FROM price_item")
        conn.execute("DELETE FROM price_list")
        conn.executemany(
            "INSERT INTO price_item VALUES (?, ?, ?, ?, ?, ?)",
            [(price_key(i.code), i.code, i.name, str(i.unit_price), i.category, i.unit) for i in items],
        )
        conn.execute(
            "INSERT INTO price_list VALUES (1, ?, ?, ?, ?)", (path.name, digest, imported_at, len(items))
        )
    conn.close()
    with _cache_lock:
        _cache.pop(str(Path(home).resolve()), None)
    counts: dict[str, int] = {}
    for item in items:
        counts[item.category] = counts.get(item.category, 0) + 1
    return ImportReport(
        source=path.name, item_count=len(items), sha256=digest, categories=dict(sorted(counts.items()))
    )


def _load_from_db(db_path: Path) -> PriceList | None:
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        log.error("cannot open %s (%s); using the sample price list", db_path, exc)
        return None
    try:
        meta = conn.execute("SELECT source, imported_at FROM price_list WHERE id = 1").fetchone()
        if meta is None:
            return None
        rows = conn.execute(
            "SELECT code_key, code, name, unit_price, category, unit FROM price_item"
        ).fetchall()
    except sqlite3.Error as exc:
        log.error("cannot read %s (%s); using the sample price list — re-import the prices", db_path, exc)
        return None
    finally:
        conn.close()
    items = {
        key: PriceItem(code, name, Decimal(price), category, unit)
        for key, code, name, price, category, unit in rows
    }
    if not items:
        return None
    return PriceList(items, source=f"本院价目表（{meta[0]}）", is_sample=False, imported_at=meta[1])


def sample_prices() -> PriceList:
    """The shipped demo price list (hand-made, plausible prices; not any hospital's real list)."""
    items = read_price_file(SAMPLE_FILE)
    return PriceList.from_items(items, source="示例价目表（演示数据，非真实价格）", is_sample=True)


_cache: dict[str, tuple[tuple, PriceList]] = {}
_cache_lock = threading.Lock()


def load_prices(home: Path | str | None = None) -> PriceList:
    """The imported price list of a data home, else the sample list. Cached; re-read after import."""
    if home is None:
        return _cached_sample()
    db_path = Path(home).resolve() / DB_NAME
    try:
        stat = db_path.stat()
        signature = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        return _cached_sample()
    key = str(db_path.parent)
    with _cache_lock:
        cached = _cache.get(key)
        if cached and cached[0] == signature:
            return cached[1]
    prices = _load_from_db(db_path) or _cached_sample()
    with _cache_lock:
        _cache[key] = (signature, prices)
    return prices


_sample_lock = threading.Lock()
_sample: list[PriceList] = []


def _cached_sample() -> PriceList:
    with _sample_lock:
        if not _sample:
            _sample.append(sample_prices())
        return _sample[0]


def category_label(code: str) -> str:
    return category_names().get(code, code)
