"""``--engine spark``: the same settlement on Apache Spark (PySpark), for province-scale batches.

Grouping runs in ``mapInPandas`` with the shared engine (built once per Python worker) and the same
per-case code as the embedded run (:func:`settlement.worker.process_rows`); dedupe, trimming,
fund totals and the largest-remainder distribution of cents run as Spark SQL over exact integers
and DECIMAL(38,0), so the result equals the embedded engine's to the cent. The settled case table
is written as Parquet and the shared report writer (DuckDB over that Parquet) produces the outputs.

Limits of this path: UTF-8 input only, CSV rows must not contain line breaks inside quoted fields (records are read
as text lines so line numbers are exact), XLSX inputs must be converted to CSV first, and Spark's
own task recovery replaces the embedded run's chunk checkpoints.
"""

from __future__ import annotations

import csv
import os
import shutil
import sys
import time
from decimal import Decimal
from pathlib import Path

from settlement import aggregate, worker
from settlement.inputs import Chunk, file_kind
from settlement.period import ANNUAL, FundTotals
from settlement.records import CASE_COLUMNS
from settlement.rows import canonical_header

_ENGINES: dict = {}


def _spark_type(sql_type: str):
    from pyspark.sql import types as T

    if sql_type.startswith("DECIMAL"):
        p, s = sql_type[8:-1].split(",")
        return T.DecimalType(int(p), int(s))
    return {"INTEGER": T.IntegerType(), "BIGINT": T.LongType(), "VARCHAR": T.StringType()}[sql_type]


def _schema():
    from pyspark.sql import types as T

    fields = [T.StructField("rec_type", T.StringType())]
    fields += [T.StructField(name, _spark_type(typ)) for name, typ in CASE_COLUMNS]
    return T.StructType(fields)


def _header_of(path: Path) -> tuple[list[str] | None, int]:
    """(CSV header or None for JSONL, 1-based number of the first line that may hold data).

    Like the embedded reader: leading blank and ``#`` comment lines are skipped, then the header.
    """
    is_csv = file_kind(path) == "csv"
    with path.open(encoding="utf-8-sig", newline="") as fh:
        for number, line in enumerate(fh, start=1):
            if line.strip() and not line.startswith("#"):
                return (next(csv.reader([line])), number + 1) if is_csv else (None, number)
    return None, 1


def _group_partition(spec: worker.JobSpec, headers: dict[int, list[str] | None]):
    """The mapInPandas function: raw lines → case records and rejects (rec_type 'case' / 'reject')."""
    decimal_cols = {name for name, typ in CASE_COLUMNS if typ.startswith("DECIMAL")}
    int_cols = {name for name, typ in CASE_COLUMNS if typ in ("INTEGER", "BIGINT")}
    names = [name for name, _ in CASE_COLUMNS]
    reason_at = 1 + names.index("reason")  # after rec_type

    def convert(name: str, value):
        if value == "" or value is None:
            return None
        if name in decimal_cols:
            return Decimal(str(value))
        if name in int_cols:
            return int(value)
        return str(value)

    def run(batches):
        import pandas as pd

        key = (spec.home, spec.region)
        if key not in _ENGINES:
            _ENGINES[key] = worker.build_engine(spec.home, spec.region)[0]
        engine = _ENGINES[key]
        for pdf in batches:
            by_file: dict[int, list] = {}
            for file_idx, line, text in zip(pdf["file_idx"], pdf["line"], pdf["value"], strict=True):
                by_file.setdefault(int(file_idx), []).append((int(line), text))
            out = []
            for file_idx, rows in by_file.items():
                header = headers.get(file_idx)
                if header is None:
                    chunk = Chunk(file_idx, 0, "jsonl", None, rows)
                else:
                    parsed = [(line, next(csv.reader([text]))) for line, text in rows]
                    parsed = [
                        (line, values) for line, values in parsed if any(values)
                    ]  # as the embedded reader
                    chunk = Chunk(file_idx, 0, "table", tuple(header), parsed)
                records, rejects = worker.process_rows(chunk, engine, spec)
                for rec in records:
                    out.append(["case", *(convert(n, v) for n, v in zip(names, rec, strict=True))])
                for f_idx, line, case_id, reason in rejects:
                    row = ["reject"] + [None] * len(names)
                    row[1], row[2], row[3], row[reason_at] = f_idx, line, case_id, reason
                    out.append(row)
            yield pd.DataFrame(out, columns=["rec_type", *names])

    return run


def _lines(spark, path: Path, file_idx: int, first_data_line: int):
    """(file_idx, line, value) for the non-blank data lines of one file, line numbers 1-based as in the file."""
    from pyspark.sql import Row

    rdd = spark.sparkContext.textFile(str(path)).zipWithIndex()

    def keep(pair):
        text, index = pair
        return index + 1 >= first_data_line and bool(text.strip())

    rows = rdd.filter(keep).map(lambda p: Row(file_idx=file_idx, line=p[1] + 1, value=p[0].lstrip("\ufeff")))
    return spark.createDataFrame(rows, "file_idx INT, line BIGINT, value STRING")


def run(opts, spec: worker.JobSpec, mode: str, chunk_size: int):
    """Group and settle on Spark; returns (duckdb connection with table ``settled``, inputs info, timings)."""
    from pyspark.sql import SparkSession

    started = time.perf_counter()
    workers = max(1, opts.workers or 2)
    # Python workers must run this interpreter (the one with dip-cds and its engine installed)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    spark = (
        SparkSession.builder.master(f"local[{workers}]")
        .appName("dip-cds settle")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", str(max(workers * 2, 2)))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.pyspark.python", sys.executable)
        .getOrCreate()
    )
    spark_dir = opts.output / "_spark"
    shutil.rmtree(spark_dir, ignore_errors=True)
    try:
        headers: dict[int, list[str] | None] = {}
        frames = []
        for idx, path in enumerate(opts.inputs):
            if file_kind(path) == "xlsx":
                raise ValueError("the Spark engine reads CSV/JSONL; convert XLSX inputs to CSV first")
            header, first_data_line = _header_of(path)
            headers[idx] = [canonical_header(h) for h in header] if header else None
            frames.append(_lines(spark, path, idx, first_data_line))
        lines = frames[0]
        for other in frames[1:]:
            lines = lines.unionByName(other)
        read_s = time.perf_counter() - started
        group_started = time.perf_counter()
        out = lines.repartition(max(workers * 2, 2)).mapInPandas(_group_partition(spec, headers), _schema())
        out = out.localCheckpoint()
        # records + rejects, counted like the embedded run (blank and all-empty rows are skipped)
        rows_in = out.count()
        rejects = [
            (r["file_idx"], r["line"], r["case_id"] or "", r["reason"])
            for r in out.filter("rec_type = 'reject'")
            .select("file_idx", "line", "case_id", "reason")
            .collect()
        ]
        raw = out.filter("rec_type = 'case'").drop("rec_type")
        raw.createOrReplaceTempView("raw")
        group_s = time.perf_counter() - group_started

        agg_started = time.perf_counter()
        duplicates, plans = _settle_sql(spark, opts, mode)
        settled_path = spark_dir / "settled"
        spark.table("settled").write.mode("overwrite").parquet(str(settled_path))
        spark.table("cases").write.mode("overwrite").parquet(str(spark_dir / "cases"))
    finally:
        spark.stop()
    con = aggregate.connect(workers, temp_dir=spark_dir / "duckdb.tmp")
    for name in ("cases", "settled"):
        con.execute(
            f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM read_parquet(?) ORDER BY file_idx, line",
            [str(spark_dir / name / "*.parquet")],
        )
    return (
        con,
        {"rows_in": rows_in, "rejects": rejects, "duplicates": duplicates, "plans": plans},
        {"read_s": read_s, "group_wall_s": group_s, "spark_aggregate_s": time.perf_counter() - agg_started},
    )


def _settle_sql(spark, opts, mode: str):
    """Dedupe, trimming, fund totals and payments in Spark SQL (mirrors settlement.aggregate)."""
    from settlement.aggregate import BASIS_DIP, BASIS_OUTSIDE, BASIS_TRIMMED
    from settlement.period import trim_counts

    config = opts.config
    spark.sql(
        """CREATE OR REPLACE TEMP VIEW ranked AS SELECT *, row_number() OVER (PARTITION BY case_id
           ORDER BY file_idx, line) AS dup_rank FROM raw"""
    )
    duplicates = [
        (r[0], r[1], r[2], r[3])
        for r in spark.sql(
            """SELECT r.file_idx, r.line, r.case_id, concat('duplicate case_id (first in file ', f.file_idx,
               ' line ', f.line, ')') FROM ranked r JOIN ranked f ON f.case_id = r.case_id AND f.dup_rank = 1
               WHERE r.dup_rank > 1 ORDER BY r.file_idx, r.line"""
        ).collect()
    ]
    spark.sql("SELECT * FROM ranked WHERE dup_rank = 1").drop(
        "dup_rank"
    ).localCheckpoint().createOrReplaceTempView("cases")
    limits = []
    if config.trim == "quantile":
        for r in spark.sql(
            "SELECT fund, count(*) AS n FROM cases WHERE in_period = 1 AND grouped = 1 AND cost_ratio IS NOT NULL "
            "GROUP BY fund"
        ).collect():
            limits.append((r["fund"], *trim_counts(r["n"], *config.trim_quantiles)))
    spark.createDataFrame(
        limits or [("", -1, -1)], "fund STRING, below BIGINT, above BIGINT"
    ).createOrReplaceTempView("trim_limits")
    spark.sql(
        f"""SELECT r.*, CASE WHEN r.grouped = 0 THEN r.{BASIS_OUTSIDE}
                 WHEN t.fund IS NOT NULL AND (r.lo_rank <= t.below OR r.hi_rank <= t.above) THEN '{BASIS_TRIMMED}'
                 ELSE '{BASIS_DIP}' END AS basis
        FROM (
            SELECT c.*, CASE WHEN c.grouped = 1 AND c.cost_ratio IS NOT NULL THEN
                row_number() OVER (PARTITION BY c.fund, (c.grouped = 1 AND c.cost_ratio IS NOT NULL)
                                   ORDER BY c.cost_ratio, c.case_id) END AS lo_rank,
              CASE WHEN c.grouped = 1 AND c.cost_ratio IS NOT NULL THEN
                row_number() OVER (PARTITION BY c.fund, (c.grouped = 1 AND c.cost_ratio IS NOT NULL)
                                   ORDER BY c.cost_ratio DESC, c.case_id DESC) END AS hi_rank
            FROM cases c WHERE c.in_period = 1
        ) r LEFT JOIN trim_limits t ON t.fund = r.fund"""
    ).drop("lo_rank", "hi_rank").localCheckpoint().createOrReplaceTempView("eligible")

    totals = {}
    for r in spark.sql(
        f"""SELECT fund,
            count(CASE WHEN basis = '{BASIS_DIP}' THEN 1 END) AS dip_cases,
            coalesce(sum(CASE WHEN basis = '{BASIS_DIP}' THEN CAST(settle_units AS DECIMAL(38,0)) END), 0) AS units,
            count(CASE WHEN basis <> '{BASIS_DIP}' THEN 1 END) AS outside,
            coalesce(sum(CASE WHEN basis <> '{BASIS_DIP}' THEN CAST(outside_cents AS DECIMAL(38,0)) END), 0) AS oc,
            coalesce(sum(CASE WHEN basis <> '{BASIS_DIP}' THEN CAST(outside_fund_cents AS DECIMAL(38,0)) END), 0) AS ofc
        FROM eligible GROUP BY fund"""
    ).collect():
        totals[r["fund"]] = FundTotals(
            r["fund"], int(r["dip_cases"]), int(r["units"]), int(r["outside"]), int(r["oc"]), int(r["ofc"])
        )

    budget_pv = _budget_point_values(spark, config)
    plans = aggregate.make_plans(config, totals, mode, budget_pv)
    rows = [
        (p.fund, p.dip_share_cents or 0, p.fund_share_cents or 0, p.totals.dip_units, True)
        if p.mode == ANNUAL and p.problem is None
        else (p.fund, 0, 0, 0, False)
        for p in plans
    ]
    spark.createDataFrame(
        [(f, Decimal(t), Decimal(fc), Decimal(s), a) for f, t, fc, s, a in rows]
        or [("", Decimal(0), Decimal(0), Decimal(0), False)],
        "fund STRING, t DECIMAL(38,0), f DECIMAL(38,0), s DECIMAL(38,0), annual BOOLEAN",
    ).createOrReplaceTempView("plan")
    spark.sql(
        f"""SELECT case_id,
                CAST(dt + CASE WHEN kt <= lt THEN 1 ELSE 0 END AS BIGINT) AS dip_cents,
                CAST(df + CASE WHEN kf <= lf THEN 1 ELSE 0 END AS BIGINT) AS fund_cents
        FROM (
            SELECT *, t - sum(dt) OVER (PARTITION BY fund) AS lt, f - sum(df) OVER (PARTITION BY fund) AS lf,
                row_number() OVER (PARTITION BY fund ORDER BY rt DESC, case_id) AS kt,
                row_number() OVER (PARTITION BY fund ORDER BY rf DESC, case_id) AS kf
            FROM (
                SELECT *, CAST((nt - nt % s) / s AS DECIMAL(38,0)) AS dt, nt % s AS rt,
                          CAST((nf - nf % s) / s AS DECIMAL(38,0)) AS df, nf % s AS rf
                FROM (
                    SELECT e.case_id, e.fund, p.t, p.f, p.s,
                           CAST(e.settle_units AS DECIMAL(38,0)) * p.t AS nt,
                           CAST(e.settle_units AS DECIMAL(38,0)) * p.f AS nf
                    FROM eligible e JOIN plan p ON p.fund = e.fund
                    WHERE p.annual AND e.basis = '{BASIS_DIP}'
                ) b
            ) q
        ) w"""
    ).createOrReplaceTempView("shares")
    spark.sql(
        f"""SELECT e.*,
            CASE WHEN e.basis <> '{BASIS_DIP}' THEN e.outside_cents
                 WHEN s.case_id IS NOT NULL THEN s.dip_cents ELSE e.budget_dip_cents END AS dip_cents,
            CASE WHEN e.basis <> '{BASIS_DIP}' THEN e.outside_fund_cents
                 WHEN s.case_id IS NOT NULL THEN s.fund_cents ELSE e.budget_fund_cents END AS fund_cents
        FROM eligible e LEFT JOIN shares s ON s.case_id = e.case_id"""
    ).createOrReplaceTempView("settled")
    return duplicates, plans


def _budget_point_values(spark, config) -> dict:
    def engine_values(fund):
        return spark.sql(
            f"SELECT DISTINCT budget_pv, pv_source FROM eligible WHERE fund = '{fund.key.replace(chr(39), '')}' "
            "AND budget_pv IS NOT NULL ORDER BY budget_pv"
        ).collect()

    return {fund.key: aggregate.year_start_point_value(fund, engine_values) for fund in config.funds}
