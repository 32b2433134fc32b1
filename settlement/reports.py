"""Settlement outputs: case-level CSV, summaries as CSV + XLSX, a Chinese HTML report, summary.json.

Every output is first written into a staging folder inside the output folder; only when all of
them are complete are the previous run's files removed and the new ones renamed into place, so a
failed run never leaves new CSVs beside an old report. Nothing depends on the clock, so a rerun
(or a resumed run) produces byte-identical files. The HTML report is a Jinja2 template
(``templates/report.html.j2``) with autoescaping.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import zipfile
from decimal import Decimal
from functools import cache
from pathlib import Path

from settlement import charts
from settlement.aggregate import BASIS_DIP, PeriodResult
from settlement.period import MODE_LABELS, yuan

CASE_OUTPUT = (
    ("case_id", "case_id"),
    ("source_file", "source_file"),
    ("line", "line"),
    ("hospital_id", "hospital_id"),
    ("hospital_level", "hospital_level"),
    ("department", "department"),
    ("insurance_type", "insurance_type"),
    ("fund", "fund"),
    ("discharge_date", "discharge_date"),
    ("dip_code", "dip_code"),
    ("group_type", "group_type"),
    ("group_name", "group_name"),
    ("base_score", "base_score"),
    ("hospital_coef", "hospital_coef"),
    ("aux_coef", "aux_coef"),
    ("case_score", "case_score"),
    ("reference_cost", "reference_cost"),
    ("total_cost", "total_cost"),
    ("cost_ratio", "cost_ratio"),
    ("deviation_band", "band"),
    ("special_review", "review"),
    (
        "settle_score",
        "CAST(CAST(settle_units AS DECIMAL(18,0)) * CAST(0.0001 AS DECIMAL(5,4)) AS DECIMAL(18,4))",
    ),
    ("basis", "basis"),
    ("dip_payment", "CAST(CAST(dip_cents AS DECIMAL(18,0)) * CAST(0.01 AS DECIMAL(3,2)) AS DECIMAL(18,2))"),
    ("fund_payment", "CAST(CAST(fund_cents AS DECIMAL(18,0)) * CAST(0.01 AS DECIMAL(3,2)) AS DECIMAL(18,2))"),
    (
        "gain_loss",
        "CAST(CAST(dip_cents - cost_cents AS DECIMAL(18,0)) * CAST(0.01 AS DECIMAL(3,2)) AS DECIMAL(18,2))",
    ),
    ("fund_paid", "fund_paid"),
    ("synthetic", "synthetic"),
    ("reason", "reason"),
    ("flags", "flags"),
    ("qc_flags", "qc_flags"),
)

HOSPITAL_COLUMNS = (
    ("hospital_id", "医疗机构编码"),
    ("hospital_name", "医疗机构名称"),
    ("hospital_level", "等级"),
    ("cases", "结算病例数"),
    ("dip_cases", "DIP病例数"),
    ("outside_cases", "按项目病例数"),
    ("total_score", "总分值"),
    ("cmi", "CMI"),
    ("total_cost", "实际医疗总费用(元)"),
    ("dip_payment", "DIP支付总额(元)"),
    ("gain_loss", "盈亏(元)"),
    ("loss_cases", "亏损病例数"),
    ("low_cases", "费用超低病例"),
    ("high_cases", "费用超高病例"),
    ("review_2x", "超2倍病例"),
    ("review_5x", "特例单议候选(超5倍)"),
    ("fund_payment", "基金应付(元)"),
    ("assessment_coef", "考核系数"),
    ("assessment_adjustment", "考核调整(元)"),
    ("deductions", "审核扣款(元)"),
    ("net_settlement", "基金结算额(元)"),
    ("prepayment", "预付额(元)"),
    ("fund_paid", "基金已支付(元)"),
)
DEPARTMENT_COLUMNS = (
    ("hospital_id", "医疗机构编码"),
    ("department", "科室"),
    ("cases", "结算病例数"),
    ("dip_cases", "DIP病例数"),
    ("total_score", "总分值"),
    ("cmi", "CMI"),
    ("total_cost", "实际医疗总费用(元)"),
    ("dip_payment", "DIP支付总额(元)"),
    ("gain_loss", "盈亏(元)"),
    ("loss_cases", "亏损病例数"),
    ("low_cases", "费用超低病例"),
    ("high_cases", "费用超高病例"),
    ("review_5x", "特例单议候选(超5倍)"),
    ("fund_payment", "基金应付(元)"),
)
GROUP_COLUMNS = (
    ("dip_code", "病种编码"),
    ("group_name", "病种名称"),
    ("group_type", "病种类型"),
    ("score", "病种分值"),
    ("cases", "病例数"),
    ("avg_cost", "例均费用(元)"),
    ("avg_reference_cost", "例均参考费用(元)"),
    ("total_cost", "实际医疗总费用(元)"),
    ("dip_payment", "DIP支付总额(元)"),
    ("gain_loss", "盈亏(元)"),
    ("loss_cases", "亏损病例数"),
    ("loss_rate", "亏损病例占比"),
    ("low_cases", "费用超低病例"),
    ("high_cases", "费用超高病例"),
    ("review_5x", "特例单议候选(超5倍)"),
)
#: Text columns that come from the input files: neutralised against spreadsheet formula injection
#: (a department called ``=HYPERLINK(...)`` must stay text when a clerk opens the file in Excel).
TEXT_FROM_INPUT = {
    "case_id",
    "hospital_id",
    "hospital_level",
    "department",
    "insurance_type",
    "discharge_date",
}
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
SAFE_SQL = "CASE WHEN left({x}, 1) IN ('=', '+', '-', '@', chr(9), chr(13)) THEN chr(39) || {x} ELSE {x} END"


def cell_safe(value):
    """Prefix a formula-looking string with an apostrophe (same rule as ``dip-cds group``)."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


#: Control characters XML (so XLSX) cannot hold; HIS exports do contain them (NUL, vertical tab…).
CONTROL_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def printable(text: str) -> str:
    """Text without control characters (each becomes U+FFFD, so the clerk sees something was there)."""
    return CONTROL_CHARS.sub("\ufffd", text)


#: Fixed timestamp written into XLSX metadata so reruns are byte-identical.
FIXED_ZIP_TIME = (2000, 1, 1, 0, 0, 0)


def _atomic_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _cell(value) -> str:
    if value is None:
        return ""
    return str(value)


def write_table_csv(path: Path, rows: list[dict], columns) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([key for key, _ in columns])
    for row in rows:
        writer.writerow(
            [cell_safe(v) if isinstance(v := row.get(key), str) else _cell(v) for key, _ in columns]
        )
    _atomic_bytes(path, buf.getvalue().encode("utf-8"))


def write_cases_csv(con, path: Path, sources: list[str]) -> None:
    """Case-level output, in input order, via DuckDB (fast for a million rows)."""
    files = (
        "[" + ", ".join("'" + s.replace("'", "''") + "'" for s in sources) + "]::VARCHAR[]"
        if sources
        else "[]"
    )
    exprs = []
    for name, expr in CASE_OUTPUT:
        if name == "source_file":
            expr = f"({files})[file_idx + 1]"
        elif name in TEXT_FROM_INPUT:
            expr = SAFE_SQL.format(x=expr)
        exprs.append(f'{expr} AS "{name}"')
    tmp = path.with_name(path.name + ".tmp")
    con.execute(
        f"""COPY (SELECT {", ".join(exprs)} FROM settled ORDER BY file_idx, line)
            TO '{tmp.as_posix().replace("'", "''")}' (HEADER, DELIMITER ',')"""
    )
    os.replace(tmp, path)


STAGE_READ = "拒收"
STAGE_DUPLICATE = "重复病例"
STAGE_QC = "质控不通过"
REJECT_COLUMNS = ("source_file", "line", "case_id", "stage", "reason")


def rejected_rows(
    con, rejects: list[tuple], duplicates: list[tuple], sources: list[str]
) -> list[tuple[str, int, str, str, str]]:
    """Every case the period does not pay by DIP because of its data, in input order: rows that
    could not be read, duplicates, and cases the quality gate rejected (these stay in cases.csv)."""
    qc = con.execute(
        "SELECT file_idx, line, case_id, reason FROM settled WHERE basis LIKE '%质控不通过%' ORDER BY file_idx, line"
    ).fetchall()
    rows = [(*r[:3], STAGE_READ, r[3]) for r in rejects]
    rows += [(*r[:3], STAGE_DUPLICATE, r[3]) for r in duplicates]
    rows += [(*r[:3], STAGE_QC, r[3]) for r in qc]
    rows.sort(key=lambda r: (int(r[0]), int(r[1])))
    return [
        (sources[int(f)], int(line), case_id or "", stage, reason) for f, line, case_id, stage, reason in rows
    ]


def write_rejects(path: Path, rows: list[tuple]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(REJECT_COLUMNS)
    for source, line, case_id, stage, reason in rows:
        writer.writerow([source, line, cell_safe(case_id), stage, cell_safe(reason)])
    _atomic_bytes(path, buf.getvalue().encode("utf-8"))


def _xlsx_value(value):
    if isinstance(value, str):
        return cell_safe(printable(value))
    if isinstance(value, Decimal):
        return float(value) if value == value.quantize(Decimal("0.0001")) else str(value)
    return value


XLSX_REJECT_LIMIT = 10_000  # more would make the workbook slow to write and to open; rejects.csv has all


def write_xlsx(path: Path, result: PeriodResult, meta: dict, rejected: list[tuple]) -> None:
    """One workbook for the finance office: parameters, hospitals, departments, groups,
    reconciliation, and the rejected cases with their reasons."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    wb = Workbook(write_only=True)
    bold = Font(bold=True)

    def sheet(title: str, header: list[str], rows: list[list]) -> None:
        from openpyxl.utils import get_column_letter

        ws = wb.create_sheet(title)
        ws.freeze_panes = "A2"
        for i, text in enumerate(header, start=1):
            ws.column_dimensions[get_column_letter(i)].width = max(10, min(40, len(str(text)) * 2 + 2))
        cells = []
        for text in header:
            cell = WriteOnlyCell(ws, value=text)
            cell.font = bold
            cells.append(cell)
        ws.append(cells)
        for row in rows:
            ws.append([_xlsx_value(v) for v in row])

    sheet("说明", ["项目", "值"], [[k, _cell(v)] for k, v in meta.items()])
    for title, rows, columns in (
        ("医疗机构", result.hospitals, HOSPITAL_COLUMNS),
        ("科室", result.departments, DEPARTMENT_COLUMNS),
        ("病种", result.groups, GROUP_COLUMNS),
    ):
        sheet(title, [label for _, label in columns], [[row.get(key) for key, _ in columns] for row in rows])
    sheet(
        "对账",
        ["检查", "明细", "结果"],
        [[c["check"], c["detail"], "通过" if c["ok"] else "不通过"] for c in result.reconciliation],
    )
    sheet(
        "质控规则", ["规则", "说明", "病例数"], [[q["rule"], q["name"], q["cases"]] for q in result.qc_rules]
    )
    listed = [list(r) for r in rejected[:XLSX_REJECT_LIMIT]]
    if len(rejected) > XLSX_REJECT_LIMIT:
        listed.append(
            [
                "",
                "",
                "",
                "",
                f"（只列出前 {XLSX_REJECT_LIMIT} 条，共 {len(rejected)} 条，全部见 rejects.csv）",
            ]
        )
    sheet("拒收与质控", ["来源文件", "行号", "病例号", "类别", "原因"], listed)
    buf = io.BytesIO()
    wb.save(buf)
    _atomic_bytes(path, _deterministic_zip(buf.getvalue()))


def _deterministic_zip(data: bytes) -> bytes:
    """Rewrite an XLSX with fixed timestamps so identical content gives identical bytes."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            content = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                import re

                content = re.sub(
                    rb"<dcterms:(created|modified)([^>]*)>[^<]*<",
                    rb"<dcterms:\1\2>2000-01-01T00:00:00Z<",
                    content,
                )
            fixed = zipfile.ZipInfo(info.filename, date_time=FIXED_ZIP_TIME)
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = info.external_attr
            dst.writestr(fixed, content)
    return out.getvalue()


def _money(value) -> str:
    if value is None:
        return "—"
    return f"{value:,.2f}"


MONEY_KEYS = {
    "total_cost",
    "dip_payment",
    "gain_loss",
    "fund_payment",
    "assessment_adjustment",
    "deductions",
    "net_settlement",
    "prepayment",
    "fund_paid",
    "avg_cost",
    "avg_reference_cost",
}

CSS = """
body{font-family:"Microsoft YaHei","PingFang SC","Noto Sans CJK SC",sans-serif;margin:24px;color:#222;max-width:1280px}
h1{font-size:22px}h2{font-size:18px;border-bottom:2px solid #2f6fb0;padding-bottom:4px;margin-top:32px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#eef3f9;text-align:center}td:first-child,td:nth-child(2){text-align:left}
.neg{color:#c23b3b}.ok{color:#3a9d5d;font-weight:bold}.bad{color:#c23b3b;font-weight:bold}
.note{background:#fff8e1;border-left:4px solid #d4a017;padding:8px 12px;margin:8px 0}
.kpi{display:inline-block;border:1px solid #ccc;border-radius:6px;padding:8px 16px;margin:4px;min-width:150px}
.kpi b{display:block;font-size:18px}.chart{margin:8px 16px 8px 0}.ct{font-size:14px;font-weight:bold}
.cv{font-size:11px}.cl{font-size:11px;fill:#444}
"""
RATIO_COLORS = [
    "#d4a017",
    "#3a9d5d",
    "#3a9d5d",
    "#2f6fb0",
    "#2f6fb0",
    "#2f6fb0",
    "#e07b39",
    "#c23b3b",
    "#8a5fb5",
]
HTML_REJECT_LIMIT = 200


def _table(rows: list[dict], columns, limit: int | None = None, money=()) -> dict:
    """A table for the template: labels and formatted cells (gain/loss below zero marked)."""
    out = []
    for row in rows[:limit] if limit else rows:
        cells = []
        for key, _ in columns:
            value = row.get(key)
            text = _money(value) if key in money else _cell(value)
            negative = key == "gain_loss" and value is not None and value < 0
            cells.append({"text": printable(text), "negative": negative})
        out.append(cells)
    return {"labels": [label for _, label in columns], "rows": out}


@cache
def _template():
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(
        loader=PackageLoader("settlement", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )
    return env.get_template("report.html.j2")


def render_html(result: PeriodResult, meta: dict, rejected: list[tuple] | None = None) -> str:
    """The report a finance officer reads: what was paid, who gains or loses, why, and checks."""
    from markupsafe import Markup

    total_cost = sum((h["total_cost"] for h in result.hospitals), Decimal(0))
    total_pay = sum((h["dip_payment"] for h in result.hospitals), Decimal(0))
    total_fund = sum((h["fund_payment"] for h in result.hospitals), Decimal(0))
    plans = [
        {
            "label": p.label,
            "ratio": p.payment_ratio,
            "budget": yuan(p.budget_cents),
            "pv": "—" if p.point_value is None else f"{p.point_value:.6f}",
            "bpv": "—" if p.budget_point_value is None else f"{p.budget_point_value:.6f}",
            "units": f"{Decimal(p.totals.dip_units) / 10000:,.4f}",
            "dip": p.totals.dip_cases,
            "outside": p.totals.outside_cases,
            "source": p.problem or p.point_value_source,
        }
        for p in result.plans
    ]
    losers = sorted(
        (g for g in result.groups if g["gain_loss"] is not None and g["gain_loss"] < 0 and g["dip_code"]),
        key=lambda g: (g["gain_loss"], g["dip_code"]),
    )[:10]
    losing_departments = sorted(
        (d for d in result.departments if d["gain_loss"] is not None and d["gain_loss"] < 0),
        key=lambda d: (d["gain_loss"], d["hospital_id"], d["department"]),
    )[:15]
    shown = [
        dict(zip(("source", "line", "case_id", "stage", "reason"), r, strict=True)) for r in rejected or ()
    ]
    svg = {
        "ratio": charts.bar_chart(
            [b["bin"] for b in result.ratio_bins],
            [float(b["cases"]) for b in result.ratio_bins],
            title="病例费用 / 参考费用 分布(病例数)",
            colors=RATIO_COLORS,
            width=760,
        ),
        "bands": charts.bar_chart(
            [b["band"] for b in result.bands],
            [float(b["cases"]) for b in result.bands],
            title="费用偏差类型(病例数)",
        ),
        "losers": charts.hbar_chart(
            [f"{g['dip_code']} {g['group_name']}" for g in losers],
            [float(g["gain_loss"]) for g in losers],
            title="病种亏损金额(元)",
            value_text=[_money(g["gain_loss"]) for g in losers],
        )
        if losers
        else "",
        "sensitivity": charts.line_chart(
            [f"{int((s['factor'] - 1) * 100):+d}%" for s in result.sensitivity],
            [float(s["gain_loss"]) for s in result.sensitivity],
            title="点值变化对盈亏合计的影响(元)",
            y_text=[_money(s["gain_loss"]) for s in result.sensitivity],
        ),
    }
    context = {
        "css": Markup(CSS),
        "meta": meta,
        "mode": result.mode,
        "mode_label": MODE_LABELS[result.mode],
        "counts": result.counts,
        "payment_rules": {
            "ungrouped": result.payment_rules.get("ungrouped", ""),
            "rejected": result.payment_rules.get("rejected", ""),
        },
        "kpis": [
            ("结算病例", f"{result.counts['settled']:,}"),
            ("DIP入组病例", f"{result.counts['dip']:,}"),
            ("实际医疗总费用", "¥" + _money(total_cost)),
            ("DIP支付总额", "¥" + _money(total_pay)),
            ("盈亏合计", "¥" + _money(total_pay - total_cost)),
            ("基金应付合计", "¥" + _money(total_fund)),
        ],
        "plans": _table(
            plans,
            (
                ("label", "基金"),
                ("ratio", "基金支付比例"),
                ("budget", "基金预算(元)"),
                ("pv", "本次使用点值(元/分)"),
                ("bpv", "年初点值(元/分)"),
                ("units", "DIP总分值"),
                ("dip", "DIP病例"),
                ("outside", "非DIP病例"),
                ("source", "点值来源"),
            ),
            money={"budget"},
        ),
        "hospitals": _table(result.hospitals, HOSPITAL_COLUMNS, money=MONEY_KEYS),
        "charts": {k: Markup(v) for k, v in svg.items()},  # built and escaped by settlement.charts
        "bands": _table(
            result.bands,
            (
                ("band", "偏差类型"),
                ("cases", "病例数"),
                ("total_cost", "实际费用(元)"),
                ("dip_payment", "DIP支付(元)"),
            ),
            money=MONEY_KEYS,
        ),
        "losers": _table(losers, GROUP_COLUMNS, money=MONEY_KEYS),
        "special": _table(
            [h for h in result.hospitals if h["review_5x"]],
            (("hospital_id", "医疗机构编码"), ("review_2x", "超2倍病例"), ("review_5x", "超5倍病例")),
        ),
        "special_cases": _table(
            result.special_cases,
            (
                ("case_id", "病例号"),
                ("hospital_id", "医疗机构编码"),
                ("department", "科室"),
                ("dip_code", "病种编码"),
                ("group_name", "病种名称"),
                ("total_cost", "实际费用(元)"),
                ("reference_cost", "参考费用(元)"),
                ("cost_ratio", "费用倍数"),
                ("gain_loss", "盈亏(元)"),
            ),
            money=MONEY_KEYS | {"reference_cost"},
        ),
        "losing_departments": _table(losing_departments, DEPARTMENT_COLUMNS, money=MONEY_KEYS),
        "reconciliation": result.reconciliation,
        "problems": list(result.notices),
        "qc_rules": _table(result.qc_rules, (("rule", "质控规则"), ("name", "说明"), ("cases", "病例数"))),
        "rejected": {
            **_table(
                shown,
                (
                    ("source", "来源文件"),
                    ("line", "行号"),
                    ("case_id", "病例号"),
                    ("stage", "类别"),
                    ("reason", "原因"),
                ),
                limit=HTML_REJECT_LIMIT,
            ),
            "truncated": len(shown) > HTML_REJECT_LIMIT,
            "total": len(shown),
        },
        "parameters": _table(
            [{"k": k, "v": _cell(v)} for k, v in meta.items()], (("k", "项目"), ("v", "值"))
        ),
    }
    return _template().render(context)


def write_summary_json(path: Path, result: PeriodResult, meta: dict) -> None:
    data = {
        "meta": meta,
        "mode": result.mode,
        "counts": result.counts,
        "payment_rules": result.payment_rules,
        "qc_rules": result.qc_rules,
        "funds": [
            {
                "fund": p.fund,
                "label": p.label,
                "payment_ratio": str(p.payment_ratio),
                "budget": _cell(yuan(p.budget_cents)),
                "point_value": _cell(p.point_value),
                "budget_point_value": _cell(p.budget_point_value),
                "point_value_source": p.point_value_source,
                "dip_cases": p.totals.dip_cases,
                "total_score": str(Decimal(p.totals.dip_units) / 10000),
                "outside_cases": p.totals.outside_cases,
                "problem": p.problem,
            }
            for p in result.plans
        ],
        "reconciliation": result.reconciliation,
        "notices": result.notices,
        "ok": result.ok,
    }
    _atomic_bytes(path, json.dumps(data, ensure_ascii=False, indent=2, default=str).encode("utf-8"))


#: The files of a report, in the order they are moved into place (summary.json last: its presence
#: says the set is complete).
OUTPUT_FILES = (
    "cases.csv",
    "rejects.csv",
    "hospitals.csv",
    "departments.csv",
    "groups.csv",
    "settlement.xlsx",
    "report.html",
    "summary.json",
)
STAGING_PREFIX = ".report-staging-"


def write_all(
    con, out_dir: Path, result: PeriodResult, meta: dict, rejects: list[tuple], sources: list[str]
) -> list[Path]:
    """Write every output into a staging folder, then replace the previous report as a whole."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for leftover in out_dir.glob(STAGING_PREFIX + "*"):  # a run killed while writing
        shutil.rmtree(leftover, ignore_errors=True)
    stage = out_dir / f"{STAGING_PREFIX}{os.getpid()}"
    stage.mkdir()
    try:
        rejected = rejected_rows(con, rejects, list(result.duplicates), sources)
        write_cases_csv(con, stage / "cases.csv", sources)
        write_rejects(stage / "rejects.csv", rejected)
        write_table_csv(stage / "hospitals.csv", result.hospitals, HOSPITAL_COLUMNS)
        write_table_csv(stage / "departments.csv", result.departments, DEPARTMENT_COLUMNS)
        write_table_csv(stage / "groups.csv", result.groups, GROUP_COLUMNS)
        write_xlsx(stage / "settlement.xlsx", result, meta, rejected)
        _atomic_bytes(stage / "report.html", render_html(result, meta, rejected).encode("utf-8"))
        write_summary_json(stage / "summary.json", result, meta)
        for name in (*OUTPUT_FILES[::-1], *(f"{n}.tmp" for n in OUTPUT_FILES)):  # summary.json first
            (out_dir / name).unlink(missing_ok=True)  # never a mix of this run's files and an old report
        for name in OUTPUT_FILES:
            os.replace(stage / name, out_dir / name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return [out_dir / name for name in OUTPUT_FILES]


__all__ = ["write_all", "render_html", "BASIS_DIP"]
