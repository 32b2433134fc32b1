"""Orchestration of ``dip-cds settle``: read → group in parallel (checkpointed) → aggregate → report.

Checkpoints live in ``<output>/_checkpoint``: a manifest naming the exact inputs (content hashes),
configuration, region and period, and one atomically written file pair per input chunk. Rerunning
with the same arguments skips the chunks already done, so an interrupted run resumes without losing
or double-counting cases, and a completed run is idempotent. Changing any input or parameter
invalidates the checkpoint.
"""

from __future__ import annotations

import csv
import gc
import json
import multiprocessing
import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from settlement import aggregate, reports, worker
from settlement.config import ConfigError, SettleConfig
from settlement.inputs import Chunk, check_columns, estimate_rows, file_kind, fingerprint, plan_chunks
from settlement.period import ANNUAL, ESTIMATE, MODE_LABELS, MONTHLY
from settlement.records import CASE_COLUMN_NAMES

CHECKPOINT_VERSION = 2  # 2: per-case quality-gate findings and the payment of cases without a group


@dataclass
class RunOptions:
    inputs: list[Path]
    output: Path
    config: SettleConfig
    period: str
    month: str | None = None
    region: str | None = None
    home: Path | None = None
    engine: str = "embedded"
    workers: int | None = None
    progress: bool = True
    chunk_size: int | None = None
    clean_checkpoint: bool = False  # remove the chunk files after a run whose checks all pass


@dataclass
class RunReport:
    result: aggregate.PeriodResult
    outputs: list[Path]
    timings: dict[str, float]
    chunks_total: int = 0
    chunks_resumed: int = 0
    catalog_label: str = ""
    notes: list[str] = field(default_factory=list)


def settlement_mode(config: SettleConfig, month: str | None) -> str:
    if month:
        return MONTHLY
    with_budget = [f.budget is not None for f in config.funds]
    if all(with_budget):
        return ANNUAL
    if any(with_budget):
        missing = ", ".join(f.key for f in config.funds if f.budget is None)
        raise ConfigError(f"annual settlement needs a budget for every fund; missing: {missing}")
    return ESTIMATE


def _manifest(opts: RunOptions, chunk_size: int) -> dict:
    return {
        "version": CHECKPOINT_VERSION,
        "columns": list(CASE_COLUMN_NAMES),
        "inputs": [{"path": str(p), "sha256": fingerprint(p)} for p in opts.inputs],
        "config": opts.config.fingerprint(),
        "region": opts.region,
        "period": opts.period,
        "month": opts.month,
        "chunk_size": chunk_size,
        "home": str(opts.home) if opts.home else None,
    }


def prepare_checkpoint(work_dir: Path, manifest: dict) -> bool:
    """True when an existing checkpoint matches; a stale one is cleared (only our own chunk files)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / "manifest.json"
    for leftover in work_dir.glob("*.tmp*"):  # half-written files of a killed run
        leftover.unlink()
    if path.exists():
        try:
            if json.loads(path.read_text(encoding="utf-8")) == manifest:
                return True
        except (OSError, json.JSONDecodeError):
            pass
    for stale in work_dir.glob("c*_*.*"):
        stale.unlink()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp, path)
    return False


class _TimedChunks:
    """Iterates all input chunks, measuring the time the parent spends planning/reading them."""

    def __init__(self, opts: RunOptions, chunk_size: int) -> None:
        self.opts, self.chunk_size, self.seconds = opts, chunk_size, 0.0

    def __iter__(self) -> Iterator[Chunk]:
        for idx, path in enumerate(self.opts.inputs):
            it = plan_chunks(idx, path, self.chunk_size)
            while True:
                started = time.perf_counter()
                try:
                    chunk = next(it)
                except StopIteration:
                    self.seconds += time.perf_counter() - started
                    break
                self.seconds += time.perf_counter() - started
                yield chunk


def _progress(opts: RunOptions, total: int):
    from tqdm import tqdm

    return tqdm(
        total=total,
        unit="例",
        unit_scale=True,
        desc="分组与计价",
        disable=not opts.progress,
        dynamic_ncols=True,
        mininterval=0.5,
    )


def group_all(opts: RunOptions, spec: worker.JobSpec, chunk_size: int) -> dict:
    """Run the grouping workers over every chunk not yet checkpointed; returns counts and timings."""
    workers = max(1, opts.workers or os.cpu_count() or 1)
    reader = _TimedChunks(opts, chunk_size)
    total_rows = sum(estimate_rows(p) for p in opts.inputs)
    rows_in = chunks = resumed = 0
    worker_seconds = worker_read = worker_write = 0.0
    started = time.perf_counter()
    bar = _progress(opts, total_rows)

    def finished(stats: worker.ChunkStats) -> None:
        nonlocal rows_in, worker_seconds, worker_read, worker_write
        rows_in += stats.rows
        worker_seconds += stats.seconds
        worker_read += stats.read_seconds
        worker_write += stats.write_seconds
        bar.update(stats.rows)

    def already_done(chunk: Chunk) -> bool:
        nonlocal rows_in, resumed
        done = worker.chunk_done(spec.work_dir, chunk.file_idx, chunk.chunk_idx)
        if done is None:
            return False
        resumed += 1
        rows_in += int(done["rows"])
        bar.update(int(done["rows"]))
        return True

    try:
        if workers == 1:
            worker.ensure_engine(spec)
            gc.collect()
            gc.freeze()
            try:
                for chunk in reader:
                    chunks += 1
                    if not already_done(chunk):
                        finished(worker.process_chunk(chunk))
            finally:
                gc.unfreeze()
        else:
            context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
            with ProcessPoolExecutor(
                workers, mp_context=context, initializer=worker.init_worker, initargs=(spec,)
            ) as pool:
                pending: set = set()
                for chunk in reader:
                    chunks += 1
                    if already_done(chunk):
                        continue
                    while len(pending) >= workers * 2:
                        done, pending = wait(pending, return_when=FIRST_COMPLETED)
                        for fut in done:
                            finished(fut.result())
                    pending.add(pool.submit(worker.process_chunk, chunk))
                for fut in pending:
                    finished(fut.result())
    finally:
        bar.close()
    return {
        "rows_in": rows_in,
        "chunks": chunks,
        "resumed": resumed,
        "read_s": reader.seconds,
        "group_wall_s": time.perf_counter() - started,
        "worker_cpu_s": worker_seconds,
        "worker_read_cpu_s": worker_read,
        "worker_write_cpu_s": worker_write,
        "workers": workers,
    }


def collect_rejects(work_dir: Path) -> list[tuple]:
    rejects: list[tuple] = []
    for path in sorted(work_dir.glob("c*.rejects.csv")):
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh)
            next(reader, None)
            rejects.extend((int(r[0]), int(r[1]), r[2], r[3]) for r in reader)
    return rejects


def report_meta(opts: RunOptions, mode: str, catalog_label: str, synthetic: int, settled: int) -> dict:
    title_period = opts.month or opts.period
    meta = {
        "标题": f"DIP{MODE_LABELS[mode]}报告 {title_period}",
        "统筹区": opts.region or "(默认)",
        "分组目录": catalog_label,
        "结算期间": opts.period,
        "月份": opts.month or "",
        "结算方式": MODE_LABELS[mode],
        "配置文件": opts.config.source,
        "分位数修剪": "否"
        if opts.config.trim == "none"
        else f"是({opts.config.trim_quantiles[0]}–{opts.config.trim_quantiles[1]},区间外病例按项目结算)",
        "预付比例": str(opts.config.prepayment_ratio) if mode == MONTHLY else "",
        "输入文件": "; ".join(p.name for p in opts.inputs),
        "计算引擎": opts.engine,
    }
    if synthetic:
        meta["数据说明"] = (
            f"注意:本期 {settled} 例中有 {synthetic} 例为合成数据(dip-cds synth 生成),仅供测试和演示。"
        )
    return meta


def run_settlement(opts: RunOptions) -> RunReport:
    """The whole run; raises ConfigError / InputError for unusable arguments before doing any work."""
    from settlement.rows import REQUIRED, canonical_header

    for path in opts.inputs:
        file_kind(path)
        if not path.is_file():
            from settlement.inputs import InputError

            raise InputError(f"input file not found: {path}")
        check_columns(path, REQUIRED, canonical_header)
    mode = settlement_mode(opts.config, opts.month)
    chunk_size = opts.chunk_size or opts.config.chunk_size
    opts.output.mkdir(parents=True, exist_ok=True)
    work_dir = opts.output / "_checkpoint"
    timings: dict[str, float] = {}
    started = time.perf_counter()
    spec = worker.JobSpec(
        home=str(opts.home) if opts.home else None,
        region=opts.region,
        config=opts.config,
        period=opts.period,
        month=opts.month,
        work_dir=str(work_dir),
    )
    # Build the engine once in the parent: forked workers inherit it (copy-on-write) instead of reloading.
    engine_started = time.perf_counter()
    worker.ensure_engine(spec)
    catalog_label = _catalog_label(opts)
    timings["engine_load_s"] = time.perf_counter() - engine_started
    manifest = _manifest(opts, chunk_size)
    manifest["engine"] = _engine_identity()
    prepare_checkpoint(work_dir, manifest)

    if opts.engine == "spark":
        from settlement import spark_engine

        con, counts_in, group_stats = spark_engine.run(opts, spec, mode, chunk_size)
        timings.update(group_stats)
    else:
        group_stats = group_all(opts, spec, chunk_size)
        timings.update({k: v for k, v in group_stats.items() if k.endswith("_s")})
        timings["workers"] = group_stats["workers"]
        agg_started = time.perf_counter()
        con = aggregate.connect(group_stats["workers"], temp_dir=work_dir / "duckdb.tmp")
        aggregate.load_chunks(con, work_dir)
        timings["load_chunks_s"] = time.perf_counter() - agg_started
    agg_started = time.perf_counter()
    rejects = collect_rejects(work_dir) if opts.engine != "spark" else counts_in["rejects"]
    rows_in = group_stats["rows_in"] if opts.engine != "spark" else counts_in["rows_in"]
    if opts.engine != "spark":
        duplicates = aggregate.dedupe(con)
        aggregate.mark_basis(con, opts.config)
        totals = aggregate.fund_totals(con)
        budget_pv = aggregate.budget_point_values(con, opts.config)
        plans = aggregate.make_plans(opts.config, totals, mode, budget_pv)
        aggregate.allocate(con, plans)
    else:
        duplicates, plans = counts_in["duplicates"], counts_in["plans"]
    counts = aggregate.case_counts(con, rows_in, len(rejects), len(duplicates))
    result = aggregate.summarize(con, opts.config, mode, plans, counts, duplicates)
    result.payment_rules = _payment_rules()
    timings["aggregate_s"] = time.perf_counter() - agg_started + timings.get("load_chunks_s", 0.0)

    report_started = time.perf_counter()
    synthetic = con.execute("SELECT count(*) FROM settled WHERE synthetic = 1").fetchone()[0]
    meta = report_meta(opts, mode, catalog_label, int(synthetic), counts["settled"])
    meta["未入组病例支付"] = result.payment_rules["ungrouped"]
    meta["结算清单质控不通过病例支付"] = result.payment_rules["rejected"]
    sources = [str(p) for p in opts.inputs]
    outputs = reports.write_all(con, opts.output, result, meta, rejects, sources)
    con.close()
    timings["report_s"] = time.perf_counter() - report_started
    timings["total_s"] = time.perf_counter() - started
    _write_json_atomic(work_dir / "last-run.json", {"timings": timings, "counts": result.counts})
    if opts.clean_checkpoint and result.ok:
        for path in work_dir.iterdir():
            if path.name != "last-run.json":
                shutil.rmtree(path) if path.is_dir() else path.unlink()
    return RunReport(
        result=result,
        outputs=outputs,
        timings=timings,
        chunks_total=int(group_stats.get("chunks", 0)),
        chunks_resumed=int(group_stats.get("resumed", 0)),
        catalog_label=catalog_label,
    )


def _payment_rules() -> dict[str, str]:
    """What the region's rules pay for cases without a group, in words (every report states it)."""
    from dip_engine.rules import PAYMENT_RULES

    rules = worker._STATE["engine"].rules
    return {
        "ungrouped": PAYMENT_RULES[rules.ungrouped_payment],
        "rejected": PAYMENT_RULES[rules.rejected_payment],
    }


def _engine_identity() -> dict:
    """What the checkpointed per-case results depend on besides the inputs: catalog and region rules."""
    engine = worker._STATE.get("engine")
    catalog = getattr(engine, "catalog", None)
    rules = getattr(engine, "rules", None)
    files = []
    for source in getattr(rules, "sources", ()) or ():
        try:
            stat = Path(source).stat()
            files.append([str(source), stat.st_size, stat.st_mtime_ns])
        except OSError:
            files.append([str(source), None, None])
    spec = worker._STATE.get("spec")
    return {
        "catalog": getattr(catalog, "label", ""),
        "home_files": [list(stamp) for stamp in worker._home_state(spec.home if spec else None)],
        "region": getattr(catalog, "region", ""),
        "groups": len(getattr(catalog, "groups", ()) or ()),
        "source": str(getattr(catalog, "source", "")),
        "rules": files,
    }


def _write_json_atomic(path: Path, data: dict) -> None:
    """Run diagnostics (timings) live beside the checkpoints, never in the byte-stable reports."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    os.replace(tmp, path)


def _catalog_label(opts: RunOptions) -> str:
    engine = worker._STATE.get("engine")
    catalog = getattr(engine, "catalog", None)
    label = getattr(catalog, "label", "") if catalog is not None else ""
    return label or (opts.region or "")
