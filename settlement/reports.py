"""Settlement outputs: case-level CSV, summaries as CSV + XLSX, a Chinese HTML report, summary.json.

Every file is written to a temporary name and renamed into place, and nothing in it depends on
the clock, so a rerun (or a resumed run) produces byte-identical files.
"""

from __future__ import annotations

import csv
import io
import json
import os
import zipfile
from decimal import Decimal
from html import escape
from pathlib import Path

from settlement import charts
from settlement.aggregate import BASIS_DIP, PeriodResult
from settlement.period import ANNUAL, MODE_LABELS, MONTHLY, yuan

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


def write_rejects(path: Path, rejects: list[tuple], sources: list[str]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["source_file", "line", "case_id", "reason"])
    for file_idx, line, case_id, reason in sorted(rejects, key=lambda r: (int(r[0]), int(r[1]))):
        writer.writerow([sources[int(file_idx)], line, cell_safe(case_id), cell_safe(reason)])
    _atomic_bytes(path, buf.getvalue().encode("utf-8"))


def _xlsx_value(value):
    if isinstance(value, str):
        return cell_safe(value)
    if isinstance(value, Decimal):
        return float(value) if value == value.quantize(Decimal("0.0001")) else str(value)
    return value


def write_xlsx(path: Path, result: PeriodResult, meta: dict) -> None:
    """One workbook for the finance office: parameters, hospitals, departments, groups, reconciliation."""
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


def _table(rows: list[dict], columns, limit: int | None = None, money=()) -> str:
    head = "".join(f"<th>{escape(label)}</th>" for _, label in columns)
    body = []
    for row in rows[:limit] if limit else rows:
        cells = []
        for key, _ in columns:
            value = row.get(key)
            text = _money(value) if key in money else _cell(value)
            cls = ' class="neg"' if key in ("gain_loss",) and value is not None and value < 0 else ""
            cells.append(f"<td{cls}>{escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


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


def render_html(result: PeriodResult, meta: dict) -> str:
    """The report a finance officer reads: what was paid, who gains or loses, why, and checks."""
    mode_label = MODE_LABELS[result.mode]
    total_cost = sum((h["total_cost"] for h in result.hospitals), Decimal(0))
    total_pay = sum((h["dip_payment"] for h in result.hospitals), Decimal(0))
    total_fund = sum((h["fund_payment"] for h in result.hospitals), Decimal(0))
    out = [
        "<!DOCTYPE html><html lang='zh-CN'><head><meta charset='utf-8'>",
        f"<title>{escape(meta['标题'])}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(meta['标题'])}</h1>",
    ]
    if meta.get("数据说明"):
        out.append(f"<p class='note'>{escape(meta['数据说明'])}</p>")
    if result.mode == MONTHLY:
        out.append(
            f"<p class='note'>本报告为<b>{escape(mode_label)}</b>:病例按年初点值计算,预付额 = 基金结算额 × 预付比例;"
            "不是年度清算结果,年度清算以基金预算和全年总分值重新计算结算点值。</p>"
        )
    elif result.mode != ANNUAL:
        out.append(
            f"<p class='note'>本报告为<b>{escape(mode_label)}</b>:配置文件未给出基金预算,病例按点值来源一栏所列的点值估算,"
            "仅供参考;配置各基金的 budget 后即为年度清算。</p>"
        )
    kpis = [
        ("结算病例", f"{result.counts['settled']:,}"),
        ("DIP入组病例", f"{result.counts['dip']:,}"),
        ("实际医疗总费用", "¥" + _money(total_cost)),
        ("DIP支付总额", "¥" + _money(total_pay)),
        ("盈亏合计", "¥" + _money(total_pay - total_cost)),
        ("基金应付合计", "¥" + _money(total_fund)),
    ]
    out.append(
        "<div>"
        + "".join(f"<span class='kpi'>{escape(k)}<b>{escape(v)}</b></span>" for k, v in kpis)
        + "</div>"
    )

    out.append("<h2>一、点值与基金</h2>")
    rows = []
    for p in result.plans:
        rows.append(
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
        )
    out.append(
        _table(
            rows,
            (
                ("label", "基金"),
                ("ratio", "基金支付比例"),
                ("budget", "基金预算(元)"),
                ("pv", "本次使用点值(元/分)"),
                ("bpv", "年初点值(元/分)"),
                ("units", "DIP总分值"),
                ("dip", "DIP病例"),
                ("outside", "按项目病例"),
                ("source", "点值来源"),
            ),
            money={"budget"},
        )
    )
    out.append(
        "<p>说明:结算点值 = (基金预算 ÷ 基金支付比例 − 按项目结算病例费用) ÷ 本期DIP病例总分值。"
        "病例支付额 = 病例结算分值 × 点值;基金应付 = 病例支付额 × 基金支付比例。"
        "金额以分为单位按最大余额法分配,确保各医疗机构合计与基金预算分毫不差。</p>"
    )

    out.append("<h2>二、各医疗机构结算</h2>")
    out.append(
        "<p>盈亏 = DIP支付总额 − 实际医疗总费用(负数为亏损)。CMI = DIP病例病种分值之和 ÷ 病例数 ÷ 1000。"
        "基金结算额 = 基金应付 × 考核系数 − 审核扣款。</p>"
    )
    out.append(_table(result.hospitals, HOSPITAL_COLUMNS, money=MONEY_KEYS))

    out.append("<h2>三、费用与支付标准的关系</h2>")
    out.append(
        "<p>横轴为病例实际费用占参考费用(病种同级别例均费用)的比例;低于50%为费用超低病例,高于200%为费用超高病例。</p>"
    )
    colors = [
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
    out.append(
        charts.bar_chart(
            [b["bin"] for b in result.ratio_bins],
            [float(b["cases"]) for b in result.ratio_bins],
            title="病例费用 / 参考费用 分布(病例数)",
            colors=colors,
            width=760,
        )
    )
    out.append(
        charts.bar_chart(
            [b["band"] for b in result.bands],
            [float(b["cases"]) for b in result.bands],
            title="费用偏差类型(病例数)",
        )
    )
    out.append(
        _table(
            result.bands,
            (
                ("band", "偏差类型"),
                ("cases", "病例数"),
                ("total_cost", "实际费用(元)"),
                ("dip_payment", "DIP支付(元)"),
            ),
            money=MONEY_KEYS,
        )
    )

    losers = [g for g in result.groups if g["gain_loss"] is not None and g["gain_loss"] < 0 and g["dip_code"]]
    losers.sort(key=lambda g: (g["gain_loss"], g["dip_code"]))
    out.append("<h2>四、亏损最多的病种(前10)</h2>")
    if losers:
        top = losers[:10]
        out.append(
            charts.hbar_chart(
                [f"{g['dip_code']} {g['group_name']}" for g in top],
                [float(g["gain_loss"]) for g in top],
                title="病种亏损金额(元)",
                value_text=[_money(g["gain_loss"]) for g in top],
            )
        )
        out.append(_table(top, GROUP_COLUMNS, money=MONEY_KEYS))
    else:
        out.append("<p>没有亏损的病种。</p>")

    out.append("<h2>五、点值敏感性</h2>")
    out.append(
        "<p>若最终点值比本次使用的点值高或低,全部医疗机构的盈亏合计将如何变化(按项目病例不受影响)。</p>"
    )
    out.append(
        charts.line_chart(
            [f"{int((s['factor'] - 1) * 100):+d}%" for s in result.sensitivity],
            [float(s["gain_loss"]) for s in result.sensitivity],
            title="点值变化对盈亏合计的影响(元)",
            y_text=[_money(s["gain_loss"]) for s in result.sensitivity],
        )
    )

    special = [h for h in result.hospitals if h["review_5x"]]
    out.append("<h2>六、特例单议候选</h2>")
    out.append(
        "<p>费用超过参考费用5倍的病例可申请特例单议(专家评审),超过2倍的病例单独列出供医保办复核;"
        "明细见 cases.csv 的 special_review 列。</p>"
    )
    out.append(
        _table(
            special, (("hospital_id", "医疗机构编码"), ("review_2x", "超2倍病例"), ("review_5x", "超5倍病例"))
        )
        if special
        else "<p>本期没有超5倍的病例。</p>"
    )
    if result.special_cases:
        out.append(f"<p>费用倍数最高的{len(result.special_cases)}例(超5倍):</p>")
        out.append(
            _table(
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
            )
        )
    losing_departments = sorted(
        (d for d in result.departments if d["gain_loss"] is not None and d["gain_loss"] < 0),
        key=lambda d: (d["gain_loss"], d["hospital_id"], d["department"]),
    )[:15]
    if losing_departments:
        out.append("<h2>七、亏损最多的科室(前15)</h2>")
        out.append(_table(losing_departments, DEPARTMENT_COLUMNS, money=MONEY_KEYS))

    out.append("<h2>八、对账检查</h2>")
    checks = "".join(
        f"<tr><td>{escape(c['check'])}</td><td>{escape(c['detail'])}</td>"
        f"<td class='{'ok' if c['ok'] else 'bad'}'>{'通过' if c['ok'] else '不通过'}</td></tr>"
        for c in result.reconciliation
    )
    out.append(
        f"<table><thead><tr><th>检查</th><th>明细</th><th>结果</th></tr></thead><tbody>{checks}</tbody></table>"
    )
    problems = list(result.deduction_problems)
    if problems:
        out.append("<p class='note'>" + "<br>".join(escape(p) for p in problems) + "</p>")

    out.append("<h2>九、参数</h2>")
    out.append(_table([{"k": k, "v": _cell(v)} for k, v in meta.items()], (("k", "项目"), ("v", "值"))))
    out.append(
        "<p>输出文件:cases.csv(病例明细)、hospitals.csv / departments.csv / groups.csv(汇总)、"
        "settlement.xlsx(同上,Excel)、rejects.csv(拒收病例及原因)、summary.json。</p>"
    )
    out.append("</body></html>")
    return "\n".join(out)


def write_summary_json(path: Path, result: PeriodResult, meta: dict) -> None:
    data = {
        "meta": meta,
        "mode": result.mode,
        "counts": result.counts,
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
        "ok": result.ok,
    }
    _atomic_bytes(path, json.dumps(data, ensure_ascii=False, indent=2, default=str).encode("utf-8"))


def write_all(
    con, out_dir: Path, result: PeriodResult, meta: dict, rejects: list[tuple], sources: list[str]
) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "cases": out_dir / "cases.csv",
        "rejects": out_dir / "rejects.csv",
        "hospitals": out_dir / "hospitals.csv",
        "departments": out_dir / "departments.csv",
        "groups": out_dir / "groups.csv",
        "xlsx": out_dir / "settlement.xlsx",
        "html": out_dir / "report.html",
        "json": out_dir / "summary.json",
    }
    write_cases_csv(con, paths["cases"], sources)
    write_rejects(paths["rejects"], rejects + list(result.duplicates), sources)
    write_table_csv(paths["hospitals"], result.hospitals, HOSPITAL_COLUMNS)
    write_table_csv(paths["departments"], result.departments, DEPARTMENT_COLUMNS)
    write_table_csv(paths["groups"], result.groups, GROUP_COLUMNS)
    write_xlsx(paths["xlsx"], result, meta)
    _atomic_bytes(paths["html"], render_html(result, meta).encode("utf-8"))
    write_summary_json(paths["json"], result, meta)
    return list(paths.values())


__all__ = ["write_all", "render_html", "BASIS_DIP"]
