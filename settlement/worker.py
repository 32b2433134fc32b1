"""Grouping worker: parse, group and price one chunk, then checkpoint it atomically.

A worker process builds the engine once (initializer) and then handles chunks. A chunk is complete
exactly when its case file exists: the rejects file is written first and both are renamed into
place only when fully written, so a run killed at any instant resumes without losing or
double-counting a case.
"""

from __future__ import annotations

import csv
import gc
import json
import os
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

from settlement.bridge import build_engine, make_case, price_case
from settlement.config import SettleConfig
from settlement.inputs import Chunk
from settlement.records import CASE_COLUMN_NAMES, build_record
from settlement.rows import RowError, canonical_header, parse_row

REJECT_COLUMNS = ("file_idx", "line", "case_id", "reason")


@dataclass(frozen=True)
class JobSpec:
    """Everything a worker needs; picklable so it crosses process boundaries."""

    home: str | None
    region: str | None
    config: SettleConfig
    period: str
    month: str | None
    work_dir: str


@dataclass(frozen=True)
class ChunkStats:
    file_idx: int
    chunk_idx: int
    rows: int
    accepted: int
    rejected: int
    seconds: float  # CPU seconds for the whole chunk
    read_seconds: float = 0.0  # of which reading + CSV/JSON splitting
    write_seconds: float = 0.0  # of which writing the checkpoint


_STATE: dict[str, Any] = {}


def ensure_engine(spec: JobSpec) -> Any:
    """Build the engine once per process (the catalog index is the expensive part)."""
    key = (spec.home, spec.region, _home_state(spec.home))
    if _STATE.get("engine_key") != key or "engine" not in _STATE:
        engine, _catalog = build_engine(spec.home, spec.region)
        _STATE["engine"] = engine
        _STATE["engine_key"] = key
    _STATE["spec"] = spec
    return _STATE["engine"]


def _home_state(home: str | None) -> tuple:
    """Modification stamps of the data home's catalogs, terminology and region rules: a change rebuilds
    the engine (and invalidates a checkpoint)."""
    if not home:
        return ()
    paths = [
        Path(home) / "catalogs.sqlite",
        Path(home) / "terminology.sqlite",  # the quality gate checks codes against it
        *sorted((Path(home) / "rules").glob("*.toml")),
    ]
    stamps = []
    for path in paths:
        try:
            stat = path.stat()
            stamps.append((path.name, stat.st_size, stat.st_mtime_ns))
        except OSError:
            continue
    return tuple(stamps)


def init_worker(spec: JobSpec) -> None:
    """Pool initializer: a forked worker inherits the parent's engine (else builds it), then
    ``gc.freeze`` keeps the catalog's long-lived objects out of every garbage collection. The
    worker exits when the parent dies (it would otherwise linger after a killed run)."""
    from dip_engine.workers import exit_with_parent

    exit_with_parent()
    ensure_engine(spec)
    gc.collect()
    gc.freeze()


def chunk_done(work_dir: str | Path, file_idx: int, chunk_idx: int) -> dict | None:
    """The stats of a checkpointed chunk, or None when it must be (re)processed."""
    path = chunk_paths(work_dir, file_idx, chunk_idx)[2]
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def chunk_paths(work_dir: str | Path, file_idx: int, chunk_idx: int) -> tuple[Path, Path, Path]:
    """(cases, rejects, stats) files of a chunk; the stats file is written last and marks completion."""
    base = Path(work_dir) / f"c{file_idx:04d}_{chunk_idx:06d}"
    return base.with_suffix(".cases.csv"), base.with_suffix(".rejects.csv"), base.with_suffix(".stats.json")


def _write_atomic(path: Path, header: tuple[str, ...], rows: list[tuple]) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _dicts(chunk: Chunk):
    """(line, dict keyed by canonical column names | error text) for each raw row."""
    if chunk.kind == "jsonl":
        for line, text in chunk.rows:
            try:
                data = json.loads(text)  # type: ignore[arg-type]
            except json.JSONDecodeError as exc:
                yield line, f"invalid JSON: {exc.msg} at column {exc.colno}"
                continue
            if not isinstance(data, dict):
                yield line, "JSON line is not an object"
                continue
            yield line, {canonical_header(k): _jsonish(v) for k, v in data.items()}
        return
    header = tuple(canonical_header(h) for h in chunk.header or ())
    width = len(header)
    for line, values in chunk.rows:
        cells = cast("list[str]", values)  # a CSV chunk holds each line's cells
        if len(cells) != width:
            yield line, f"expected {width} fields, found {len(cells)}"
            continue
        yield line, dict(zip(header, cells, strict=True))


def _jsonish(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "|".join(str(v) for v in value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def process_rows(chunk: Chunk, engine: Any, spec: JobSpec) -> tuple[list[tuple], list[tuple]]:
    """Pure-ish core: (case records, rejects) for one chunk, with the given engine."""
    from grouper import Case

    config = spec.config
    gc_was_enabled = gc.isenabled()
    gc.disable()  # millions of short-lived objects, no cycles: reference counting frees them
    try:
        return _process_rows(chunk, engine, spec, config, Case)
    finally:
        if gc_was_enabled:
            gc.enable()


def _process_rows(chunk: Chunk, engine: Any, spec: JobSpec, config: SettleConfig, Case) -> tuple[list, list]:  # noqa: N803
    records: list[tuple] = []
    rejects: list[tuple] = []
    chunk = chunk.materialize()
    suspect = chunk.suspect_bytes
    budget_cache: dict[str, Decimal | None] = {}
    for line, data in _dicts(chunk):
        if isinstance(data, str):
            rejects.append((chunk.file_idx, line, "", data))
            continue
        if suspect and any("\ufffd" in v for v in data.values() if v):
            rejects.append(
                (chunk.file_idx, line, str(data.get("case_id") or "")[:64], "invalid UTF-8 bytes in the row")
            )
            continue
        case_id = str(data.get("case_id") or "")[:64]
        try:
            row = parse_row(data)
        except RowError as exc:
            rejects.append((chunk.file_idx, line, case_id, str(exc)))
            continue
        fund = config.fund_for(row.insurance_type, row.fund_type)
        if fund is None:
            rejects.append(
                (
                    chunk.file_idx,
                    line,
                    case_id,
                    f"insurance_type {row.insurance_type or '(empty)'!r} matches no configured fund",
                )
            )
            continue
        try:
            priced = price_case(engine, make_case(row, Case))
        except Exception as exc:  # noqa: BLE001 - one bad case must not stop a city-year run
            rejects.append(
                (chunk.file_idx, line, case_id, f"grouping failed: {type(exc).__name__}: {exc}"[:300])
            )
            continue
        if fund.key not in budget_cache:
            budget_cache[fund.key] = fund.year_start_point_value()
        budget_pv, budget_source = budget_cache[fund.key], "settle.toml"
        if budget_pv is None and priced.point_value is not None:
            # the engine's point value (region rules, else estimated from the catalog), labelled in the report
            budget_pv, budget_source = priced.point_value, priced.point_value_source or "engine"
        records.append(
            build_record(
                chunk.file_idx,
                line,
                row,
                priced,
                fund.key,
                fund.payment_ratio,
                budget_pv,
                budget_source,
                config,
                spec.period,
                spec.month,
            )
        )
    return records, rejects


def process_chunk(chunk: Chunk) -> ChunkStats:
    """Worker entry point: group a chunk and checkpoint it (idempotent: rewriting gives the same bytes)."""
    started = time.process_time()
    spec: JobSpec = _STATE["spec"]
    chunk = chunk.materialize()
    read_seconds = time.process_time() - started
    records, rejects = process_rows(chunk, _STATE["engine"], spec)
    write_started = time.process_time()
    cases_path, rejects_path, stats_path = chunk_paths(spec.work_dir, chunk.file_idx, chunk.chunk_idx)
    _write_atomic(rejects_path, REJECT_COLUMNS, rejects)
    _write_atomic(cases_path, CASE_COLUMN_NAMES, records)
    stats = ChunkStats(
        chunk.file_idx,
        chunk.chunk_idx,
        len(records) + len(rejects),
        len(records),
        len(rejects),
        time.process_time() - started,
        read_seconds,
        time.process_time() - write_started,
    )
    tmp = stats_path.with_name(stats_path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps({"rows": stats.rows, "accepted": stats.accepted, "rejected": stats.rejected}))
    os.replace(tmp, stats_path)
    return stats
