"""The batch audit pipeline over an engine runner (DuckDB or Spark): the same statements, in order.

A runner offers: ``register`` (a small table from Python rows), ``sources`` (the raw lines of a
file as ``<prefix>src(line, value)`` and ``<prefix>quoted(line, ncols, c1…)``), ``materialise``
(a statement as a named table) and ``view`` (a named statement, not stored).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

from yb_audit.batch import sql
from yb_audit.batch.inputs import TableFile
from yb_audit.codes import ValueTables
from yb_audit.model import RuleSet
from yb_audit.settings import AuditSettings


class Runner(Protocol):
    dialect: sql.Dialect

    def register(self, name: str, columns: tuple[tuple[str, str], ...], rows: list[tuple]) -> None: ...

    def sources(self, table: TableFile, prefix: str) -> None: ...

    def materialise(self, name: str, statement: str) -> None: ...

    def view(self, name: str, statement: str) -> None: ...


@dataclass
class PipelineResult:
    timings: dict[str, float] = field(default_factory=dict)


REJECTS_SQL = """
SELECT 'fees' AS file, r.line, f.sn AS record, r.reason FROM fee_rejects r LEFT JOIN fees_raw f ON f.line = r.line
UNION ALL
SELECT 'stays' AS file, r.line, s.mdtrt AS record, r.reason FROM stay_rejects r LEFT JOIN stays_raw s ON s.line = r.line
"""

FINDINGS_FULL_SQL = """
SELECT f.rule_id, f.chk, f.line, f.severity, f.amount, f.n1, f.n2, f.d1, f.d2, f.rel, rl2.sn AS rel_sn,
       l.sn, l.mdtrt, l.psn, l.ts, l.day, l.code, l.cnt, l.pric, l.amt AS line_amount,
       l.sex, l.insurance, l.setting, l.level,
       CASE WHEN l.b_day IS NOT NULL AND l.b_day <= l.day
            THEN (l.y - l.b_y) - CASE WHEN l.m < l.b_m OR (l.m = l.b_m AND l.d < l.b_d) THEN 1 ELSE 0 END END AS age_y,
       CASE WHEN l.b_day IS NOT NULL AND l.b_day <= l.day THEN l.day - l.b_day END AS age_d,
       o.name, o.dept, o.dept_name, o.dr, o.dr_name
FROM findings f
JOIN lines l ON l.line = f.line
JOIN fees_ok o ON o.line = f.line
LEFT JOIN lines rl2 ON rl2.line = f.rel
"""

UNCHECKED_SQL = """
SELECT kind, COUNT(DISTINCT line) AS lines FROM rl
WHERE role = 'main' AND (
     (kind = 'sex' AND sex IS NULL)
  OR (kind IN ('age_group', 'age') AND manual = 0 AND (b_day IS NULL OR b_day > day))
  OR (kind = 'insurance' AND insurance IS NULL)
  OR (kind = 'care_setting' AND setting IS NULL)
  OR (kind = 'hospital_level' AND level IS NULL))
GROUP BY kind
"""


def run(
    runner: Runner,
    fees: TableFile,
    stays: TableFile,
    rules: RuleSet,
    settings: AuditSettings,
    tables: ValueTables,
    local_codes: list[tuple[str, str]],
    hospital_level: int | None,
) -> PipelineResult:
    """Run every statement; leaves ``findings_full``, ``rejects``, ``unchecked`` and ``stats`` in the
    runner, and returns the timings of the read and join phases."""
    d = runner.dialect
    result = PipelineResult()
    started = time.perf_counter()
    rule_rows, code_rows, check_rows = sql.rule_rows(rules)
    runner.register("rules", sql.RULE_COLUMNS, rule_rows)
    runner.register("rule_codes", sql.RULE_CODE_COLUMNS, code_rows)
    runner.register("rule_checks", sql.RULE_CHECK_COLUMNS, check_rows)
    runner.register("value_map", sql.VALUE_MAP_COLUMNS, sql.value_map_rows(tables))
    runner.register("local_codes", sql.LOCAL_CODE_COLUMNS, local_codes)

    runner.sources(fees, "")
    runner.materialise("fees_raw", sql.fees_sql(d, fees))
    runner.materialise(
        "fee_rejects",
        f"SELECT line, reason FROM fees_raw WHERE reason IS NOT NULL UNION ALL SELECT line, reason FROM ({sql.fee_checks_sql()}) c",
    )
    runner.view(
        "fees_ok",
        "SELECT * FROM fees_raw WHERE reason IS NULL AND line NOT IN (SELECT line FROM fee_rejects)",
    )
    runner.sources(stays, "stay_")
    runner.materialise("stays_raw", sql.stays_sql(d, stays))
    runner.materialise(
        "stay_rejects",
        f"SELECT line, reason FROM stays_raw WHERE reason IS NOT NULL UNION ALL SELECT line, reason FROM ({sql.stay_checks_sql()}) c",
    )
    runner.materialise(
        "stays_ok",
        "SELECT * FROM stays_raw WHERE reason IS NULL AND line NOT IN (SELECT line FROM stay_rejects)",
    )
    result.timings["read"] = time.perf_counter() - started

    started = time.perf_counter()
    runner.materialise("lines", sql.lines_sql(hospital_level))
    runner.materialise("rl", sql.RL_SQL)
    for name, statement in sql.evaluation_sql(settings):
        runner.materialise(name, statement)
    runner.materialise("findings_full", FINDINGS_FULL_SQL)
    runner.materialise("rejects", REJECTS_SQL)
    runner.materialise("unchecked", UNCHECKED_SQL)
    runner.materialise(
        "stats",
        """
SELECT a.fee_lines, b.fee_rejected, a.fee_lines - b.fee_rejected AS fee_valid, c.fee_amount, c.refund_lines,
       c.unknown_code_lines, c.lines_without_stay, d.audited_lines, e.stays, f.stays_rejected, g.findings
FROM (SELECT COUNT(*) AS fee_lines FROM fees_raw) a
CROSS JOIN (SELECT COUNT(*) AS fee_rejected FROM fee_rejects) b
CROSS JOIN (
  SELECT CAST(COALESCE(SUM(o.amt), 0) AS DECIMAL(18,2)) AS fee_amount,
         COALESCE(SUM(CASE WHEN o.cnt < 0 THEN 1 ELSE 0 END), 0) AS refund_lines,
         COALESCE(SUM(CASE WHEN o.code IS NULL AND lc.code IS NULL THEN 1 ELSE 0 END), 0) AS unknown_code_lines,
         COALESCE(SUM(CASE WHEN s.mdtrt IS NULL THEN 1 ELSE 0 END), 0) AS lines_without_stay
  FROM fees_ok o
  LEFT JOIN local_codes lc ON o.code IS NULL AND lc.local_code = o.local_in
  LEFT JOIN (SELECT DISTINCT mdtrt FROM stays_ok) s ON s.mdtrt = o.mdtrt
) c
CROSS JOIN (SELECT COUNT(*) AS audited_lines FROM lines) d
CROSS JOIN (SELECT COUNT(*) AS stays FROM stays_raw) e
CROSS JOIN (SELECT COUNT(*) AS stays_rejected FROM stay_rejects) f
CROSS JOIN (SELECT COUNT(*) AS findings FROM findings) g
""",
    )
    result.timings["join"] = time.perf_counter() - started
    return result
