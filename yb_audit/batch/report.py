"""Outputs of the batch audit, written by DuckDB from what either engine produced.

``findings.csv`` (every finding, with the line, the bureau's text and our explanation),
``by_rule.csv``, ``departments.csv`` and ``doctors.csv`` (rankings by amount at risk and count),
``rejects.csv`` (every line not audited, with the reason), ``findings.xlsx`` (the same for the
医保办, the detail sheet capped), ``report.html`` (an offline page with inline SVG charts, aggregates
only — no patient identifiers) and ``summary.json``.

Amounts at risk are summed once per line in the rankings and totals (a line that breaks two rules
is not counted twice); per rule they are the rule's own.
"""

from __future__ import annotations

import csv
import io
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from settlement.charts import bar_chart, hbar_chart
from settlement.reports import SAFE_SQL, cell_safe
from yb_audit import kinds
from yb_audit.batch.duck import register_rows
from yb_audit.evaluate import LEVEL_NAMES, age_limit
from yb_audit.model import RuleSet
from yb_audit.settings import AuditSettings

RULE_INFO_COLUMNS = tuple(
    (name, "INTEGER" if name in ("manual", "p_limit") else "VARCHAR")
    for name in (
        "rule_id",
        "kind",
        "kind_label",
        "batch",
        "ruleset",
        "name",
        "text",
        "item_name",
        "limit_text",
        "manual",
        "p_limit",
        "p_group",
    )
)
TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
XLSX_DETAIL_ROWS = 20_000
XLSX_REJECT_ROWS = 20_000

FINDING_COLUMNS = (
    ("rule_id", "f.rule_id", "规则编号"),
    ("rule_kind", "i.kind", "规则类型代码"),
    ("kind_label", "i.kind_label", "规则类型"),
    ("batch", "i.batch", "批次"),
    ("rule_name", "i.name", "规则名称"),
    ("severity", "f.severity", "严重程度"),
    ("check", "f.chk", "检查项"),
    ("source_line", "f.line", "源文件行号"),
    ("feedetl_sn", "f.sn", "费用明细流水号"),
    ("mdtrt_id", "f.mdtrt", "就诊ID"),
    ("psn_no", "f.psn", "人员编号"),
    ("fee_ocur_time", "strftime(make_timestamp(f.ts * 1000000), '%Y-%m-%d %H:%M:%S')", "费用发生时间"),
    ("med_list_codg", "f.code", "医保目录编码"),
    ("item_name", "COALESCE(f.name, i.item_name)", "项目名称"),
    ("bilg_dept_codg", "f.dept", "开单科室编码"),
    ("bilg_dept_name", "f.dept_name", "开单科室名称"),
    ("bilg_dr_codg", "f.dr", "开单医师编码"),
    ("bilg_dr_name", "f.dr_name", "开单医师姓名"),
    ("cnt", "f.cnt", "数量"),
    ("pric", "f.pric", "单价"),
    ("det_item_fee_sumamt", "f.line_amount", "明细金额"),
    ("amount_at_risk", "f.amount", "涉及金额"),
    ("message", "msg", "违规说明"),
    ("rule_text", "i.text", "规则原文"),
)
TEXT_FROM_INPUT = {
    "feedetl_sn",
    "mdtrt_id",
    "psn_no",
    "item_name",
    "bilg_dept_codg",
    "bilg_dept_name",
    "bilg_dr_codg",
    "bilg_dr_name",
}


def _date(day: str) -> str:
    return f"strftime(DATE '1970-01-01' + CAST({day} AS INTEGER), '%Y-%m-%d')"


def _num(x: str) -> str:
    return f"regexp_replace(regexp_replace(CAST({x} AS VARCHAR), '(\\.[0-9]*[1-9])0+$|\\.0+$', '\\1'), '^$', '0')"


def _message_sql(rate: Decimal) -> str:
    """The finding in words, from the numbers the engine left (see sql.evaluation_sql)."""
    age = "CASE WHEN f.age_y >= 1 THEN concat(CAST(f.age_y AS VARCHAR), ' 岁') ELSE concat('出生 ', CAST(f.age_d AS VARCHAR), ' 天') END"
    level = "CASE f.level " + " ".join(f"WHEN {k} THEN '{v}'" for k, v in LEVEL_NAMES.items()) + " END"
    return f"""CASE
  WHEN i.manual = 1 THEN concat('需人工核对：', i.text)
  WHEN f.rule_kind = 'sex' THEN concat(i.limit_text, '；患者性别：', f.sex)
  WHEN f.rule_kind IN ('age_group', 'age') THEN concat(i.limit_text, '；患者年龄：', {age})
  WHEN f.rule_kind = 'insurance' THEN concat(i.limit_text, '；参保类型：', f.insurance)
  WHEN f.rule_kind = 'care_setting' THEN concat(i.limit_text, '；就医方式：', f.setting)
  WHEN f.rule_kind = 'hospital_level' THEN concat(i.limit_text, '；医疗机构等级：', {level})
  WHEN f.rule_kind = 'frequency' THEN concat({_date("f.d1")}, ' ', i.limit_text, '，当日已计 ', {_num("f.n1")}, '，本条超出 ', {_num("f.n2")})
  WHEN f.chk LIKE 'cycle%' OR f.rule_kind = 'cycle' THEN concat(CAST(f.d2 AS VARCHAR), ' 天内（', {_date("f.d1")}, ' 起）限 ',
       CASE WHEN f.rule_kind = 'cycle' THEN i.p_limit ELSE 1 END, ' 次，已计 ', {_num("f.n1")}, ' 次（流水号 ', COALESCE(f.rel_sn, '-'), ' 等），本条超出 ', {_num("f.n2")})
  WHEN f.chk = 'span_days' THEN concat('首次收费 ', {_date("f.d1")}, '，总时间限 ', CAST(f.d2 AS VARCHAR), ' 天，', {_date("f.day")}, ' 已超出')
  WHEN f.rule_kind = 'drug_course' OR f.chk = 'paid_days' THEN concat(i.limit_text, '；已满（', {_date("f.d1")}, ' 至 ', {_date("f.d2")}, '），', {_date("f.day")}, ' 超出')
  WHEN f.rule_kind = 'duplicate' THEN concat(i.limit_text, '；同期已收取主项（流水号 ', COALESCE(f.rel_sn, '-'), '）')
  WHEN f.rule_kind = 'main_secondary' THEN concat('同组（', i.p_group, '）已有主手术（流水号 ', COALESCE(f.rel_sn, '-'), '），',
       CASE WHEN f.severity = '{kinds.SUSPICIOUS}' THEN '缺少标准价，无法确认是否已折价，按 ' ELSE '应按标准价的 ' END, '{rate:g}', ' 收取')
  ELSE i.limit_text END"""


def limit_text(rule, settings: AuditSettings) -> str:
    """What a rule allows, in words (the first half of every batch finding's message)."""
    p = rule.params
    kind = rule.kind
    if kind == kinds.SEX.key:
        return f"限{p['sex']}性使用"
    if kind in (kinds.AGE_GROUP.key, kinds.AGE.key) and not rule.manual:
        return f"限{age_limit(dict(p), settings)[0]}使用"
    if kind == kinds.INSURANCE.key:
        return f"仅限{p['insurance']}保险支付"
    if kind == kinds.CARE_SETTING.key:
        return f"限{'或'.join(p['settings'])}患者使用"
    if kind == kinds.HOSPITAL_LEVEL.key:
        return f"限{LEVEL_NAMES[p['min_level']]}及以上医疗机构使用"
    if kind == kinds.DRUG_COURSE.key:
        return f"本次住院支付不超过 {p['max_days']} 天"
    if kind == kinds.FREQUENCY.key:
        return f"每日限 {p['limit']} {'次' if p['unit'] == '日' else p['unit']}"
    if kind == kinds.DUPLICATE.key:
        return f"{p.get('frequency') or ''}内收取「{rule.item_name}」时不得另收「{rule.item_name2}」"
    if kind == kinds.COURSE.key and not rule.manual:
        return "；".join(
            f"支付不超过 {c['days']} 天"
            if c["check"] == "paid_days"
            else f"总时间不超过 {c['days']} 天"
            if c["check"] == "span_days"
            else f"{c['days']} 天内不超过 {c['limit']} 次"
            for c in p["checks"]
        )
    return rule.name


def _rule_info_rows(rules: RuleSet, settings: AuditSettings) -> list[tuple]:
    return [
        (
            r.rule_id,
            r.kind,
            kinds.KINDS[r.kind].label,
            r.batch,
            r.ruleset,
            r.name,
            r.text,
            r.item_name,
            limit_text(r, settings),
            1 if r.manual else 0,
            r.params.get("limit"),
            r.params.get("group"),
        )
        for r in rules.rules
    ]


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _copy_csv(con, query: str, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    con.execute(f"COPY ({query}) TO '{tmp.as_posix().replace(chr(39), chr(39) * 2)}' (HEADER, DELIMITER ',')")
    os.replace(tmp, path)


def _dicts(con, query: str) -> list[dict[str, Any]]:
    cur = con.execute(query)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _ranking_sql(key: str, name: str) -> str:
    """Departments / doctors by amount at risk (once per line) then by number of findings."""
    code = f"COALESCE({key}, '（未填写）')"
    return f"""
WITH per_line AS (SELECT {code} AS code, line, MAX(amount) AS a FROM findings_full GROUP BY 1, 2),
     amounts AS (SELECT code, CAST(COALESCE(SUM(a), 0) AS DECIMAL(18,2)) AS amount_at_risk FROM per_line GROUP BY code),
     counts AS (
       SELECT {code} AS code, MIN({name}) AS name, COUNT(*) AS findings,
              COUNT(*) FILTER (WHERE severity = '{kinds.VIOLATION}') AS violations,
              COUNT(*) FILTER (WHERE severity = '{kinds.SUSPICIOUS}') AS suspicious,
              COUNT(DISTINCT line) AS lines
       FROM findings_full GROUP BY 1)
SELECT ROW_NUMBER() OVER (ORDER BY a.amount_at_risk DESC, c.findings DESC, c.code) AS rank, c.*, a.amount_at_risk
FROM counts c JOIN amounts a USING (code)
ORDER BY rank"""


def write_reports(
    con, output: Path, rules: RuleSet, settings: AuditSettings, meta: dict[str, Any]
) -> dict[str, Any]:
    """Write every output into ``output``; returns the summary (also written as summary.json)."""
    import time

    started = time.perf_counter()
    register_rows(con, "rule_info", RULE_INFO_COLUMNS, _rule_info_rows(rules, settings))
    con.execute(
        f"""CREATE OR REPLACE TABLE report_findings AS
SELECT f.*, {_message_sql(Decimal(settings.secondary_operation_rate))} AS msg
FROM (SELECT x.*, r.kind AS rule_kind FROM findings_full x JOIN rule_info r ON r.rule_id = x.rule_id) f
JOIN rule_info i ON i.rule_id = f.rule_id"""
    )
    by_rule = _dicts(
        con,
        """SELECT f.rule_id, i.kind_label, i.batch, i.name AS rule_name, COUNT(*) AS findings,
                  COUNT(*) FILTER (WHERE f.severity = '违规') AS violations, COUNT(*) FILTER (WHERE f.severity = '可疑') AS suspicious,
                  COUNT(DISTINCT f.line) AS lines,
                  CAST(SUM(a) AS DECIMAL(18,2)) AS amount_at_risk
           FROM (SELECT rule_id, line, MAX(severity) AS severity, MAX(amount) AS a, COUNT(*) AS n FROM findings_full GROUP BY rule_id, line) f
           JOIN rule_info i USING (rule_id)
           GROUP BY f.rule_id, i.kind_label, i.batch, i.name
           ORDER BY amount_at_risk DESC, findings DESC, f.rule_id""",
    )
    by_kind = _dicts(
        con,
        """SELECT i.kind, i.kind_label, COUNT(*) AS findings, COUNT(DISTINCT f.line) AS lines,
                  CAST(COALESCE(SUM(f.amount), 0) AS DECIMAL(18,2)) AS amount_at_risk
           FROM findings_full f JOIN rule_info i USING (rule_id) GROUP BY i.kind, i.kind_label
           ORDER BY amount_at_risk DESC, i.kind""",
    )
    departments = _dicts(con, _ranking_sql("dept", "dept_name"))
    doctors = _dicts(con, _ranking_sql("dr", "dr_name"))
    stats = _dicts(con, "SELECT * FROM stats")[0]
    totals = _dicts(
        con,
        f"""SELECT COUNT(*) AS findings, COUNT(*) FILTER (WHERE severity = '{kinds.VIOLATION}') AS violations,
                   COUNT(*) FILTER (WHERE severity = '{kinds.SUSPICIOUS}') AS suspicious, COUNT(DISTINCT line) AS lines,
                   COUNT(DISTINCT mdtrt) AS stays, COUNT(DISTINCT psn) AS patients,
                   CAST((SELECT COALESCE(SUM(a), 0) FROM (SELECT MAX(amount) AS a FROM findings_full GROUP BY line)) AS DECIMAL(18,2)) AS amount_at_risk
            FROM findings_full""",
    )[0]
    unchecked = _dicts(con, "SELECT kind, lines FROM unchecked ORDER BY kind")
    reject_reasons = _dicts(
        con,
        "SELECT file, regexp_replace(reason, '[：:].*$', '') AS reason, COUNT(*) AS lines FROM rejects GROUP BY ALL ORDER BY lines DESC, reason LIMIT 20",
    )
    rank_seconds = time.perf_counter() - started

    started = time.perf_counter()
    output.mkdir(parents=True, exist_ok=True)
    select = ", ".join(
        f'{SAFE_SQL.format(x=expr) if key in TEXT_FROM_INPUT else expr} AS "{key}"'
        for key, expr, _ in FINDING_COLUMNS
    )
    detail_query = f"SELECT {select} FROM report_findings f JOIN rule_info i ON i.rule_id = f.rule_id ORDER BY f.line, f.rule_id, f.chk"
    _copy_csv(con, detail_query, output / "findings.csv")
    _copy_csv(
        con,
        f"SELECT file, line, {SAFE_SQL.format(x='record')} AS record, reason FROM rejects ORDER BY file DESC, line",
        output / "rejects.csv",
    )
    _write_table_csv(output / "by_rule.csv", by_rule)
    _write_table_csv(output / "departments.csv", departments)
    _write_table_csv(output / "doctors.csv", doctors)
    summary = {
        "meta": meta,
        "counts": {k: (str(v) if isinstance(v, Decimal) else v) for k, v in stats.items()},
        "totals": {k: (str(v) if isinstance(v, Decimal) else v) for k, v in totals.items()},
        "by_kind": [
            {k: (str(v) if isinstance(v, Decimal) else v) for k, v in row.items()} for row in by_kind
        ],
        "unchecked": unchecked,
        "reject_reasons": reject_reasons,
    }
    _write_xlsx(output / "findings.xlsx", con, detail_query, summary, by_rule, departments, doctors)
    html = render_html(summary, by_rule, departments, doctors)
    write_atomic(output / "report.html", html.encode("utf-8"))
    report_seconds = time.perf_counter() - started
    summary["timings"] = {
        **meta.pop("timings", {}),
        "rank": round(rank_seconds, 3),
        "report": round(report_seconds, 3),
    }
    summary["meta"] = meta
    return summary


def _write_table_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if rows:
        writer.writerow(list(rows[0]))
        for row in rows:
            writer.writerow(
                [cell_safe(v) if isinstance(v, str) else ("" if v is None else v) for v in row.values()]
            )
    write_atomic(path, buf.getvalue().encode("utf-8"))


def _write_xlsx(path, con, detail_query, summary, by_rule, departments, doctors) -> None:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    wb = Workbook(write_only=True)
    bold = Font(bold=True)

    def sheet(title: str, header: list[str], rows) -> None:
        ws = wb.create_sheet(title)
        ws.freeze_panes = "A2"
        cells = []
        for text in header:
            cell = WriteOnlyCell(ws, value=text)
            cell.font = bold
            cells.append(cell)
        ws.append(cells)
        for row in rows:
            ws.append(
                [
                    cell_safe(v) if isinstance(v, str) else (float(v) if isinstance(v, Decimal) else v)
                    for v in row
                ]
            )

    overview = [["统计项", "值"]] + [
        [k, str(v)] for k, v in {**summary["counts"], **summary["totals"]}.items()
    ]
    sheet("说明", overview[0], overview[1:])
    for title, rows in (("按规则汇总", by_rule), ("科室排名", departments), ("医生排名", doctors)):
        sheet(title, list(rows[0]) if rows else ["（无）"], [list(r.values()) for r in rows])
    total = con.execute("SELECT COUNT(*) FROM report_findings").fetchone()[0]
    detail = con.execute(f"{detail_query} LIMIT {XLSX_DETAIL_ROWS}").fetchall()
    header = [label for _, _, label in FINDING_COLUMNS]
    if total > XLSX_DETAIL_ROWS:
        header[0] = f"规则编号（仅前 {XLSX_DETAIL_ROWS} 条，共 {total} 条，完整清单见 findings.csv）"
    sheet("违规明细", header, detail)
    rejects = con.execute(
        f"SELECT file, line, record, reason FROM rejects ORDER BY file DESC, line LIMIT {XLSX_REJECT_ROWS}"
    ).fetchall()
    sheet("未审核行", ["文件", "行号", "流水号 / 就诊ID", "原因"], rejects)
    buf = io.BytesIO()
    wb.save(buf)
    write_atomic(path, buf.getvalue())


def _money(value: Any) -> str:
    return "—" if value is None else f"{Decimal(value):,.2f}"


def render_html(
    summary: dict[str, Any], by_rule: list[dict], departments: list[dict], doctors: list[dict]
) -> str:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]))
    env.filters["money"] = _money

    def chart(rows: list[dict], label_key: str, title: str) -> Markup:
        top = [r for r in rows if Decimal(str(r["amount_at_risk"] or 0)) > 0][:10]
        if not top:
            return Markup("")
        return Markup(
            hbar_chart(
                [str(r[label_key] or r.get("code") or "") for r in top],
                [float(r["amount_at_risk"]) for r in top],
                title=title,
                value_text=[_money(r["amount_at_risk"]) for r in top],
            )
        )

    kind_rows = summary["by_kind"]
    kind_chart = (
        Markup(
            bar_chart(
                [r["kind_label"] for r in kind_rows],
                [float(r["amount_at_risk"]) for r in kind_rows],
                title="各类规则涉及金额（元）",
                value_text=[_money(r["amount_at_risk"]) for r in kind_rows],
                width=max(640, 70 * len(kind_rows)),
            )
        )
        if kind_rows
        else Markup("")
    )
    return env.get_template("audit_report.html.j2").render(
        s=summary,
        by_rule=by_rule[:20],
        departments=departments[:20],
        doctors=doctors[:20],
        kind_chart=kind_chart,
        rule_chart=chart(by_rule, "rule_name", "涉及金额最多的规则（前 10）"),
        dept_chart=chart(departments, "name", "涉及金额最多的科室（前 10）"),
        doctor_chart=chart(doctors, "name", "涉及金额最多的医生（前 10）"),
        kind_labels={k: v.label for k, v in kinds.KINDS.items()},
    )
