"""What each console page shows, computed from the record (pure reads; the web layer only renders).

Every function takes the viewer's department scope (None: the whole hospital) and applies it in
the query, so a 科室主任 never receives another department's rows, in HTML or in an export.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, select
from sqlalchemy.engine import Connection

from console.models import assessments, cards, findings, imports, settle_rows, stays
from console.tables import Column, Table

OVER = 10000  # projected / standard above 1.0000: the stay is over its payment standard
PAGE_SIZE = 100
BAND_LABELS: dict[str | None, str] = {
    # the thresholds are the region's (``[dip]`` band settings): the labels name the band, not a number
    "low": "费用超低（低于本地区下限）",
    "normal": "正常区间",
    "approaching": "接近标准",
    "loss": "高于标准",
    "high_deviation": "费用超高（高于本地区上限）",
    None: "费用未知",
}


@dataclass(frozen=True)
class Period:
    """Local dates ``start``..``end`` (inclusive) in the hospital's time zone."""

    start: date
    end: date
    zone: ZoneInfo

    @property
    def since(self) -> datetime:
        return datetime.combine(self.start, time.min, self.zone).astimezone(UTC)

    @property
    def until(self) -> datetime:
        return datetime.combine(self.end + timedelta(days=1), time.min, self.zone).astimezone(UTC)

    @classmethod
    def parse(cls, start: str | None, end: str | None, zone: ZoneInfo, weeks: int = 8) -> Period:
        today = datetime.now(zone).date()

        def day(text: str | None) -> date | None:
            try:
                return date.fromisoformat(text) if text else None
            except ValueError:
                return None

        last = day(end) or today
        first = day(start) or (last - timedelta(weeks=weeks) + timedelta(days=1))
        return cls(min(first, last), max(first, last), zone)


def _in_zone(moment: datetime, zone: ZoneInfo) -> datetime:
    """Stored times are UTC (SQLite hands them back naive)."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(zone)


def local(moment: datetime | None, zone: ZoneInfo) -> datetime | None:
    return None if moment is None else _in_zone(moment, zone)


def week_of(moment: datetime, zone: ZoneInfo) -> str:
    year, week, _ = _in_zone(moment, zone).isocalendar()
    return f"{year}-W{week:02d}"


def _scoped(query, column, department: str | None):
    return query if department is None else query.where(column == department)


def _who(row: dict[str, Any]) -> dict[str, Any]:
    row["department"] = row.get("department_name") or row.get("department_code") or "（未知科室）"
    row["doctor"] = row.get("attending_name") or row.get("attending_id") or "（未知医生）"
    return row


# ----------------------------------------------------------------------------- 在院监控

STAY_COLUMNS = (
    Column("rank", "序号", "int"),
    Column("department", "科室"),
    Column("doctor", "主管医生"),
    Column("patient_id", "患者ID"),
    Column("encounter_id", "就诊号"),
    Column("group", "DIP 病种"),
    Column("standard_cents", "支付标准(元)", "money"),
    Column("cost_cents", "已发生费用(元)", "money"),
    Column("projected_cents", "预计费用(元)", "money"),
    Column("ratio_e4", "预计/标准", "ratio"),
    Column("band_label", "费用区间"),
    Column("last_at", "最近评估", "time"),
)


def open_stays(
    conn: Connection,
    department: str | None,
    zone: ZoneInfo,
    dept: str | None = None,
    doctor: str | None = None,
    band: str | None = None,
    page: int = 1,
    everything: bool = False,
) -> dict[str, Any]:
    """Open stays ranked by projected ratio (unknown cost last), one page of them, and the counts."""
    base = _scoped(select(stays).where(stays.c.is_open.is_(True)), stays.c.department_code, department)
    filtered = base
    if dept:
        filtered = filtered.where(stays.c.department_code == dept)
    if doctor:
        filtered = filtered.where(stays.c.attending_id == doctor)
    by_band = filtered
    if band == "unknown":
        filtered = filtered.where(stays.c.band.is_(None))
    elif band:
        filtered = filtered.where(stays.c.band == band)
    total = conn.execute(select(func.count()).select_from(filtered.subquery())).scalar_one()
    ordered = filtered.order_by(stays.c.ratio_e4.desc().nulls_last(), stays.c.last_at.desc(), stays.c.id)
    page = max(1, page)
    if not everything:
        ordered = ordered.limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)
    rows = []
    for number, row in enumerate(
        conn.execute(ordered).mappings(), start=1 if everything else (page - 1) * PAGE_SIZE + 1
    ):
        item = _who(dict(row))
        item["rank"] = number
        item["group"] = " ".join(x for x in (row["group_code"], row["group_name"]) if x) or "未入组"
        if row["estimate"]:
            item["group"] += "（估算）"
        item["band_label"] = BAND_LABELS.get(row["band"], row["band"])
        item["last_at"] = local(row["last_at"], zone)
        rows.append(item)
    sub = by_band.subquery()
    bands: dict[str | None, int] = dict(
        conn.execute(select(sub.c.band, func.count()).group_by(sub.c.band)).all()
    )
    sub_all = base.subquery()
    open_count, over, loss = conn.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((sub_all.c.ratio_e4 > OVER, 1), else_=0)), 0),
            func.coalesce(
                func.sum(
                    case(
                        (sub_all.c.ratio_e4 > OVER, sub_all.c.projected_cents - sub_all.c.standard_cents),
                        else_=0,
                    )
                ),
                0,
            ),
        )
    ).one()
    departments = conn.execute(
        select(sub_all.c.department_code, func.max(sub_all.c.department_name))
        .where(sub_all.c.department_code.is_not(None))
        .group_by(sub_all.c.department_code)
        .order_by(sub_all.c.department_code)
    ).all()
    doctors_q = select(sub_all.c.attending_id, func.max(sub_all.c.attending_name)).where(
        sub_all.c.attending_id.is_not(None)
    )
    if dept:
        doctors_q = doctors_q.where(sub_all.c.department_code == dept)
    doctors = conn.execute(doctors_q.group_by(sub_all.c.attending_id).order_by(sub_all.c.attending_id)).all()
    return {
        "table": Table("stays", "在院患者（按预计/标准排序）", STAY_COLUMNS, rows),
        "total": total,
        "page": page,
        "pages": max(1, -(-total // PAGE_SIZE)),
        "open": open_count,
        "over": over,
        "loss_cents": loss,
        "bands": [
            {"key": k or "unknown", "label": label, "count": bands.get(k, 0)}
            for k, label in BAND_LABELS.items()
        ],
        "departments": [{"code": c, "name": n or c} for c, n in departments],
        "doctors": [{"id": i, "name": n or i} for i, n in doctors],
    }


CHANNEL_LABELS = {"cds-hooks": "CDS Hooks", "plugin": "浏览器插件", "3101": "3101 事前", "3102": "3102 事中"}
HISTORY_COLUMNS = (
    Column("at", "时间", "time"),
    Column("service", "服务"),
    Column("channel_label", "途径"),
    Column("kind", "类型"),
    Column("group", "DIP 病种"),
    Column("standard_cents", "支付标准(元)", "money"),
    Column("cost_cents", "已发生费用(元)", "money"),
    Column("order_cents", "本次医嘱(元)", "money"),
    Column("projected_cents", "预计费用(元)", "money"),
    Column("ratio_e4", "预计/标准", "ratio"),
    Column("band_label", "费用区间"),
    Column("cards", "提示卡片"),
    Column("findings", "审核发现"),
)


def stay_detail(
    conn: Connection, department: str | None, zone: ZoneInfo, stay_key: str
) -> dict[str, Any] | None:
    query = _scoped(select(stays).where(stays.c.stay_key == stay_key), stays.c.department_code, department)
    stay = conn.execute(query).mappings().first()
    if stay is None:
        return None
    history = [
        dict(r)
        for r in conn.execute(
            select(assessments)
            .where(assessments.c.stay_id == stay["id"])
            .order_by(assessments.c.at.desc())
            .limit(500)
        ).mappings()
    ]
    ids = [h["id"] for h in history]
    card_map: dict[int, list[str]] = defaultdict(list)
    finding_map: dict[int, list[str]] = defaultdict(list)
    if ids:
        for r in conn.execute(select(cards).where(cards.c.assessment_id.in_(ids))).mappings():
            card_map[r["assessment_id"]].append(f"[{r['indicator'] or '-'}] {r['summary'] or ''}")
        for r in conn.execute(select(findings).where(findings.c.assessment_id.in_(ids))).mappings():
            finding_map[r["assessment_id"]].append(
                f"{r['severity'] or ''} {r['rule_name'] or r['rule_id']}".strip()
            )
    for h in history:
        h["at"] = local(h["at"], zone)
        h["group"] = " ".join(x for x in (h["group_code"], h["group_name"]) if x) or (
            "未入组" if h["kind"] == "dip" else "—"
        )
        h["band_label"] = BAND_LABELS.get(h["band"], h["band"]) if h["kind"] == "dip" else None
        h["channel_label"] = CHANNEL_LABELS.get(h["channel"] or "", h["channel"])
        h["cards"] = "；".join(card_map.get(h["id"], [])) or None
        h["findings"] = "；".join(finding_map.get(h["id"], [])) or None
    item = _who(dict(stay))
    for key in ("first_at", "last_at", "closed_at"):
        item[key] = local(item[key], zone)
    return {"stay": item, "table": Table("history", "评估历史", HISTORY_COLUMNS, history)}


# ----------------------------------------------------------------------------- 科室 / 医生排名

RANK_COLUMNS = (
    Column("stays", "评估住院数", "int"),
    Column("over", "超标准住院数", "int"),
    Column("over_rate", "超标准占比", "percent"),
    Column("loss_cents", "预计超支(元)", "money"),
    Column("open", "其中在院", "int"),
)


def _rank_rows(conn: Connection, keys: list, department: str | None, period: Period) -> list[dict[str, Any]]:
    over = stays.c.ratio_e4 > OVER
    query = (
        select(
            *keys,
            func.count().label("stays"),
            func.sum(case((over, 1), else_=0)).label("over"),
            func.sum(case((over, stays.c.projected_cents - stays.c.standard_cents), else_=0)).label(
                "loss_cents"
            ),
            func.sum(case((stays.c.is_open.is_(True), 1), else_=0)).label("open"),
        )
        .where(stays.c.last_at >= period.since, stays.c.last_at < period.until, stays.c.dip_at.is_not(None))
        .group_by(*keys)
    )
    rows = []
    for r in conn.execute(_scoped(query, stays.c.department_code, department)).mappings():
        row = _who(dict(r))
        row["over_rate"] = round(row["over"] / row["stays"], 4) if row["stays"] else None
        rows.append(row)
    rows.sort(key=lambda r: (-r["over"], -(r["loss_cents"] or 0), r["department"], r.get("doctor", "")))
    return rows


def _total(rows: list[dict[str, Any]], label_key: str) -> dict[str, Any]:
    total: dict[str, Any] = {label_key: "合计"}
    for key in ("stays", "over", "loss_cents", "open"):
        total[key] = sum(r[key] or 0 for r in rows)
    total["over_rate"] = round(total["over"] / total["stays"], 4) if total["stays"] else None
    return total


def ranking(conn: Connection, department: str | None, period: Period) -> dict[str, Any]:
    """Stays assessed in the period (their latest state): over standard and projected overrun,
    by department and by doctor, and the weekly trend (each stay judged by its last assessment
    of that week)."""
    dept_rows = _rank_rows(conn, [stays.c.department_code, stays.c.department_name], department, period)
    doc_rows = _rank_rows(
        conn,
        [stays.c.department_code, stays.c.department_name, stays.c.attending_id, stays.c.attending_name],
        department,
        period,
    )
    dept_table = Table(
        "departments",
        "科室排名",
        (Column("department", "科室"), *RANK_COLUMNS),
        dept_rows,
        _total(dept_rows, "department"),
    )
    doc_table = Table(
        "doctors",
        "医生排名",
        (Column("doctor", "主管医生"), Column("department", "科室"), *RANK_COLUMNS[:-1]),
        doc_rows,
        _total(doc_rows, "doctor"),
    )
    return {"departments": dept_table, "doctors": doc_table, "weeks": weekly_trend(conn, department, period)}


WEEK_COLUMNS = (
    Column("week", "周"),
    Column("stays", "评估住院数", "int"),
    Column("over", "超标准住院数", "int"),
    Column("over_rate", "超标准占比", "percent"),
    Column("loss_cents", "预计超支(元)", "money"),
)


def weekly_trend(conn: Connection, department: str | None, period: Period) -> Table:
    a = assessments
    query = (
        select(a.c.stay_id, a.c.at, a.c.id, a.c.ratio_e4, a.c.projected_cents, a.c.standard_cents)
        .join(stays, stays.c.id == a.c.stay_id)
        .where(a.c.kind == "dip", a.c.at >= period.since, a.c.at < period.until)
        .order_by(a.c.at, a.c.id)
    )
    last: dict[tuple[str, int], Any] = {}
    for r in conn.execute(_scoped(query, stays.c.department_code, department)):
        last[(week_of(r.at, period.zone), r.stay_id)] = r
    weeks: dict[str, dict[str, Any]] = {}
    day = period.start
    while day <= period.end:  # every week of the period, also those without assessments
        label = week_of(datetime.combine(day, time(12), period.zone), period.zone)
        weeks.setdefault(label, {"week": label, "stays": 0, "over": 0, "loss_cents": 0})
        day += timedelta(days=1)
    for (week, _), r in last.items():
        row = weeks.setdefault(week, {"week": week, "stays": 0, "over": 0, "loss_cents": 0})
        row["stays"] += 1
        if r.ratio_e4 is not None and r.ratio_e4 > OVER:
            row["over"] += 1
            row["loss_cents"] += (r.projected_cents or 0) - (r.standard_cents or 0)
    rows = [weeks[k] for k in sorted(weeks)]
    for row in rows:
        row["over_rate"] = round(row["over"] / row["stays"], 4) if row["stays"] else None
    return Table("weeks", "按周趋势", WEEK_COLUMNS, rows)


# ----------------------------------------------------------------------------- 智能审核

FINDING_SUM_COLUMNS = (Column("count", "发现数", "int"), Column("amount_cents", "涉及金额(元)", "money"))


def _finding_filter(query, department: str | None, period: Period, source: str | None):
    f = findings
    query = _scoped(query, f.c.department_code, department).where(
        f.c.at >= period.since, f.c.at < period.until
    )
    if source == "live":
        query = query.where(f.c.import_id.is_(None))
    elif source and source.isdigit():
        query = query.where(f.c.import_id == int(source))
    return query


def _grouped(conn, keys, department, period, source) -> list[dict[str, Any]]:
    f = findings
    query = select(
        *keys, func.count().label("count"), func.coalesce(func.sum(f.c.amount_cents), 0).label("amount_cents")
    )
    query = _finding_filter(query, department, period, source).group_by(*keys)
    rows = [_who(dict(r)) for r in conn.execute(query).mappings()]
    rows.sort(key=lambda r: (-r["amount_cents"], -r["count"]))
    return rows


def _sum_total(rows: list[dict[str, Any]], label_key: str) -> dict[str, Any]:
    return {
        label_key: "合计",
        "count": sum(r["count"] for r in rows),
        "amount_cents": sum(r["amount_cents"] for r in rows),
    }


FINDING_COLUMNS = (
    Column("at", "时间", "time"),
    Column("source", "来源"),
    Column("department", "科室"),
    Column("doctor", "医生"),
    Column("patient_id", "患者ID"),
    Column("rule_id", "规则"),
    Column("rule_name", "规则名称"),
    Column("severity", "性质"),
    Column("item_code", "项目编码"),
    Column("item_name", "项目名称"),
    Column("amount_cents", "涉及金额(元)", "money"),
    Column("message", "说明"),
)


def audit(conn: Connection, department: str | None, period: Period, source: str | None) -> dict[str, Any]:
    f = findings
    by_rule = _grouped(
        conn, [f.c.rule_id, f.c.rule_name, f.c.rule_kind, f.c.severity], department, period, source
    )
    by_dept = _grouped(conn, [f.c.department_code, f.c.department_name], department, period, source)
    by_doc = _grouped(
        conn,
        [f.c.department_code, f.c.department_name, f.c.attending_id, f.c.attending_name],
        department,
        period,
        source,
    )
    names = dict(conn.execute(select(imports.c.id, imports.c.label)).all())
    listing = _finding_filter(select(f), department, period, source).order_by(
        f.c.amount_cents.desc().nulls_last(), f.c.at.desc()
    )
    rows = []
    for r in conn.execute(listing.limit(20000)).mappings():
        row = _who(dict(r))
        row["at"] = local(row["at"], period.zone)
        row["source"] = names.get(row["import_id"], "导入") if row["import_id"] else "实时审核"
        rows.append(row)
    return {
        "rules": Table(
            "rules",
            "按规则",
            (
                Column("rule_id", "规则"),
                Column("rule_name", "规则名称"),
                Column("rule_kind", "类别"),
                Column("severity", "性质"),
                *FINDING_SUM_COLUMNS,
            ),
            by_rule,
            _sum_total(by_rule, "rule_id"),
        ),
        "departments": Table(
            "departments",
            "按科室",
            (Column("department", "科室"), *FINDING_SUM_COLUMNS),
            by_dept,
            _sum_total(by_dept, "department"),
        ),
        "doctors": Table(
            "doctors",
            "按医生",
            (Column("doctor", "医生"), Column("department", "科室"), *FINDING_SUM_COLUMNS),
            by_doc,
            _sum_total(by_doc, "doctor"),
        ),
        "findings": Table("findings", "审核发现明细", FINDING_COLUMNS, rows, limit=200),
        "imports": [
            dict(r)
            for r in conn.execute(
                select(imports).where(imports.c.kind == "audit").order_by(imports.c.id.desc())
            ).mappings()
        ],
    }


# ----------------------------------------------------------------------------- 反馈

FEEDBACK_COLUMNS = (
    Column("total", "反馈数", "int"),
    Column("accepted", "采纳", "int"),
    Column("overridden", "未采纳", "int"),
    Column("accept_rate", "采纳率", "percent"),
    Column("override_rate", "未采纳率", "percent"),
)


def _rates(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row in rows:
        row["accept_rate"] = round(row["accepted"] / row["total"], 4) if row["total"] else None
        row["override_rate"] = round(row["overridden"] / row["total"], 4) if row["total"] else None
    return rows


def feedback(conn: Connection, department: str | None, period: Period) -> dict[str, Any]:
    """Accept / override counts and reasons, joined to the stay's department and doctor through the
    card uuid the assessment recorded (feedback on cards the console never saw counts under 未知)."""
    from cds_service.feedback import feedback_table as fb

    since, until = period.since.isoformat(), period.until.isoformat()
    card_owner = (
        select(cards.c.card_uuid, func.max(assessments.c.id).label("assessment_id"))
        .join(assessments, assessments.c.id == cards.c.assessment_id)
        .group_by(cards.c.card_uuid)
        .subquery()
    )
    query = (
        select(
            fb.c.service_id,
            fb.c.outcome,
            fb.c.override_code,
            fb.c.override_display,
            assessments.c.department_code,
            assessments.c.department_name,
            assessments.c.attending_id,
            assessments.c.attending_name,
        )
        .select_from(fb)
        .outerjoin(card_owner, card_owner.c.card_uuid == fb.c.card_uuid)
        .outerjoin(assessments, assessments.c.id == card_owner.c.assessment_id)
        .where(fb.c.outcome_timestamp >= since, fb.c.outcome_timestamp < until)
    )
    query = _scoped(query, assessments.c.department_code, department)
    groups: dict[str, dict[tuple, dict[str, Any]]] = {"service": {}, "department": {}, "doctor": {}}
    reasons: dict[tuple, dict[str, Any]] = {}
    for r in conn.execute(query).mappings():
        row = _who(dict(r))
        keys = {
            "service": (row["service_id"],),
            "department": (row["department"],),
            "doctor": (row["doctor"], row["department"]),
        }
        for name, key in keys.items():
            acc = groups[name].setdefault(
                key,
                {
                    "service": row["service_id"],
                    "department": row["department"],
                    "doctor": row["doctor"],
                    "total": 0,
                    "accepted": 0,
                    "overridden": 0,
                },
            )
            acc["total"] += 1
            acc[row["outcome"]] = acc.get(row["outcome"], 0) + 1
        if row["outcome"] == "overridden":
            reason = row["override_display"] or row["override_code"] or "（未说明原因）"
            acc = reasons.setdefault(
                (row["service_id"], reason), {"service": row["service_id"], "reason": reason, "count": 0}
            )
            acc["count"] += 1

    def table(name: str, title: str, first: tuple[Column, ...]) -> Table:
        rows = _rates(sorted(groups[name].values(), key=lambda r: -r["total"]))
        total = {
            first[0].key: "合计",
            **{k: sum(r[k] for r in rows) for k in ("total", "accepted", "overridden")},
        }
        return Table(name + "s", title, (*first, *FEEDBACK_COLUMNS), rows, _rates([total])[0])

    return {
        "services": table("service", "按服务", (Column("service", "服务"),)),
        "departments": table("department", "按科室", (Column("department", "科室"),)),
        "doctors": table("doctor", "按医生", (Column("doctor", "医生"), Column("department", "科室"))),
        "reasons": Table(
            "reasons",
            "未采纳原因",
            (Column("service", "服务"), Column("reason", "原因"), Column("count", "次数", "int")),
            sorted(reasons.values(), key=lambda r: -r["count"]),
        ),
    }


# ----------------------------------------------------------------------------- 结算

SETTLE_TABLES = {
    "departments": "科室",
    "hospitals": "医疗机构",
    "groups": "病种",
    "cases": "病例",
    "rejects": "拒收病例",
}
DEPARTMENT_TABLES = frozenset({"departments", "cases"})  # the tables a 科室主任 sees (own rows only)
SETTLE_NUMBERS = frozenset({
    "cases", "dip_cases", "outside_cases", "total_score", "cmi", "loss_cases", "low_cases", "high_cases",
    "review_2x", "review_5x", "score", "loss_rate", "assessment_coef", "base_score", "hospital_coef",
    "aux_coef", "case_score", "cost_ratio", "settle_score",
})  # fmt: skip
SETTLE_COUNTS = {
    "rows_in": "读入病例", "accepted": "接收", "rejected": "拒收", "duplicates": "其中重复",
    "settled": "本期结算", "dip": "DIP 入组", "outside": "按项目结算", "out_of_period": "非本期",
}  # fmt: skip
FUND_COLUMNS = (
    Column("label", "基金"),
    Column("budget", "基金预算(元)", "yuan"),
    Column("payment_ratio", "支付比例", "number"),
    Column("point_value", "结算点值(元/分)", "number"),
    Column("budget_point_value", "年初点值(元/分)", "number"),
    Column("point_value_ratio", "结算点值 ÷ 年初点值", "number"),
    Column("dip_cases", "DIP 病例数", "int"),
    Column("total_score", "DIP 总分值", "number"),
    Column("outside_cases", "按项目病例数", "int"),
    Column("point_value_source", "点值来源"),
    Column("problem", "问题"),
)


def _settle_kind(key: str) -> str:
    from settlement.reports import MONEY_KEYS

    return (
        "yuan"
        if key in MONEY_KEYS or key == "reference_cost"
        else "number"
        if key in SETTLE_NUMBERS
        else "text"
    )


def _quantized(value: Any, places: str) -> str | None:
    try:
        return str(Decimal(str(value)).quantize(Decimal(places)))
    except (InvalidOperation, ValueError):
        return None if value is None else str(value)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def settle_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """What a run says about itself, in the 医保办's terms: the report's facts (including its data
    notice: synthetic cases are labelled), the counts, each fund's 结算点值 beside its 年初点值 (a
    point value far from the year-start one is the first thing to question), the reconciliation."""
    funds = []
    for fund in summary.get("funds") or []:
        if not isinstance(fund, dict):
            continue
        point, start = fund.get("point_value"), fund.get("budget_point_value")
        try:
            ratio = str((Decimal(str(point)) / Decimal(str(start))).quantize(Decimal("0.01")))
        except (InvalidOperation, ValueError, ArithmeticError):
            ratio = None
        funds.append({
            **fund,
            "label": fund.get("label") or fund.get("fund"),
            "point_value": _quantized(point, "0.000001"),
            "budget_point_value": _quantized(start, "0.000001"),
            "point_value_ratio": ratio,
        })  # fmt: skip
    counts, meta = _mapping(summary.get("counts")), _mapping(summary.get("meta"))
    return {
        "facts": [(k, v) for k, v in meta.items() if v not in (None, "") and k != "数据说明"],
        "notice": meta.get("数据说明"),
        "counts": [(SETTLE_COUNTS.get(k, k), v) for k, v in counts.items()],
        "funds": Table("funds", "基金与点值", FUND_COLUMNS, funds),
        "checks": [c for c in summary.get("reconciliation") or [] if isinstance(c, dict)],
        "notices": [str(n) for n in summary.get("notices") or [] if isinstance(n, str)],
        "ok": summary.get("ok"),
    }


def settle_imports(conn: Connection) -> list[dict[str, Any]]:
    return [
        dict(r)
        for r in conn.execute(
            select(imports).where(imports.c.kind == "settle").order_by(imports.c.id.desc())
        ).mappings()
    ]


def settle_view(
    conn: Connection,
    department: str | None,
    department_names: tuple[str, ...],
    import_id: int,
    table: str,
    page: int,
    everything: bool = False,
) -> dict[str, Any] | None:
    run = (
        conn.execute(select(imports).where(imports.c.id == import_id, imports.c.kind == "settle"))
        .mappings()
        .first()
    )
    if run is None or table not in SETTLE_TABLES:
        return None
    summary = settle_summary(json.loads(run["summary"] or "{}"))
    r = settle_rows
    query = select(r.c.data).where(r.c.import_id == import_id, r.c.table_name == table)
    if department is not None:
        if table not in DEPARTMENT_TABLES:
            return {"run": dict(run), "summary": summary, "table": None, "total": 0, "page": 1, "pages": 1}
        query = query.where(r.c.department.in_(department_names or (department,)))
    total = conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    query = query.order_by(r.c.row_no)
    if not everything:
        query = query.limit(PAGE_SIZE).offset((max(1, page) - 1) * PAGE_SIZE)
    rows = [json.loads(d) for d in conn.execute(query).scalars()]
    header = json.loads(run["summary"] or "{}").get("columns", {}).get(table) or (
        list(rows[0]) if rows else []
    )
    from settlement.reports import DEPARTMENT_COLUMNS, GROUP_COLUMNS, HOSPITAL_COLUMNS

    titles = dict((*HOSPITAL_COLUMNS, *DEPARTMENT_COLUMNS, *GROUP_COLUMNS))
    columns = tuple(Column(h, titles.get(h, h), _settle_kind(h)) for h in header)
    return {
        "run": dict(run),
        "summary": summary,
        "table": Table(f"settle-{table}", SETTLE_TABLES[table], columns, rows),
        "total": total,
        "page": max(1, page),
        "pages": max(1, -(-total // PAGE_SIZE)),
    }
