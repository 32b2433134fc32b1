"""``dip-cds audit``: prepare the inputs, run the pipeline on the chosen engine, write the outputs."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from yb_audit import store
from yb_audit.batch import engine as pipeline
from yb_audit.batch.inputs import prepare_fees, prepare_stays
from yb_audit.batch.report import write_atomic, write_reports
from yb_audit.codes import local_maps_for, subject_of_code, value_tables
from yb_audit.model import RuleSet
from yb_audit.rulesets import enabled_rules
from yb_audit.settings import AuditSettings

ENGINES = ("duckdb", "spark")


def local_codes(home: Path | None) -> list[tuple[str, str]]:
    """Hospital item / drug codes → national codes from the local maps (codes mapped to two
    different national codes are left out: a fee line names no source system to tell them apart)."""
    targets: dict[str, set[str]] = {}
    for subject, maps in local_maps_for(home).items():
        for (_, code), entry in maps.entries.items():
            target = entry.target_code.strip().upper()
            if subject_of_code(target) == subject:
                targets.setdefault(code, set()).add(target)
    return sorted((code, next(iter(t))) for code, t in targets.items() if len(t) == 1)


def run_audit(
    fees: Path,
    stays: Path,
    output: Path,
    *,
    home: Path | None,
    settings: AuditSettings,
    engine: str = "duckdb",
    threads: int | None = None,
    memory_limit: str | None = None,
    hospital_level: int | None = None,
    rules: RuleSet | None = None,
    keep_work: bool = False,
) -> dict[str, Any]:
    """Audit ``fees`` against the active rules; returns the summary written to ``summary.json``."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}")
    started = time.perf_counter()
    rules = enabled_rules(rules if rules is not None else store.load_rules(home), settings.disabled_rules)
    tables = value_tables(home)
    work = output / "_work"
    if work.exists():
        shutil.rmtree(work)
    fee_file = prepare_fees(fees, work)
    stay_file = prepare_stays(stays, work)
    level = hospital_level if hospital_level is not None else settings.hospital_level
    prepared = time.perf_counter() - started
    if engine == "duckdb":
        from yb_audit.batch.duck import DuckRunner

        runner: Any = DuckRunner(work, threads, memory_limit)
        result = pipeline.run(runner, fee_file, stay_file, rules, settings, tables, local_codes(home), level)
        con = runner.con
    else:
        from yb_audit.batch.spark import SparkRunner

        runner = SparkRunner(work, threads)
        try:
            result = pipeline.run(
                runner, fee_file, stay_file, rules, settings, tables, local_codes(home), level
            )
            con = runner.export(("findings_full", "rejects", "unchecked", "stats"))
        finally:
            runner.stop()
    result.timings["read"] += prepared
    meta = {
        "费用明细文件": str(fees),
        "就诊信息文件": str(stays),
        "计算引擎": engine,
        "规则": "；".join(f"{s.name}（第 {s.version} 版）" if s.version else s.name for s in rules.sets),
        "规则条数": len(rules),
        "示例规则": rules.is_sample,
        "编码转换": [str(f.source) for f in (fee_file, stay_file) if f.converted],
        "医院等级": level,
        "儿童年龄上限（未满）": settings.child_age_limit,
        "第二及以后手术收费比例": str(settings.secondary_operation_rate),
        "timings": {k: round(v, 3) for k, v in result.timings.items()},
    }
    try:
        summary = write_reports(con, output, rules, settings, meta)
    finally:
        con.close()
        if not keep_work:
            shutil.rmtree(work, ignore_errors=True)
    summary["timings"]["total"] = round(time.perf_counter() - started, 3)
    write_atomic(output / "summary.json", json.dumps(summary, ensure_ascii=False, indent=2).encode("utf-8"))
    return summary
