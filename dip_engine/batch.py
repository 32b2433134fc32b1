"""Batch grouping of case files (CSV / JSONL) for ``dip-cds group`` and the settlement module.

Rows are parsed and checked one by one: a bad row is reported with its line and reason and the
rest is processed. Large files are split into chunks grouped by worker processes (the engine is
picklable; on Linux the workers inherit it by fork).
"""

from __future__ import annotations

import csv
import io
import json
import multiprocessing as mp
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from itertools import islice
from pathlib import Path
from typing import Any

from grouper import Case

INPUT_COLUMNS = (
    "case_id", "sex", "age", "age_days", "birth_weight_g", "los_days", "icu_days", "discharge_way",
    "main_diagnosis", "other_diagnoses", "procedures", "total_cost", "hospital_id", "hospital_level",
    "insurance_type", "code_system",
)  # fmt: skip
#: ``code_system`` values: the row's codes are 医保版 for sure, or 国临版 (read through the official map).
CODE_SYSTEMS = {
    "yb": "yb", "医保版": "yb", "yb2.0": "yb", "医保版2.0": "yb",
    "gl": "gl", "国临版": "gl", "gl2.0": "gl", "gl3.0": "gl", "国临版2.0": "gl",
}  # fmt: skip
#: ``adjusted_case_score``: case score after the cost-deviation rule (费用偏差校正后的病例分值);
#: ``case_payment``: what the case is paid (adjusted score × point value, or the region's rule for a
#: case without a group, ``payment_basis``); both need ``total_cost``. ``qc_flags``: the quality
#: gate's findings as ``rule:code`` separated by ``|`` (结算清单质控).
OUTPUT_COLUMNS = (
    "case_id", "dip_code", "group_type", "group_name", "score", "case_score", "adjusted_case_score",
    "deviation_band", "payment_standard", "case_payment", "payment_basis", "reason", "qc_flags",
)  # fmt: skip
_INT_FIELDS = ("age", "age_days", "birth_weight_g", "los_days", "icu_days")
_STR_FIELDS = ("sex", "discharge_way", "hospital_id", "hospital_level", "insurance_type", "department")
MAX_FIELD = 4096
CHUNK = 20_000


class CaseError(ValueError):
    """A row that cannot become a case; the message is the reason shown to the user."""


def _int(name: str, value: object) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise CaseError(f"{name} 不是整数: {str(value)[:40]!r}") from None
    if number < 0:
        raise CaseError(f"{name} 不能为负数: {number}")
    return number


def _codes(value: object) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, list):
        return tuple(str(v).strip() for v in value if str(v).strip())
    return tuple(c.strip() for c in str(value).split("|") if c.strip())


def case_from_record(rec: dict) -> Case:
    """A Case from one input record (CSV row or JSON object); raises CaseError with the reason."""
    if not isinstance(rec, dict):
        raise CaseError("记录不是对象")
    get = rec.get
    case_id = str(get("case_id") or "").strip()
    if not case_id:
        raise CaseError("缺少 case_id")
    main = str(get("main_diagnosis") or "").strip()
    if not main:
        raise CaseError("缺少 main_diagnosis")
    try:
        fits = max(map(len, rec.values()), default=0) <= MAX_FIELD  # CSV rows: all text, checked in C
    except TypeError:  # JSON values: numbers, null
        fits = False
    if not fits:
        for k, v in rec.items():
            if isinstance(v, str) and len(v) > MAX_FIELD:
                raise CaseError(f"字段 {k} 过长")
    cost = get("total_cost")
    total = None
    if cost not in (None, ""):
        try:
            total = Decimal(str(cost).strip())
        except InvalidOperation:
            raise CaseError(f"total_cost 不是数字: {str(cost)[:40]!r}") from None
        if not total.is_finite() or total < 0:
            raise CaseError(f"total_cost 无效: {cost}")
    ints: dict[str, Any] = {}
    for f in _INT_FIELDS:
        v = get(f)
        if v is not None and v != "":
            ints[f] = _int(f, v)
    strs: dict[str, Any] = {}
    for f in _STR_FIELDS:
        v = get(f)
        if v is not None and v != "":
            strs[f] = str(v).strip()
    system = get("code_system")
    if system not in (None, ""):
        strs["code_system"] = CODE_SYSTEMS.get(str(system).strip().lower())
        if strs["code_system"] is None:
            raise CaseError(f"code_system 应为 医保版(yb) 或 国临版(gl)，不是 {str(system)[:20]!r}")
    return Case(
        case_id=case_id,
        main_diagnosis=main,
        other_diagnoses=_codes(get("other_diagnoses")),
        procedures=_codes(get("procedures")),
        total_cost=total,
        **ints,
        **strs,
    )


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell_safe(text: str) -> str:
    """Neutralise spreadsheet formulas in free text (a case id like ``=HYPERLINK(...)``)."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def _text(value: object) -> str:
    return "" if value is None else str(value)


def output_record(engine, case: Case) -> list[str]:
    result, pricing = engine.evaluate(case)
    return [
        case.case_id,
        result.dip_code or "",
        result.group_type,
        result.group_name,
        _text(result.score),
        _text(pricing.case_score),
        _text(pricing.adjusted_case_score),
        pricing.deviation_band or "",
        _text(pricing.payment_standard),
        _text(pricing.case_payment),
        pricing.payment_basis,
        result.reason,
        result.qc_flags,
    ]


@dataclass
class BatchSummary:
    rows: int = 0
    written: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    group_types: Counter = field(default_factory=Counter)


# --- reading -------------------------------------------------------------------------------------
def _fmt(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix in (".csv", ".txt"):
        return "csv"
    raise CaseError(f"{path.name}: 不支持的文件类型 {suffix!r}（请用 .csv 或 .jsonl）")


@dataclass(frozen=True)
class Block:
    """Raw text of consecutive input lines; ``first_line`` is the file line number of its first line.

    Blocks are cut only between records: for CSV a block never ends inside a quoted field (the
    count of quote characters is even), so workers can parse blocks independently.
    """

    first_line: int
    text: str


def read_header(path: Path) -> list[str] | None:
    """The CSV header (None for JSONL); CaseError when required columns are missing."""
    if _fmt(path) != "csv":
        return None
    with path.open(encoding="utf-8-sig", newline="") as fh:
        header = next(csv.reader(fh), None)
    if header is None:
        raise CaseError(f"{path.name}: 空文件")
    header = [h.strip() for h in header]
    missing = [c for c in ("case_id", "main_diagnosis") if c not in header]
    if missing:
        raise CaseError(f"{path.name}: 缺少必需列 {', '.join(missing)}")
    return header


def read_blocks(path: Path, size: int = CHUNK) -> Iterator[Block]:
    """Blocks of about ``size`` records (after the CSV header)."""
    quoted = _fmt(path) == "csv"
    with path.open(encoding="utf-8-sig", newline="") as fh:
        line_no = 1
        if quoted:
            first = fh.readline()  # the header, parsed by read_header
            while first.count('"') % 2:  # a header cell with a line break
                more = fh.readline()
                if not more:
                    break
                first += more
                line_no += 1
            line_no += 1
        while True:
            lines = list(islice(fh, size))
            if not lines:
                return
            text = "".join(lines)
            n = len(lines)
            if quoted:
                while text.count('"') % 2:
                    more = fh.readline()
                    if not more:
                        break
                    text += more
                    n += 1
            yield Block(line_no, text)
            line_no += n


# --- processing ----------------------------------------------------------------------------------
_WORKER_ENGINE = None


def _init_worker(engine) -> None:
    from dip_engine.workers import exit_with_parent

    global _WORKER_ENGINE
    exit_with_parent()
    _WORKER_ENGINE = engine


def _records(block: Block, header: list[str] | None) -> Iterator[tuple[int, dict | None, str | None]]:
    """(line, record, error) for each non-empty record of a block."""
    if header is None:
        for offset, text in enumerate(block.text.splitlines()):
            if not text.strip():
                continue
            try:
                rec = json.loads(text)
            except json.JSONDecodeError as exc:
                yield block.first_line + offset, None, f"JSON 格式错误: {exc.msg}"
                continue
            if not isinstance(rec, dict):
                yield block.first_line + offset, None, "JSON 行不是对象"
                continue
            yield block.first_line + offset, rec, None
        return
    reader = csv.reader(io.StringIO(block.text, newline=""))
    width = len(header)
    seen = 0  # csv's line_num of the last record read
    try:
        for cells in reader:
            line = block.first_line + seen
            seen = reader.line_num
            if not cells or not any(cells):
                continue
            if len(cells) != width:
                yield line, None, f"列数 {len(cells)} 与表头 {width} 不符"
                continue
            yield line, dict(zip(header, cells, strict=True)), None
    except csv.Error as exc:
        yield block.first_line + seen, None, f"CSV 格式错误: {exc}"


def process_block(
    engine, block: Block, header: list[str] | None, out_kind: str
) -> tuple[str, list[tuple[int, str]], Counter, int]:
    """Group one block: (formatted output, [(line, reason)], group-type counts, records seen)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n") if out_kind == "csv" else None
    errors: list[tuple[int, str]] = []
    types: Counter = Counter()
    seen = 0
    for line, rec, error in _records(block, header):
        seen += 1
        if rec is None:
            errors.append((line, error or "空记录"))
            continue
        try:
            row = output_record(engine, case_from_record(rec))
        except CaseError as exc:
            errors.append((line, str(exc)))
            continue
        except Exception as exc:  # never lose the rest of the file to one odd row
            errors.append((line, f"内部错误 {exc.__class__.__name__}: {str(exc)[:200]}"))
            continue
        types[row[2]] += 1
        if writer is not None:
            writer.writerow([cell_safe(v) for v in row])
        else:
            buf.write(json.dumps(dict(zip(OUTPUT_COLUMNS, row, strict=True)), ensure_ascii=False))
            buf.write("\n")
    return buf.getvalue(), errors, types, seen


def _worker_block(args):
    block, header, out_kind = args
    return process_block(_WORKER_ENGINE, block, header, out_kind)


def count_lines(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(buf.count(b"\n") for buf in iter(lambda: fh.read(1 << 20), b""))


def group_file(
    engine,
    input_path: Path,
    output_path: Path,
    workers: int | None = None,
    progress=None,
    chunk_size: int = CHUNK,
) -> BatchSummary:
    """Group every record of a case file into an output file; returns what happened.

    ``progress(n)`` is called with the number of input lines done after each block.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    header = read_header(input_path)
    out_kind = _fmt(output_path)
    summary = BatchSummary()
    if workers is None:
        workers = min(os.cpu_count() or 1, 4)
    blocks = read_blocks(input_path, chunk_size)
    with output_path.open("w", encoding="utf-8", newline="") as out:
        if out_kind == "csv":
            csv.writer(out, lineterminator="\n").writerow(OUTPUT_COLUMNS)

        def consume(results):
            for text, errors, types, seen, lines in results:
                out.write(text)
                summary.rows += seen
                summary.errors.extend(errors)
                summary.group_types.update(types)
                summary.written += sum(types.values())
                if progress is not None:
                    progress(lines)

        if workers <= 1:
            consume((*process_block(engine, b, header, out_kind), b.text.count("\n")) for b in blocks)
        else:
            method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
            ctx = mp.get_context(method)
            with ctx.Pool(workers, initializer=_init_worker, initargs=(engine,)) as pool:
                sizes: list[int] = []

                def feed():
                    for b in blocks:
                        sizes.append(b.text.count("\n"))
                        yield (b, header, out_kind)

                results = pool.imap(_worker_block, feed())
                consume((*r, sizes[i]) for i, r in enumerate(results))
    return summary
