"""``--engine spark``: the same statements on Apache Spark (local mode here; a cluster via SPARK_MASTER).

Lines are read with ``textFile`` + ``zipWithIndex`` so line numbers are the file's own; lines with
quotes are parsed by Python's csv module in ``mapInPandas`` (as the embedded engine does). Each
statement's result is a local checkpoint (in the executors' storage, spilling to disk); the results
the report needs are written as Parquet and read by DuckDB, which writes the outputs exactly as for
the embedded engine.
"""

from __future__ import annotations

import os
import sys
from decimal import Decimal
from pathlib import Path

from yb_audit.batch import sql
from yb_audit.batch.inputs import TableFile, parse_quoted


def _spark_type(sql_type: str):
    from pyspark.sql import types as T

    if sql_type.startswith("DECIMAL"):
        precision, scale = sql_type[8:-1].split(",")
        return T.DecimalType(int(precision), int(scale))
    return {
        "STRING": T.StringType(),
        "INT": T.IntegerType(),
        "BIGINT": T.LongType(),
        "INTEGER": T.IntegerType(),
    }[sql_type]


class SparkRunner:
    dialect = sql.SPARK

    def __init__(self, work: Path, threads: int | None = None) -> None:
        from pyspark.sql import SparkSession

        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        work.mkdir(parents=True, exist_ok=True)
        self.work = work
        master = os.environ.get("SPARK_MASTER") or f"local[{threads or 2}]"
        self.spark = (
            SparkSession.builder.master(master)
            .appName("dip-cds-yb-audit")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.shuffle.partitions", str(max(2, (threads or 2) * 2)))
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.ansi.enabled", "false")
            .config("spark.sql.constraintPropagation.enabled", "false")
            .config("spark.local.dir", str(work / "spark-local"))
            .config("spark.driver.memory", os.environ.get("SPARK_DRIVER_MEMORY", "2g"))
            .getOrCreate()
        )
        self.spark.sparkContext.setLogLevel("ERROR")
        self._cached: list = []

    def register(self, name: str, columns: tuple[tuple[str, str], ...], rows: list[tuple]) -> None:
        from pyspark.sql import types as T

        schema = T.StructType([T.StructField(c, _spark_type(t)) for c, t in columns])
        clean = [tuple(Decimal(v) if isinstance(v, Decimal) else v for v in row) for row in rows]
        self.spark.createDataFrame(clean, schema).createOrReplaceTempView(name)

    def sources(self, table: TableFile, prefix: str) -> None:
        from pyspark.sql import Row
        from pyspark.sql import types as T

        first = table.first_data_line
        lines = (
            self.spark.sparkContext.textFile(str(table.path))
            .zipWithIndex()
            .filter(lambda pair: pair[1] + 1 >= first)
            .map(lambda pair: Row(line=pair[1] + 1, value=pair[0].rstrip("\r")))
        )
        schema = T.StructType([T.StructField("line", T.LongType()), T.StructField("value", T.StringType())])
        src = self.spark.createDataFrame(lines, schema)
        src.createOrReplaceTempView(f"{prefix}src")
        ncols = table.ncols
        out_schema = T.StructType(
            [T.StructField("line", T.LongType()), T.StructField("ncols", T.IntegerType())]
            + [T.StructField(f"c{i}", T.StringType()) for i in range(1, ncols + 1)]
        )

        def parse(batches):
            import pandas as pd

            for pdf in batches:
                rows = []
                for line, count, fields in parse_quoted(list(zip(pdf["line"], pdf["value"], strict=True))):
                    rows.append([int(line), count, *(fields + [None] * ncols)[:ncols]])
                yield pd.DataFrame(rows, columns=["line", "ncols", *(f"c{i}" for i in range(1, ncols + 1))])

        quoted = src.filter("instr(value, '\"') > 0").mapInPandas(parse, out_schema)
        quoted.createOrReplaceTempView(f"{prefix}quoted")

    def materialise(self, name: str, statement: str) -> None:
        """Computed now and cut from its lineage (a local checkpoint), so later statements plan
        against a plain table instead of the whole chain before it."""
        frame = self.spark.sql(statement).localCheckpoint(eager=True)
        frame.createOrReplaceTempView(name)
        self._cached.append(frame)

    def view(self, name: str, statement: str) -> None:
        self.spark.sql(statement).createOrReplaceTempView(name)

    def export(self, names: tuple[str, ...]):
        """The named tables as Parquet, opened in a DuckDB connection for the report writer."""
        import duckdb

        con = duckdb.connect()
        for name in names:
            path = self.work / "parquet" / name
            self.spark.table(name).coalesce(1).write.mode("overwrite").parquet(str(path))
            con.execute(
                f"CREATE TABLE {name} AS SELECT * FROM read_parquet('{(path / '*.parquet').as_posix()}')"
            )
        return con

    def stop(self) -> None:
        for frame in self._cached:
            frame.unpersist()
        self.spark.stop()
