"""Reading 结算清单 batches (CSV, JSONL, XLSX) as deterministic chunks of raw rows with line numbers.

Chunk boundaries depend only on the file content and the chunk size, so a resumed run cuts the
same chunks and can skip those already checkpointed. Parsing of the values happens in the worker
processes (:mod:`settlement.worker`); the reader only splits records.
"""

from __future__ import annotations

import csv
import hashlib
import io
import mmap
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))

SUPPORTED = (".csv", ".txt", ".jsonl", ".ndjson", ".json", ".xlsx", ".xlsm")


class InputError(ValueError):
    """An input file that cannot be read at all (missing, unknown format, no header)."""


@dataclass(frozen=True, slots=True)
class Chunk:
    """Raw rows of one input file.

    ``kind`` 'table': ``rows`` are (line, value list) under ``header``; 'jsonl': (line, text).
    'csv_range' / 'jsonl_range': only a byte range of ``path`` starting at physical line
    ``first_line`` — the worker reads and parses it, so the parent process stays light.
    """

    file_idx: int
    chunk_idx: int
    kind: str
    header: tuple[str, ...] | None
    rows: list[tuple[int, object]]
    path: str = ""
    offset: int = 0
    length: int = 0
    first_line: int = 1
    suspect_bytes: bool = True  # may contain U+FFFD from undecodable bytes: check rows one by one
    encoding: str = "utf-8"

    def materialize(self) -> Chunk:
        """A byte-range chunk read and split into rows (done in the worker)."""
        if self.kind not in ("csv_range", "jsonl_range"):
            return self
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read(self.length)
        text = data.decode(self.encoding, errors="replace")
        suspect = "\ufffd" in text
        rows: list[tuple[int, object]] = []
        if self.kind == "jsonl_range":
            for i, line in enumerate(text.split("\n")):
                if line.strip():
                    rows.append((self.first_line + i, line))
            return Chunk(self.file_idx, self.chunk_idx, "jsonl", None, rows, suspect_bytes=suspect)
        reader = csv.reader(io.StringIO(text, newline=""))
        start = self.first_line - 1
        for values in reader:
            if values and any(values):
                rows.append((start + reader.line_num, values))
        return Chunk(self.file_idx, self.chunk_idx, "table", self.header, rows, suspect_bytes=suspect)


def file_kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt"):
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix in (".xlsx", ".xlsm"):
        return "xlsx"
    raise InputError(f"{path.name}: unsupported input format {suffix!r} (use {', '.join(SUPPORTED)})")


def fingerprint(path: Path) -> str:
    """Content hash: a resumed run must see byte-identical inputs."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def file_header(path: Path) -> tuple[str, ...] | None:
    """The header row of a CSV/XLSX file (leading blank and ``#`` lines skipped); None for JSONL."""
    kind = file_kind(path)
    if kind == "jsonl":
        return None
    if kind == "xlsx":
        for _number, values in _xlsx_rows(path):
            if any(v.strip() for v in values) and not values[0].lstrip("\ufeff").startswith("#"):
                return tuple(values)
        raise InputError(f"{path.name}: no header row")
    with path.open("rb") as fh:
        sample = fh.read(1 << 20)
    text = sample.decode(sniff_encoding(sample), errors="replace").lstrip("\ufeff")
    for line in io.StringIO(text, newline=""):
        if line.strip() and not line.startswith("#"):
            return tuple(next(csv.reader([line])))
    raise InputError(f"{path.name}: no header row")


def check_columns(path: Path, required: tuple[str, ...], canonical) -> None:
    """One file-level error naming every required column the header lacks (not one reject per row)."""
    header = file_header(path)
    if header is None:
        return
    present = {canonical(h) for h in header}
    missing = [c for c in required if c not in present]
    if missing:
        shown = ", ".join(h.strip() for h in header[:20])
        raise InputError(
            f"{path.name}: 缺少必需列 {', '.join(missing)}（missing required column(s)）；"
            f"表头为: {shown}。文件未处理 (nothing was settled)"
        )


def estimate_rows(path: Path) -> int:
    """Approximate number of data rows (for the progress bar's ETA): newline count, or XLSX dimension."""
    if file_kind(path) == "xlsx":
        try:
            from openpyxl import load_workbook

            wb = load_workbook(path, read_only=True)
            rows = max((wb.active.max_row or 1) - 1, 0)
            wb.close()
            return rows
        except Exception:  # noqa: BLE001 - only an estimate
            return 0
    count = 0
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            count += block.count(b"\n")
    return max(count - 1, 0)


def _csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    with path.open("r", encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        for values in reader:
            yield reader.line_num, values


def _xlsx_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many types for a broken file
        raise InputError(f"{path.name}: not a readable XLSX workbook ({type(exc).__name__})") from None
    try:
        for number, values in enumerate(wb.active.iter_rows(values_only=True), start=1):
            yield number, ["" if v is None else _cell_text(v) for v in values]
    finally:
        wb.close()


def _cell_text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%d")
    return str(value)


def plan_chunks(file_idx: int, path: Path, chunk_size: int) -> Iterator[Chunk]:
    """Byte-range chunks of about ``chunk_size`` lines (CSV/JSONL); XLSX falls back to :func:`read_chunks`.

    A CSV boundary is only placed where the bytes so far hold an even number of quote characters,
    so a quoted field with a line break is never cut in two.
    """
    kind = file_kind(path)
    if kind == "xlsx":
        yield from read_chunks(file_idx, path, chunk_size)
        return
    if not path.is_file():
        raise InputError(f"input file not found: {path}")
    size = path.stat().st_size
    if size == 0:
        if kind == "csv":
            raise InputError(f"{path.name}: no header row")
        return
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        pos, line_no = 0, 1
        encoding = sniff_encoding(mm[: 1 << 20])
        if mm[:3] == b"\xef\xbb\xbf":
            pos = 3
        header: tuple[str, ...] | None = None
        # skip leading blank and '#' comment lines; for CSV the next line is the header
        while pos < size:
            end = mm.find(b"\n", pos)
            end = size if end < 0 else end + 1
            line = mm[pos:end]
            if line.strip() and not line.startswith(b"#"):
                if kind == "csv":
                    text = line.decode(encoding, errors="replace")
                    header = tuple(next(csv.reader([text])))
                    pos, line_no = end, line_no + 1
                break
            pos, line_no = end, line_no + 1
        if kind == "csv" and header is None:
            raise InputError(f"{path.name}: no header row")
        chunk_idx = 0
        while pos < size:
            start, start_line = pos, line_no
            pos, lines = _advance_lines(mm, pos, size, chunk_size)
            if kind == "csv":
                quotes = mm[start:pos].count(b'"')
                while quotes % 2 and pos < size:  # inside a quoted field: extend to the next line
                    nxt, more = _advance_lines(mm, pos, size, 1)
                    quotes += mm[pos:nxt].count(b'"')
                    pos, lines = nxt, lines + more
            line_no += lines
            yield Chunk(
                file_idx,
                chunk_idx,
                "csv_range" if kind == "csv" else "jsonl_range",
                header,
                [],
                path=str(path),
                offset=start,
                length=pos - start,
                first_line=start_line,
                encoding=encoding,
            )
            chunk_idx += 1


_BLOCK = 1 << 22


def sniff_encoding(sample: bytes) -> str:
    """UTF-8 unless the bytes are not, then GB18030 (a superset of GBK/GB2312, what HIS exports use)."""
    cut = sample.rfind(b"\n")
    sample = sample[: cut + 1] if cut >= 0 and len(sample) >= 1 << 20 else sample
    try:
        sample.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        try:
            sample.decode("gb18030")
            return "gb18030"
        except UnicodeDecodeError:
            return "utf-8"  # undecodable either way: rows with bad bytes are rejected one by one


def _advance_lines(mm, pos: int, size: int, wanted: int) -> tuple[int, int]:
    """Position after ``wanted`` more lines from ``pos`` (or the end), and how many lines that was."""
    lines = 0
    while pos < size and lines < wanted:
        block = mm[pos : pos + _BLOCK]
        n = block.count(b"\n")
        if lines + n < wanted:
            lines += n
            pos += len(block)
            if pos >= size and block and not block.endswith(b"\n"):
                lines += 1  # a last line without a newline
            continue
        idx = -1
        for _ in range(wanted - lines):
            idx = block.find(b"\n", idx + 1)
        return pos + idx + 1, wanted
    return min(pos, size), lines


def read_chunks(file_idx: int, path: Path, chunk_size: int) -> Iterator[Chunk]:
    """Chunks of ``chunk_size`` records; leading ``#`` comment lines (synthetic-data labels) are skipped."""
    kind = file_kind(path)
    if not path.is_file():
        raise InputError(f"input file not found: {path}")
    chunk_idx = 0
    if kind == "jsonl":
        batch: list[tuple[int, object]] = []
        with path.open("r", encoding="utf-8-sig") as fh:
            for number, text in enumerate(fh, start=1):
                if not text.strip() or (not batch and chunk_idx == 0 and text.startswith("#")):
                    continue
                batch.append((number, text))
                if len(batch) >= chunk_size:
                    yield Chunk(file_idx, chunk_idx, "jsonl", None, batch)
                    chunk_idx, batch = chunk_idx + 1, []
        if batch:
            yield Chunk(file_idx, chunk_idx, "jsonl", None, batch)
        return
    rows = _csv_rows(path) if kind == "csv" else _xlsx_rows(path)
    header: tuple[str, ...] | None = None
    batch = []
    for number, values in rows:
        if not values or not any(v.strip() for v in values):
            continue
        if header is None:
            if values[0].lstrip("\ufeff").startswith("#"):
                continue
            header = tuple(values)
            continue
        batch.append((number, values))
        if len(batch) >= chunk_size:
            yield Chunk(file_idx, chunk_idx, "table", header, batch)
            chunk_idx, batch = chunk_idx + 1, []
    if header is None:
        raise InputError(f"{path.name}: no header row")
    if batch:
        yield Chunk(file_idx, chunk_idx, "table", header, batch)


def header_comment_lines(text: str) -> list[str]:
    """Leading comment lines of a CSV text (used to read the synthetic-data label back)."""
    out = []
    for line in io.StringIO(text):
        if not line.startswith("#"):
            break
        out.append(line.rstrip("\n"))
    return out
