"""The batch audit as SQL that DuckDB and Spark run unchanged (a handful of dialect helpers aside).

Dates and times are parsed from their text with integer arithmetic (days since 1970-01-01 in China
time, seconds since then), numbers are validated by pattern before being cast, and every rule kind
is one statement over the matched lines — so both engines give the same findings to the cent.
The semantics are those of :mod:`yb_audit.evaluate` (README "规则语义"); tests hold them equal.

Relations the statements read (created by the engine runners):

* ``src(line, value)`` — the data lines of the fee file without quotes, ``quoted(line, ncols, c1…)``
  — those with quotes, parsed by Python (:func:`yb_audit.batch.inputs.parse_quoted`); the same for
  stays (``stay_src`` / ``stay_quoted``);
* ``rules``, ``rule_codes``, ``rule_checks``, ``value_map``, ``local_codes`` — from Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from yb_audit import kinds
from yb_audit.batch.inputs import FEE_FIELDS, STAY_FIELDS, TableFile
from yb_audit.codes import ValueTables
from yb_audit.model import RuleSet
from yb_audit.settings import AuditSettings


@dataclass(frozen=True)
class Dialect:
    name: str

    def idiv(self, a: str, b: str) -> str:
        return f"(({a}) // ({b}))" if self.name == "duckdb" else f"(({a}) div ({b}))"

    def matches(self, x: str, pattern: str) -> str:
        """Full match of ``pattern`` (anchored with ^…$; only [0-9], literals, ?, {n}, groups)."""
        return f"regexp_matches({x}, '{pattern}')" if self.name == "duckdb" else f"({x} RLIKE '{pattern}')"

    def split(self, x: str) -> str:
        return f"string_split({x}, ',')" if self.name == "duckdb" else f"split({x}, ',', -1)"

    def elem(self, arr: str, i: int) -> str:
        return f"{arr}[{i}]" if self.name == "duckdb" else f"element_at({arr}, {i})"

    def size(self, arr: str) -> str:
        return f"len({arr})" if self.name == "duckdb" else f"size({arr})"


DUCKDB = Dialect("duckdb")
SPARK = Dialect("spark")


# ----------------------------------------------------------------------------- parsing


def _days_from_civil(d: Dialect, y: str, m: str, day: str) -> str:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm), integers only."""
    yy = f"({y} - CASE WHEN {m} <= 2 THEN 1 ELSE 0 END)"
    era = d.idiv(yy, "400")
    yoe = f"({yy} - {era} * 400)"
    mp = f"({m} + CASE WHEN {m} > 2 THEN -3 ELSE 9 END)"
    doy = f"({d.idiv(f'153 * {mp} + 2', '5')} + {day} - 1)"
    doe = f"({yoe} * 365 + {d.idiv(yoe, '4')} - {d.idiv(yoe, '100')} + {doy})"
    return f"({era} * 146097 + {doe} - 719468)"


def _month_days(y: str, m: str) -> str:
    leap = f"(({y} % 4 = 0 AND {y} % 100 <> 0) OR {y} % 400 = 0)"
    return f"(CASE WHEN {m} = 2 THEN CASE WHEN {leap} THEN 29 ELSE 28 END WHEN {m} IN (4, 6, 9, 11) THEN 30 ELSE 31 END)"


TIME_PATTERN = "^[0-9]{4}[-/][0-9]{2}[-/][0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]+)?)?)?$"
COMPACT_PATTERN = "^[0-9]{8}([0-9]{6})?$"
NUMBER_PATTERN = "^-?[0-9]+([.][0-9]+)?$"


def time_flags(d: Dialect, x: str, prefix: str) -> str:
    """Two columns saying which accepted form a time text has (each pattern evaluated once)."""
    return (
        f"{d.matches(x, TIME_PATTERN)} AS {prefix}_iso, {d.matches(x, COMPACT_PATTERN)} AS {prefix}_compact"
    )


def time_parts(x: str, prefix: str) -> dict[str, str]:
    """SQL for the parts of a time text, given the flags of :func:`time_flags` (NULL when neither)."""

    def part(dash_pos: int, compact_pos: int, length: int, default: str = "NULL") -> str:
        return (
            f"(CASE WHEN {prefix}_iso THEN COALESCE(CAST(NULLIF(substr({x}, {dash_pos}, {length}), '') AS INT), {default}) "
            f"WHEN {prefix}_compact THEN COALESCE(CAST(NULLIF(substr({x}, {compact_pos}, {length}), '') AS INT), {default}) END)"
        )

    return {
        "y": part(1, 1, 4),
        "m": part(6, 5, 2),
        "d": part(9, 7, 2),
        "hh": part(12, 9, 2, "0"),
        "mi": part(15, 11, 2, "0"),
        "ss": part(18, 13, 2, "0"),
    }


def _fields_sql(d: Dialect, table: TableFile, src: str, quoted: str) -> str:
    cols = ", ".join(f"{d.elem('arr', i)} AS c{i}" for i in range(1, table.ncols + 1))
    qcols = ", ".join(f"c{i}" for i in range(1, table.ncols + 1))
    return (
        f"SELECT line, {d.size('arr')} AS ncols, {cols} FROM (SELECT line, {d.split('value')} AS arr FROM {src} "
        f"WHERE value IS NOT NULL AND trim(value) <> '' AND instr(value, '\"') = 0) s "
        f"UNION ALL SELECT line, ncols, {qcols} FROM {quoted}"
    )


def _col(table: TableFile, field: str) -> str:
    position = table.columns.get(field)
    return f"NULLIF(trim(c{position}), '')" if position else "CAST(NULL AS STRING)"


CODE_PATTERN = "^([A-Z][A-Z0-9]{19}([A-Z0-9]{3})?|[0-9]{15})$"  # 医保药品代码 (20 / 23) or 项目代码 (15)


def fees_sql(d: Dialect, fees: TableFile, src: str = "src", quoted: str = "quoted") -> str:
    """Every data line of the fee file, typed, with the reason it is rejected (NULL when valid).
    ``code`` is the national code (NULL when ``med_list_codg`` is not one); ``day`` / ``ts`` are
    days / seconds since 1970-01-01 in China time. Each pattern is evaluated once per line. The long
    texts only a finding shows (person, names of the item, 科室 and 医生) are kept for the lines a rule
    or the local maps name, so 10 M lines fit in memory."""
    c = {field: _col(fees, field) for field in FEE_FIELDS}
    t = time_parts("t_raw", "t")
    date_ok = (
        f"(y BETWEEN 1900 AND 2999 AND m BETWEEN 1 AND 12 AND dd BETWEEN 1 AND {_month_days('y', 'm')}"
        " AND hh < 24 AND mi < 60 AND ss < 60)"
    )
    reason = f"""CASE
        WHEN ncols <> {fees.ncols} THEN concat('列数与表头不符（应为 {fees.ncols} 列，实为 ', CAST(ncols AS STRING), ' 列）')
        WHEN sn IS NULL THEN '缺少 feedetl_sn（费用明细流水号）'
        WHEN mdtrt IS NULL THEN '缺少 mdtrt_id（就诊 ID）'
        WHEN psn IS NULL THEN '缺少 psn_no（人员编号）'
        WHEN t_raw IS NULL THEN '缺少 fee_ocur_time（费用发生时间）'
        WHEN code_in IS NULL AND local_in IS NULL THEN '缺少 med_list_codg（医疗目录编码）'
        WHEN cnt_raw IS NULL THEN '缺少 cnt（数量）'
        WHEN pric_raw IS NULL THEN '缺少 pric（单价）'
        WHEN amt_raw IS NULL THEN '缺少 det_item_fee_sumamt（明细项目费用总额）'
        WHEN y IS NULL OR NOT {date_ok} THEN concat('fee_ocur_time 不是有效时间：', substr(t_raw, 1, 30))
        WHEN cnt IS NULL THEN concat('cnt 不是数值：', substr(cnt_raw, 1, 20))
        WHEN pric IS NULL THEN concat('pric 不是数值：', substr(pric_raw, 1, 20))
        WHEN amt IS NULL THEN concat('det_item_fee_sumamt 不是数值：', substr(amt_raw, 1, 20))
        WHEN ref_raw IS NOT NULL AND ref IS NULL THEN concat('pric_uplmt_amt 不是数值：', substr(ref_raw, 1, 20))
        WHEN cnt = 0 THEN '数量为 0'
        WHEN pric < 0 THEN '单价为负数'
        WHEN cnt < 0 AND init_sn IS NULL THEN '退费明细（数量为负）缺少 init_feedetl_sn（原费用流水号）'
    END"""
    day = _days_from_civil(d, "y", "m", "dd")
    return f"""
SELECT line, sn, init_sn, mdtrt, code, local_in, cnt, amt, reason, dept, dr, y, m, d, day, ts, pric, ref,
       CASE WHEN keep THEN psn END AS psn, CASE WHEN keep THEN name END AS name,
       CASE WHEN keep THEN dept_name END AS dept_name, CASE WHEN keep THEN dr_name END AS dr_name
FROM (
SELECT line, sn, init_sn, mdtrt, psn, r3.code, local_in, name, dept, dept_name, dr, dr_name, y, m, dd AS d,
       CASE WHEN reason IS NULL THEN {day} END AS day,
       CASE WHEN reason IS NULL THEN CAST({day} AS BIGINT) * 86400 + hh * 3600 + mi * 60 + ss END AS ts,
       cnt, pric, amt, ref, reason, (rc.code IS NOT NULL OR lc.local_code IS NOT NULL) AND reason IS NULL AS keep
FROM (
  SELECT *, {reason} AS reason
  FROM (
    SELECT line, ncols, sn, init_sn, mdtrt, psn, t_raw, code_in, local_in, name, dept, dept_name, dr, dr_name,
           cnt_raw, pric_raw, amt_raw, ref_raw,
           CASE WHEN code_ok THEN code_in END AS code,
           {t["y"]} AS y, {t["m"]} AS m, {t["d"]} AS dd, {t["hh"]} AS hh, {t["mi"]} AS mi, {t["ss"]} AS ss,
           CASE WHEN cnt_ok THEN CAST(cnt_raw AS DECIMAL(18,4)) END AS cnt,
           CASE WHEN pric_ok THEN CAST(pric_raw AS DECIMAL(18,4)) END AS pric,
           CASE WHEN amt_ok THEN CAST(amt_raw AS DECIMAL(18,2)) END AS amt,
           CASE WHEN ref_ok THEN CAST(ref_raw AS DECIMAL(18,4)) END AS ref
    FROM (
      SELECT r0.*, {time_flags(d, "t_raw", "t")}, {d.matches("code_in", CODE_PATTERN)} AS code_ok,
             {d.matches("cnt_raw", NUMBER_PATTERN)} AS cnt_ok, {d.matches("pric_raw", NUMBER_PATTERN)} AS pric_ok,
             {d.matches("amt_raw", NUMBER_PATTERN)} AS amt_ok, {d.matches("ref_raw", NUMBER_PATTERN)} AS ref_ok
      FROM (
        SELECT line, ncols, {c["feedetl_sn"]} AS sn, {c["init_feedetl_sn"]} AS init_sn, {c["mdtrt_id"]} AS mdtrt,
               {c["psn_no"]} AS psn, {c["fee_ocur_time"]} AS t_raw, upper({c["med_list_codg"]}) AS code_in,
               {c["medins_list_codg"]} AS local_in, {c["med_list_name"]} AS name,
               {c["cnt"]} AS cnt_raw, {c["pric"]} AS pric_raw, {c["det_item_fee_sumamt"]} AS amt_raw,
               {c["pric_uplmt_amt"]} AS ref_raw, {c["bilg_dept_codg"]} AS dept, {c["bilg_dept_name"]} AS dept_name,
               {c["bilg_dr_codg"]} AS dr, {c["bilg_dr_name"]} AS dr_name
        FROM ({_fields_sql(d, fees, src, quoted)}) f
      ) r0
    ) r1
  ) r2
) r3
LEFT JOIN (SELECT DISTINCT code FROM rule_codes) rc ON rc.code = r3.code
LEFT JOIN (SELECT DISTINCT local_code FROM local_codes) lc ON lc.local_code = r3.local_in
) r4
"""


def fee_checks_sql() -> str:
    """Line-level rejects that need the whole file: repeated ``feedetl_sn`` (the later lines) and
    refunds of an unknown line. Reads ``fees_raw``; gives (line, reason). Both start from the few
    rows concerned (repeated numbers, refunds), so no hash table holds the whole file."""
    return """
SELECT f.line, concat('费用明细流水号重复（首次出现于第 ', CAST(x.first_line AS STRING), ' 行）') AS reason
FROM fees_raw f
JOIN (SELECT sn, MIN(line) AS first_line FROM fees_raw WHERE reason IS NULL GROUP BY sn HAVING COUNT(*) > 1) x
  ON x.sn = f.sn AND f.line <> x.first_line
WHERE f.reason IS NULL
UNION ALL
SELECT r.line, concat('找不到被退费的原明细 ', r.init_sn) AS reason
FROM (SELECT line, init_sn FROM fees_raw WHERE reason IS NULL AND cnt < 0) r
LEFT JOIN (
  SELECT DISTINCT o.sn FROM fees_raw o
  WHERE o.reason IS NULL AND o.cnt > 0 AND o.sn IN (SELECT init_sn FROM fees_raw WHERE reason IS NULL AND cnt < 0)
) o ON o.sn = r.init_sn
WHERE o.sn IS NULL
"""


def stays_sql(d: Dialect, stays: TableFile, src: str = "stay_src", quoted: str = "stay_quoted") -> str:
    """Stays typed and mapped to the audit's values (value_map), with a reject reason."""
    c = {field: _col(stays, field) for field in STAY_FIELDS}
    t = time_parts("b_raw", "b")
    date_ok = f"(byy BETWEEN 1900 AND 2999 AND bmm BETWEEN 1 AND 12 AND bdd BETWEEN 1 AND {_month_days('byy', 'bmm')})"
    return f"""
SELECT line, mdtrt, psn, sex, insurance, setting, level,
       CASE WHEN byy IS NOT NULL AND {date_ok} THEN {_days_from_civil(d, "byy", "bmm", "bdd")} END AS b_day,
       byy AS b_y, bmm AS b_m, bdd AS b_d,
       CASE WHEN ncols <> {stays.ncols} THEN concat('列数与表头不符（应为 {stays.ncols} 列，实为 ', CAST(ncols AS STRING), ' 列）')
            WHEN mdtrt IS NULL THEN '缺少 mdtrt_id（就诊 ID）'
            WHEN b_raw IS NOT NULL AND (byy IS NULL OR NOT {date_ok}) THEN concat('brdy 不是有效日期：', substr(b_raw, 1, 30))
       END AS reason
FROM (
  SELECT r.*, sx.value AS sex, ins.value AS insurance,
         COALESCE(et.value, mt.value, mt2.value,
                  CASE substr(r.med_type, 1, 1) WHEN '1' THEN '门诊' WHEN '2' THEN '住院' END, et2.value) AS setting,
         COALESCE(CAST(lv.value AS INT),
                  CASE substr(r.medins_lv, 1, 2) WHEN '一级' THEN 1 WHEN '二级' THEN 2 WHEN '三级' THEN 3 END) AS level
  FROM (
    SELECT line, ncols, mdtrt, psn, b_raw, gend, insutype, med_type, med_mdtrt_type, encounter_type, medins_lv,
           {t["y"]} AS byy, {t["m"]} AS bmm, {t["d"]} AS bdd
    FROM (
      SELECT q.*, {time_flags(d, "b_raw", "b")}
      FROM (
        SELECT line, ncols, {c["mdtrt_id"]} AS mdtrt, {c["psn_no"]} AS psn, {c["brdy"]} AS b_raw,
               lower({c["gend"]}) AS gend, lower({c["insutype"]}) AS insutype, lower({c["med_type"]}) AS med_type,
               lower({c["med_mdtrt_type"]}) AS med_mdtrt_type, lower({c["encounter_type"]}) AS encounter_type,
               lower({c["medins_lv"]}) AS medins_lv
        FROM ({_fields_sql(d, stays, src, quoted)}) f
      ) q
    ) p
  ) r
  LEFT JOIN value_map sx ON sx.kind = 'sex' AND sx.key = r.gend
  LEFT JOIN value_map ins ON ins.kind = 'insurance' AND ins.key = r.insutype
  LEFT JOIN value_map et ON et.kind = 'encounter_type.text' AND et.key = r.encounter_type
  LEFT JOIN value_map mt ON mt.kind = 'encounter_type.med_mdtrt_type' AND mt.key = r.med_mdtrt_type
  LEFT JOIN value_map mt2 ON mt2.kind = 'encounter_type.med_type' AND mt2.key = r.med_type
  LEFT JOIN value_map et2 ON et2.kind = 'encounter_type.text' AND et2.key = COALESCE(r.med_type, r.med_mdtrt_type)
  LEFT JOIN value_map lv ON lv.kind = 'hospital_level' AND lv.key = r.medins_lv
) s
"""


def stay_checks_sql() -> str:
    return """
SELECT line, concat('就诊 ID 重复（首次出现于第 ', CAST(first_line AS STRING), ' 行）') AS reason
FROM (SELECT line, MIN(line) OVER (PARTITION BY mdtrt) AS first_line FROM stays_raw WHERE reason IS NULL) x
WHERE line <> first_line
"""


def lines_sql(hospital_level: int | None) -> str:
    """Valid fee lines with a rule code, net of refunds, with the facts of their stay.

    Reads ``fees_ok`` (valid lines), ``stays_ok`` and ``rule_codes`` / ``local_codes``. Lines of a
    自费 stay are left out (医保 rules do not apply); a refund reduces its original line, which is
    left out when nothing remains."""
    level = "s.level" if hospital_level is None else f"COALESCE(s.level, {int(hospital_level)})"
    return f"""
SELECT l.line, l.sn, l.psn, l.mdtrt, l.code, l.ts, l.day, l.y, l.m, l.d, l.cnt, l.pric, l.amt, l.ref,
       s.sex, s.b_day, s.b_y, s.b_m, s.b_d, s.insurance, s.setting, {level} AS level
FROM (
  SELECT o.line, o.sn, o.psn, o.mdtrt, o.code, o.ts, o.day, o.y, o.m, o.d, o.pric, o.ref,
         o.cnt + COALESCE(rf.cnt, 0) AS cnt, CAST(o.amt + COALESCE(rf.amt, 0) AS DECIMAL(18,2)) AS amt
  FROM (
    SELECT f.line, f.sn, f.psn, f.mdtrt, COALESCE(f.code, lc.code) AS code, f.ts, f.day, f.y, f.m, f.d,
           f.cnt, f.pric, f.amt, f.ref
    FROM fees_ok f LEFT JOIN local_codes lc ON f.code IS NULL AND lc.local_code = f.local_in
    WHERE f.cnt > 0
  ) o
  LEFT JOIN (SELECT init_sn, SUM(cnt) AS cnt, SUM(amt) AS amt FROM fees_ok WHERE cnt < 0 GROUP BY init_sn) rf
    ON rf.init_sn = o.sn
  WHERE o.code IN (SELECT code FROM rule_codes)
) l
LEFT JOIN stays_ok s ON s.mdtrt = l.mdtrt
WHERE l.cnt > 0 AND (s.insurance IS NULL OR s.insurance <> '自费')
"""


# ----------------------------------------------------------------------------- rules


FINDING_COLUMNS = "rule_id, chk, line, severity, amount, n1, n2, d1, d2, rel"


def evaluation_sql(settings: AuditSettings) -> list[tuple[str, str]]:
    """(name, statement) pairs; the engine materialises each in order. The last is ``findings``:
    (rule_id, chk, line, severity, amount, n1, n2, d1, d2, rel) — n1/n2/d1/d2/rel are the numbers the
    report words the finding with (counts, days, the related line)."""
    s = settings
    rate = Decimal(s.secondary_operation_rate)
    age_y = "((y - b_y) - CASE WHEN m < b_m OR (m = b_m AND d < b_d) THEN 1 ELSE 0 END)"
    age_d = "(day - b_day)"
    group_ok = f"""(CASE
        WHEN p_min_age IS NOT NULL OR p_max_age IS NOT NULL THEN
          (p_min_age IS NULL OR {age_y} >= p_min_age) AND
          (p_max_age IS NULL OR (CASE WHEN p_max_incl = 1 THEN {age_y} <= p_max_age ELSE {age_y} < p_max_age END))
        WHEN p_group = '新生儿' THEN {age_d} < {int(s.newborn_age_days)}
        WHEN p_group = '婴儿' THEN {age_y} < {int(s.baby_age_limit)}
        WHEN p_group = '婴幼儿' THEN {age_y} < {int(s.infant_age_limit)}
        ELSE {age_y} < {int(s.child_age_limit)} END)"""
    null = "CAST(NULL AS DECIMAL(18,4))"
    nint = "CAST(NULL AS BIGINT)"
    facts = f"""
SELECT rule_id, '' AS chk, line, severity, amt AS amount, {null} AS n1, {null} AS n2, {nint} AS d1, {nint} AS d2, {nint} AS rel
FROM rl WHERE role = 'main' AND (
     (kind = 'sex' AND sex IS NOT NULL AND sex <> p_sex)
  OR (kind IN ('age_group', 'age') AND manual = 0 AND b_day IS NOT NULL AND b_day <= day AND NOT {group_ok})
  OR (kind = 'age' AND manual = 1)
  OR (kind = 'insurance' AND insurance IS NOT NULL AND insurance <> p_insurance)
  OR (kind = 'care_setting' AND setting IS NOT NULL AND instr(concat(',', p_settings, ','), concat(',', setting, ',')) = 0)
  OR (kind = 'hospital_level' AND level IS NOT NULL AND level < p_min_level)
  OR (kind = 'course' AND manual = 1))"""
    excess = "LEAST(cnt, total - lim)"
    share = f"CAST(CASE WHEN {excess} >= cnt THEN amt ELSE ROUND(pric * {excess}, 2) END AS DECIMAL(18,2))"
    frequency = f"""
SELECT rule_id, '' AS chk, line, severity, {share} AS amount, CAST(total - cnt AS DECIMAL(18,4)) AS n1,
       CAST({excess} AS DECIMAL(18,4)) AS n2, CAST(day AS BIGINT) AS d1, CAST(lim AS BIGINT) AS d2, {nint} AS rel
FROM (SELECT rule_id, line, severity, cnt, pric, amt, day, p_limit AS lim,
             SUM(cnt) OVER (PARTITION BY psn, rule_id, day ORDER BY ts, line ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS total
      FROM rl WHERE kind = 'frequency' AND role = 'main') f
WHERE total - lim > 0"""
    cycle_lines = """
SELECT rule_id, '' AS chk, p_limit AS lim, p_days AS days, line, psn, day, ts, cnt, pric, amt, severity
FROM rl WHERE kind = 'cycle' AND role = 'main'
UNION ALL
SELECT rl.rule_id, c.chk, c.lim, c.days, rl.line, rl.psn, rl.day, rl.ts, rl.cnt, rl.pric, rl.amt, rl.severity
FROM rl JOIN rule_checks c ON c.rule_id = rl.rule_id AND c.chk LIKE 'cycle%'
WHERE rl.kind = 'course' AND rl.role = 'main' AND rl.manual = 0"""
    cycle_numbered = """
SELECT *, ROW_NUMBER() OVER (PARTITION BY psn, rule_id, chk ORDER BY day, ts, line) AS ord FROM cycle_lines"""
    cycle = f"""
SELECT rule_id, chk, line, severity, {share} AS amount, CAST(total - cnt AS DECIMAL(18,4)) AS n1,
       CAST({excess} AS DECIMAL(18,4)) AS n2, CAST(day - days + 1 AS BIGINT) AS d1, CAST(days AS BIGINT) AS d2, rel
FROM (
  SELECT a.rule_id, a.chk, a.line, a.severity, a.cnt, a.pric, a.amt, a.day, a.days, a.lim,
         SUM(b.cnt) AS total, MIN(CASE WHEN b.ord < a.ord THEN b.line END) AS rel
  FROM cycle_numbered a JOIN cycle_numbered b
    ON b.psn = a.psn AND b.rule_id = a.rule_id AND b.chk = a.chk AND b.ord <= a.ord AND b.day >= a.day - a.days + 1
  GROUP BY a.rule_id, a.chk, a.line, a.severity, a.cnt, a.pric, a.amt, a.day, a.days, a.lim
) w
WHERE total - lim > 0"""
    paid = f"""
SELECT rule_id, chk, line, severity, amt AS amount, {null} AS n1, {null} AS n2,
       CAST(first_day AS BIGINT) AS d1, CAST(last_paid AS BIGINT) AS d2, {nint} AS rel
FROM (
  SELECT *, MIN(day) OVER (PARTITION BY scope, rule_id, chk) AS first_day,
         MAX(CASE WHEN rk <= lim THEN day END) OVER (PARTITION BY scope, rule_id, chk) AS last_paid
  FROM (
    SELECT *, DENSE_RANK() OVER (PARTITION BY scope, rule_id, chk ORDER BY day) AS rk
    FROM (
      SELECT rule_id, '' AS chk, p_max_days AS lim, mdtrt AS scope, line, day, amt, severity
      FROM rl WHERE kind = 'drug_course' AND role = 'main'
      UNION ALL
      SELECT rl.rule_id, c.chk, c.days AS lim, rl.psn AS scope, rl.line, rl.day, rl.amt, rl.severity
      FROM rl JOIN rule_checks c ON c.rule_id = rl.rule_id AND c.chk = 'paid_days'
      WHERE rl.kind = 'course' AND rl.role = 'main' AND rl.manual = 0
    ) p
  ) q
) r
WHERE rk > lim"""
    span = f"""
SELECT rule_id, chk, line, severity, amt AS amount, {null} AS n1, {null} AS n2,
       CAST(first_day AS BIGINT) AS d1, CAST(lim AS BIGINT) AS d2, {nint} AS rel
FROM (
  SELECT rl.rule_id, c.chk, c.days AS lim, rl.line, rl.day, rl.amt, rl.severity,
         MIN(rl.day) OVER (PARTITION BY rl.psn, rl.rule_id) AS first_day
  FROM rl JOIN rule_checks c ON c.rule_id = rl.rule_id AND c.chk = 'span_days'
  WHERE rl.kind = 'course' AND rl.role = 'main' AND rl.manual = 0
) x
WHERE day > first_day + lim - 1"""
    window = """(
       (s.p_window = 'stay' AND m.mdtrt = s.mdtrt)
    OR (s.p_window = 'day' AND m.day = s.day)
    OR (s.p_window = 'hours' AND m.ts BETWEEN s.ts - s.p_hours * 3600 AND s.ts + s.p_hours * 3600))"""
    duplicate = f"""
SELECT rule_id, '' AS chk, line, severity, amt AS amount, {null} AS n1, {null} AS n2, {nint} AS d1, {nint} AS d2, rel
FROM (
  SELECT s.rule_id, s.line, s.severity, s.amt, m.line AS rel,
         ROW_NUMBER() OVER (PARTITION BY s.rule_id, s.line ORDER BY m.day, m.ts, m.line) AS pick
  FROM (SELECT * FROM rl WHERE kind = 'duplicate' AND role = 'sub') s
  JOIN (SELECT rule_id, psn, mdtrt, day, ts, line FROM rl WHERE kind = 'duplicate' AND role = 'main') m
    ON m.rule_id = s.rule_id AND m.psn = s.psn AND {window}
) x
WHERE pick = 1"""
    operations = f"""
SELECT x.rule_id, '' AS chk, x.line,
       CASE WHEN x.ref IS NULL THEN '{kinds.SUSPICIOUS}' ELSE x.severity END AS severity,
       CAST(CASE WHEN x.ref IS NULL THEN ROUND(x.pric * x.cnt * (1 - {rate}), 2)
                 ELSE ROUND((x.pric - ROUND(x.ref * {rate}, 2)) * x.cnt, 2) END AS DECIMAL(18,2)) AS amount,
       {null} AS n1, {null} AS n2, {nint} AS d1, {nint} AS d2, main.line AS rel
FROM (SELECT rl.*, c.code_rank, c.ncodes FROM rl JOIN op_codes c
        ON c.rule_id = rl.rule_id AND c.mdtrt = rl.mdtrt AND c.day = rl.day AND c.code = rl.code
      WHERE rl.kind = 'main_secondary') x
JOIN op_codes main ON main.rule_id = x.rule_id AND main.mdtrt = x.mdtrt AND main.day = x.day AND main.code_rank = 1
WHERE x.ncodes >= 2 AND x.code_rank > 1 AND (x.ref IS NULL OR x.pric > ROUND(x.ref * {rate}, 2))"""
    op_codes = """
SELECT rule_id, mdtrt, day, code, line,
       ROW_NUMBER() OVER (PARTITION BY rule_id, mdtrt, day ORDER BY maxp DESC, first_ts, line, code) AS code_rank,
       COUNT(*) OVER (PARTITION BY rule_id, mdtrt, day) AS ncodes
FROM (
  SELECT rule_id, mdtrt, day, code, maxp, ts AS first_ts, line
  FROM (
    SELECT rule_id, mdtrt, day, code, ts, line,
           MAX(COALESCE(ref, pric)) OVER (PARTITION BY rule_id, mdtrt, day, code) AS maxp,
           ROW_NUMBER() OVER (PARTITION BY rule_id, mdtrt, day, code ORDER BY ts, line) AS pos
    FROM rl WHERE kind = 'main_secondary'
  ) a WHERE pos = 1
) b"""
    union = " UNION ALL ".join(
        f"SELECT {FINDING_COLUMNS} FROM ({q}) q{i}"
        for i, q in enumerate((facts, frequency, cycle, paid, span, duplicate, operations))
    )
    return [
        ("cycle_lines", cycle_lines),
        ("cycle_numbered", cycle_numbered),
        ("op_codes", op_codes),
        ("findings", union),
    ]


RL_SQL = """
SELECT r.rule_id, r.kind, r.severity, rc.role, r.p_sex, r.p_group, r.p_min_age, r.p_max_age, r.p_max_incl,
       r.p_insurance, r.p_settings, r.p_min_level, r.p_max_days, r.p_window, r.p_hours, r.p_limit, r.p_unit,
       r.p_days, r.manual, l.*
FROM lines l JOIN rule_codes rc ON rc.code = l.code JOIN rules r ON r.rule_id = rc.rule_id
"""


# ----------------------------------------------------------------------------- rule tables


RULE_COLUMNS = (
    ("rule_id", "STRING"),
    ("kind", "STRING"),
    ("severity", "STRING"),
    ("p_sex", "STRING"),
    ("p_group", "STRING"),
    ("p_min_age", "DECIMAL(8,2)"),
    ("p_max_age", "DECIMAL(8,2)"),
    ("p_max_incl", "INT"),
    ("p_insurance", "STRING"),
    ("p_settings", "STRING"),
    ("p_min_level", "INT"),
    ("p_max_days", "INT"),
    ("p_window", "STRING"),
    ("p_hours", "INT"),
    ("p_limit", "INT"),
    ("p_unit", "STRING"),
    ("p_days", "INT"),
    ("manual", "INT"),
)
RULE_CODE_COLUMNS = (("rule_id", "STRING"), ("code", "STRING"), ("role", "STRING"))
RULE_CHECK_COLUMNS = (("rule_id", "STRING"), ("chk", "STRING"), ("days", "INT"), ("lim", "INT"))
VALUE_MAP_COLUMNS = (("kind", "STRING"), ("key", "STRING"), ("value", "STRING"))
LOCAL_CODE_COLUMNS = (("local_code", "STRING"), ("code", "STRING"))


def rule_rows(rules: RuleSet) -> tuple[list[tuple], list[tuple], list[tuple]]:
    """(rules, rule_codes, rule_checks) rows of the rule tables."""
    out, codes, checks = [], [], []
    for rule in rules.rules:
        p = rule.params
        out.append(
            (
                rule.rule_id,
                rule.kind,
                rule.severity,
                p.get("sex"),
                p.get("group"),
                Decimal(p["min_age"]) if p.get("min_age") is not None else None,
                Decimal(p["max_age"]) if p.get("max_age") is not None else None,
                1 if p.get("max_inclusive", True) else 0,
                p.get("insurance"),
                ",".join(p["settings"]) if p.get("settings") else None,
                p.get("min_level"),
                p.get("max_days"),
                p.get("window"),
                p.get("hours"),
                p.get("limit"),
                p.get("unit"),
                p.get("days"),
                1 if rule.manual else 0,
            )
        )
        codes += [(rule.rule_id, code, "main") for code in rule.codes]
        codes += [(rule.rule_id, code, "sub") for code in rule.codes2]
        for check in p.get("checks") or ():
            name = check["check"] if check["check"] != "cycle" else f"cycle{check['days']}"
            checks.append((rule.rule_id, name, check["days"], check.get("limit")))
    return out, codes, checks


def value_map_rows(tables: ValueTables) -> list[tuple[str, str, str]]:
    rows = [("sex", k, v) for k, v in tables.sex.items()]
    rows += [("insurance", k, v) for k, v in tables.insurance.items()]
    for source, table in tables.encounter_type.items():
        rows += [(f"encounter_type.{source}", k, v) for k, v in table.items()]
    rows += [("hospital_level", k, str(v)) for k, v in tables.hospital_level.items()]
    return rows
