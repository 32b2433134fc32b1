"""The embedded engine: DuckDB in this process, spilling to ``<output>/_work`` beyond its memory limit."""

from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path

from yb_audit.batch import sql
from yb_audit.batch.inputs import TableFile, parse_quoted

DELIMITER = "\x1f"  # never in a fee file: each physical line is read as one value


def _has_quote(path: Path) -> bool:
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 24):
            if b'"' in chunk:
                return True
    return False


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def register_rows(con, name: str, columns: tuple[tuple[str, str], ...], rows: list[tuple]) -> None:
    """A DuckDB table from Python rows, through a temporary CSV file (executemany is row by row)."""
    with tempfile.NamedTemporaryFile("w", suffix=".csv", encoding="utf-8", newline="", delete=False) as fh:
        csv.writer(fh, lineterminator="\n").writerows(["" if v is None else v for v in row] for row in rows)
        path = fh.name
    try:
        types = ", ".join(f"'{c}': '{'VARCHAR' if t == 'STRING' else t}'" for c, t in columns)
        con.execute(
            f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM read_csv({_literal(path)}, columns = {{{types}}},"
            " header = false, auto_detect = false, quote = '\"', escape = '\"', nullstr = '')"
        )
    finally:
        os.unlink(path)


class DuckRunner:
    dialect = sql.DUCKDB

    def __init__(self, work: Path, threads: int | None = None, memory_limit: str | None = None) -> None:
        import duckdb

        work.mkdir(parents=True, exist_ok=True)
        self.work = work
        self.con = duckdb.connect()
        self.con.execute(f"SET temp_directory = {_literal(str(work / 'spill'))}")
        self.con.execute("SET preserve_insertion_order = true")
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        if memory_limit:
            self.con.execute(f"SET memory_limit = {_literal(memory_limit)}")

    def register(self, name: str, columns: tuple[tuple[str, str], ...], rows: list[tuple]) -> None:
        register_rows(self.con, name, columns, rows)

    def sources(self, table: TableFile, prefix: str) -> None:
        skip = table.first_data_line - 1
        options = (
            f"columns = {{'value': 'VARCHAR'}}, header = false, delim = {_literal(DELIMITER)}, quote = '', escape = '',"
            f" auto_detect = false, strict_mode = false, skip = {skip}"
            + (", new_line = '\\r\\n'" if table.crlf else "")
        )
        self.con.execute(
            f"CREATE OR REPLACE VIEW {prefix}src AS SELECT CAST(row_number() OVER () + {skip} AS BIGINT) AS line, value "
            f"FROM read_csv({_literal(str(table.path))}, {options})"
        )
        columns = (
            tuple(("line", "BIGINT") for _ in range(1))
            + (("ncols", "INTEGER"),)
            + tuple((f"c{i}", "VARCHAR") for i in range(1, table.ncols + 1))
        )
        rows: list[tuple] = []
        if _has_quote(table.path):
            raw = self.con.execute(
                f"SELECT line, value FROM {prefix}src WHERE instr(value, '\"') > 0"
            ).fetchall()
            for line, count, fields in parse_quoted(raw):
                padded = (fields + [None] * table.ncols)[: table.ncols]
                rows.append((line, count, *padded))
        self.register(f"{prefix}quoted", columns, rows)

    def materialise(self, name: str, statement: str) -> None:
        self.con.execute(f"CREATE OR REPLACE TABLE {name} AS {statement}")

    def view(self, name: str, statement: str) -> None:
        self.con.execute(f"CREATE OR REPLACE VIEW {name} AS {statement}")

    def close(self) -> None:
        self.con.close()
