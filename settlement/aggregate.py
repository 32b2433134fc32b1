"""Period aggregation with DuckDB: dedupe, trimming, point values, payments, summaries, reconciliation.

Input: the checkpointed chunk files written by the grouping workers. All money is summed as
integer cents and shared out with the largest-remainder method (ties broken by case_id), so the
result is deterministic and identical to the Spark engine's.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from settlement.bridge import SCORE_UNIT
from settlement.config import SettleConfig
from settlement.period import (
    ANNUAL,
    FundPlan,
    FundTotals,
    plan_fund,
    scaled,
    trim_counts,
    yuan,
)
from settlement.records import CASE_COLUMNS, REVIEW_HIGH, REVIEW_SPECIAL

BASIS_DIP = "DIP"
BASIS_TRIMMED = "按项目(分位数修剪)"
#: cases without a group are paid by the region's ``[ungrouped]`` rule: their basis is the record's
#: ``outside_basis`` (按项目 / 不予支付, 未入组 / 质控不通过) and their amount ``outside_cents``.
BASIS_OUTSIDE = "outside_basis"

RATIO_BINS = (
    ("<50%", None, Decimal("0.5")),
    ("50–80%", Decimal("0.5"), Decimal("0.8")),
    ("80–100%", Decimal("0.8"), Decimal("1.0")),
    ("100–120%", Decimal("1.0"), Decimal("1.2")),
    ("120–150%", Decimal("1.2"), Decimal("1.5")),
    ("150–200%", Decimal("1.5"), Decimal("2.0")),
    ("200–300%", Decimal("2.0"), Decimal("3.0")),
    ("300–500%", Decimal("3.0"), Decimal("5.0")),
    (">500%", Decimal("5.0"), None),
)
SENSITIVITY = (Decimal("0.90"), Decimal("0.95"), Decimal("1.00"), Decimal("1.05"), Decimal("1.10"))


@dataclass
class Deduction:
    hospital_id: str
    case_id: str
    amount_cents: int
    reason: str


@dataclass
class PeriodResult:
    """Everything the reports show; tables are lists of dicts with Decimal money."""

    mode: str
    plans: list[FundPlan]
    hospitals: list[dict]
    departments: list[dict]
    groups: list[dict]
    bands: list[dict]
    ratio_bins: list[dict]
    sensitivity: list[dict]
    counts: dict[str, int]
    reconciliation: list[dict]
    duplicates: list[tuple]
    notices: list[str] = field(default_factory=list)  # printed, in the report and summary.json: read them
    special_cases: list[dict] = field(default_factory=list)
    qc_rules: list[dict] = field(default_factory=list)  # findings of the quality gate by rule
    payment_rules: dict[str, str] = field(default_factory=dict)  # what cases without a group are paid

    @property
    def ok(self) -> bool:
        return all(check["ok"] for check in self.reconciliation) and not any(p.problem for p in self.plans)


def connect(threads: int | None = None, temp_dir: Path | None = None, memory_limit: str = "1GB"):
    """A DuckDB connection with a memory cap (it spills to ``temp_dir`` beyond it): ≤ 2 GB per run."""
    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    con.execute("SET preserve_insertion_order = true")
    con.execute("SET enable_progress_bar = false")
    con.execute(f"SET memory_limit = '{memory_limit}'")
    if temp_dir is not None:
        con.execute(f"SET temp_directory = '{temp_dir.as_posix().replace(chr(39), chr(39) * 2)}'")
    return con


def load_chunks(con: duckdb.DuckDBPyConnection, work_dir: Path) -> None:
    """Table ``raw``: every checkpointed case record, in input order."""
    files = sorted(str(p) for p in Path(work_dir).glob("c*.cases.csv"))
    columns = ", ".join(f'"{name}" {typ}' for name, typ in CASE_COLUMNS)
    if not files:
        con.execute(f"CREATE OR REPLACE TABLE raw ({columns})")
        return
    spec = "{" + ", ".join(f"'{name}': '{typ}'" for name, typ in CASE_COLUMNS) + "}"
    con.execute(
        f"""CREATE OR REPLACE TABLE raw AS SELECT * FROM read_csv(?, header = true, columns = {spec},
            auto_detect = false, quote = '"', escape = '"', delim = ',', new_line = '\\n')""",
        [files],
    )


def dedupe(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """Keep the first occurrence of each case_id (view ``cases``); later ones are returned as rejects."""
    con.execute(
        """CREATE OR REPLACE TEMP TABLE dup_ids AS SELECT case_id, min(file_idx * 10000000000 + line) AS first_key
           FROM raw GROUP BY case_id HAVING count(*) > 1"""
    )
    duplicates = con.execute(
        """SELECT r.file_idx, r.line, r.case_id, 'duplicate case_id (first in file ' || (d.first_key // 10000000000)
           || ' line ' || (d.first_key % 10000000000) || ')'
           FROM raw r JOIN dup_ids d ON d.case_id = r.case_id
           WHERE r.file_idx * 10000000000 + r.line > d.first_key ORDER BY r.file_idx, r.line"""
    ).fetchall()
    if duplicates:
        con.execute(
            """DELETE FROM raw WHERE EXISTS (SELECT 1 FROM dup_ids d WHERE d.case_id = raw.case_id
               AND raw.file_idx * 10000000000 + raw.line > d.first_key)"""
        )
    con.execute("CREATE OR REPLACE VIEW cases AS SELECT * FROM raw")
    return duplicates


def mark_basis(con: duckdb.DuckDBPyConnection, config: SettleConfig) -> None:
    """Column ``basis`` (DIP / 按项目) on every case; view ``eligible`` = the period's cases."""
    con.execute("ALTER TABLE raw ADD COLUMN IF NOT EXISTS basis VARCHAR")
    con.execute(f"UPDATE raw SET basis = CASE WHEN grouped = 0 THEN {BASIS_OUTSIDE} ELSE '{BASIS_DIP}' END")
    if config.trim == "quantile":
        counts = con.execute(
            "SELECT fund, count(*) FROM raw WHERE in_period = 1 AND grouped = 1 AND cost_ratio IS NOT NULL "
            "GROUP BY fund ORDER BY fund"
        ).fetchall()
        limits = [(fund, *trim_counts(n, *config.trim_quantiles)) for fund, n in counts]
        con.execute("CREATE OR REPLACE TEMP TABLE trim_limits (fund VARCHAR, below BIGINT, above BIGINT)")
        if limits:
            con.executemany("INSERT INTO trim_limits VALUES (?, ?, ?)", limits)
        con.execute(
            """CREATE OR REPLACE TEMP TABLE trimmed AS
            WITH r AS (
                SELECT file_idx, line, fund,
                    row_number() OVER (PARTITION BY fund ORDER BY cost_ratio, case_id) AS lo_rank,
                    row_number() OVER (PARTITION BY fund ORDER BY cost_ratio DESC, case_id DESC) AS hi_rank
                FROM raw WHERE in_period = 1 AND grouped = 1 AND cost_ratio IS NOT NULL
            )
            SELECT r.file_idx, r.line FROM r JOIN trim_limits t ON t.fund = r.fund
            WHERE r.lo_rank <= t.below OR r.hi_rank <= t.above"""
        )
        con.execute(
            f"""UPDATE raw SET basis = '{BASIS_TRIMMED}' FROM trimmed t
                WHERE raw.file_idx = t.file_idx AND raw.line = t.line"""
        )
    con.execute("CREATE OR REPLACE VIEW eligible AS SELECT * FROM raw WHERE in_period = 1")


def fund_totals(con: duckdb.DuckDBPyConnection) -> dict[str, FundTotals]:
    rows = con.execute(
        f"""SELECT fund,
            count(*) FILTER (WHERE basis = '{BASIS_DIP}'),
            coalesce(sum(settle_units) FILTER (WHERE basis = '{BASIS_DIP}'), 0)::HUGEINT,
            count(*) FILTER (WHERE basis <> '{BASIS_DIP}'),
            coalesce(sum(outside_cents) FILTER (WHERE basis <> '{BASIS_DIP}'), 0)::HUGEINT,
            coalesce(sum(outside_fund_cents) FILTER (WHERE basis <> '{BASIS_DIP}'), 0)::HUGEINT
        FROM eligible GROUP BY fund ORDER BY fund"""
    ).fetchall()
    return {r[0]: FundTotals(r[0], int(r[1]), int(r[2]), int(r[3]), int(r[4]), int(r[5])) for r in rows}


def make_plans(
    config: SettleConfig,
    totals: dict[str, FundTotals],
    mode: str,
    budget_pv: dict[str, tuple[Decimal | None, str]],
) -> list[FundPlan]:
    plans = []
    for fund in config.funds:
        fund_totals_ = totals.get(fund.key, FundTotals(fund.key, 0, 0, 0, 0, 0))
        if fund_totals_.dip_cases == 0 and fund_totals_.outside_cases == 0 and fund.key not in totals:
            if fund.key == "all" or mode != ANNUAL:
                continue
        pv, source = budget_pv.get(fund.key, (None, ""))
        plans.append(plan_fund(fund, fund_totals_, mode, pv, source))
    return plans


def budget_point_values(
    con: duckdb.DuckDBPyConnection, config: SettleConfig
) -> dict[str, tuple[Decimal | None, str]]:
    """The 年初点值 per fund (see :func:`year_start_point_value`)."""
    query = (
        "SELECT DISTINCT budget_pv, pv_source FROM eligible WHERE fund = ? AND budget_pv IS NOT NULL "
        "ORDER BY budget_pv"
    )

    def engine_values(fund) -> list:
        return con.execute(query, [fund.key]).fetchall()

    return {fund.key: year_start_point_value(fund, engine_values) for fund in config.funds}


def year_start_point_value(fund, engine_point_values) -> tuple[Decimal | None, str]:
    """One fund's 年初点值 and where it came from: configured (explicit or from history), else the
    grouping engine's point value when all the fund's cases share one. ``engine_point_values(fund)``
    gives the distinct (point value, source) rows of the fund's cases, queried only when nothing is
    configured. Both settlement engines use this, so they agree by construction."""
    configured = fund.year_start_point_value()
    if configured is not None:
        if fund.budget_point_value is not None:
            return configured, "配置的年初点值"
        return configured, "年初点值 = Σ权重×历史费用 ÷ Σ权重×历史分值"
    rows = engine_point_values(fund)
    if len(rows) == 1:
        return Decimal(rows[0][0]), f"分组引擎点值: {rows[0][1]}"
    if rows:
        values = " / ".join(f"{Decimal(r[0]):.6f}" for r in rows)
        return None, f"分组引擎按险种的点值: {values}(未配置年初点值)"
    return None, ""


def allocate(con: duckdb.DuckDBPyConnection, plans: list[FundPlan]) -> None:
    """Columns dip_cents / fund_cents (largest remainder in annual mode); view ``settled``."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE plan (fund VARCHAR, t HUGEINT, f HUGEINT, s HUGEINT, annual BOOLEAN)"
    )
    rows = []
    for p in plans:
        if p.mode == ANNUAL and p.problem is None:
            rows.append((p.fund, p.dip_share_cents, p.fund_share_cents, p.totals.dip_units, True))
        else:
            rows.append((p.fund, 0, 0, 0, False))
    if rows:
        con.executemany("INSERT INTO plan VALUES (?, ?, ?, ?, ?)", rows)
    con.execute("ALTER TABLE raw ADD COLUMN IF NOT EXISTS dip_cents BIGINT")
    con.execute("ALTER TABLE raw ADD COLUMN IF NOT EXISTS fund_cents BIGINT")
    con.execute(
        f"""UPDATE raw SET
            dip_cents = CASE WHEN basis <> '{BASIS_DIP}' THEN outside_cents ELSE budget_dip_cents END,
            fund_cents = CASE WHEN basis <> '{BASIS_DIP}' THEN outside_fund_cents ELSE budget_fund_cents END"""
    )
    if any(r[4] for r in rows):
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE shares AS
            WITH b AS (
                SELECT e.file_idx, e.line, e.case_id, e.fund, p.t, p.f, p.s,
                       e.settle_units::HUGEINT * p.t AS nt, e.settle_units::HUGEINT * p.f AS nf
                FROM raw e JOIN plan p ON p.fund = e.fund
                WHERE p.annual AND e.in_period = 1 AND e.basis = '{BASIS_DIP}'
            ), q AS (
                SELECT *, nt // s AS dt, nt % s AS rt, nf // s AS df, nf % s AS rf FROM b
            ), w AS (
                SELECT *, t - sum(dt) OVER (PARTITION BY fund) AS lt, f - sum(df) OVER (PARTITION BY fund) AS lf,
                    row_number() OVER (PARTITION BY fund ORDER BY rt DESC, case_id) AS kt,
                    row_number() OVER (PARTITION BY fund ORDER BY rf DESC, case_id) AS kf
                FROM q
            )
            SELECT file_idx, line, (dt + CASE WHEN kt <= lt THEN 1 ELSE 0 END)::BIGINT AS dip_cents,
                   (df + CASE WHEN kf <= lf THEN 1 ELSE 0 END)::BIGINT AS fund_cents
            FROM w"""
        )
        con.execute(
            """UPDATE raw SET dip_cents = s.dip_cents, fund_cents = s.fund_cents FROM shares s
               WHERE raw.file_idx = s.file_idx AND raw.line = s.line"""
        )
        con.execute("DROP TABLE shares")
    con.execute("CREATE OR REPLACE VIEW settled AS SELECT * FROM raw WHERE in_period = 1")


def load_deductions(path: str | None) -> tuple[list[Deduction], list[str]]:
    """Audit deductions (hospital_id, case_id, amount, reason); bad lines are reported, not fatal."""
    if not path:
        return [], []
    from settlement.rows import RowError, _money

    items, problems = [], []
    try:
        fh = Path(path).open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        return [], [f"审核扣款文件无法读取: {exc}"]
    with fh:
        reader = csv.DictReader(fh)
        for row in reader:
            row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
            hospital = row.get("hospital_id") or row.get("医疗机构编码") or ""
            try:
                amount = _money({"amount": row.get("amount") or row.get("扣款金额")}, "amount")
            except RowError as exc:
                problems.append(f"审核扣款第{reader.line_num}行: {exc}")
                continue
            if not hospital or amount is None:
                problems.append(f"审核扣款第{reader.line_num}行: 缺少 hospital_id 或 amount")
                continue
            items.append(
                Deduction(
                    hospital,
                    row.get("case_id", ""),
                    int(amount * 100),
                    row.get("reason") or row.get("原因", ""),
                )
            )
    return items, problems


def _d(value) -> Decimal:
    return Decimal(int(value or 0))


def summarize(
    con: duckdb.DuckDBPyConnection,
    config: SettleConfig,
    mode: str,
    plans: list[FundPlan],
    counts: dict[str, int],
    duplicates: list[tuple],
) -> PeriodResult:
    """Per-hospital / department / group tables, chart data and reconciliation from table ``settled``."""
    deductions, notices = load_deductions(config.deductions_file)
    known_hospitals = {r[0] for r in con.execute("SELECT DISTINCT hospital_id FROM settled").fetchall()}
    per_hospital: dict[str, int] = {}
    for item in deductions:
        if item.hospital_id not in known_hospitals:
            notices.append(f"审核扣款的医疗机构 {item.hospital_id} 本期没有病例,未计入")
            continue
        per_hospital[item.hospital_id] = per_hospital.get(item.hospital_id, 0) + item.amount_cents

    common = f"""count(*) AS cases,
        count(*) FILTER (WHERE basis = '{BASIS_DIP}') AS dip_cases,
        count(*) FILTER (WHERE basis <> '{BASIS_DIP}') AS outside_cases,
        coalesce(sum(settle_units) FILTER (WHERE basis = '{BASIS_DIP}'), 0)::HUGEINT AS units,
        coalesce(sum(base_score) FILTER (WHERE basis = '{BASIS_DIP}'), 0) AS base_scores,
        sum(cost_cents)::HUGEINT AS cost_cents,
        coalesce(sum(dip_cents), 0)::HUGEINT AS dip_cents,
        coalesce(sum(fund_cents), 0)::HUGEINT AS fund_cents,
        count(*) FILTER (WHERE band = '超低') AS low_cases,
        count(*) FILTER (WHERE band IN ('超高', '特例')) AS high_cases,
        count(*) FILTER (WHERE review = '{REVIEW_HIGH}') AS review_2x,
        count(*) FILTER (WHERE review = '{REVIEW_SPECIAL}') AS review_5x,
        count(*) FILTER (WHERE dip_cents < cost_cents) AS loss_cases,
        coalesce(sum(fund_paid), 0) AS fund_paid"""

    def table(sql: str) -> list[dict]:
        cur = con.execute(sql)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def money_fields(row: dict) -> dict:
        dip_cases = row["dip_cases"]
        row["total_score"] = (Decimal(int(row.pop("units"))) / SCORE_UNIT).quantize(Decimal("0.0001"))
        base = Decimal(row.pop("base_scores"))
        row["cmi"] = (base / dip_cases / 1000).quantize(Decimal("0.0001")) if dip_cases else None
        row["total_cost"] = yuan(int(row.pop("cost_cents")))
        row["dip_payment"] = yuan(int(row["dip_cents"]))
        row["fund_payment"] = yuan(int(row["fund_cents"]))
        row["gain_loss"] = (
            yuan(int(row["dip_cents"]) - int(row["cost_cents_"])) if "cost_cents_" in row else None
        )
        return row

    hospitals = table(
        f"""SELECT hospital_id, min(hospital_level) AS hospital_level, {common}, sum(cost_cents)::HUGEINT AS cost_cents_
            FROM settled GROUP BY hospital_id ORDER BY hospital_id"""
    )
    for row in hospitals:
        money_fields(row)
        hid = row["hospital_id"]
        row["hospital_name"] = config.hospital_names.get(hid, "")
        coef = config.assessment.get(hid, Decimal(1))
        fund_cents = int(row.pop("fund_cents"))
        assessed = scaled(fund_cents, coef)
        deduction = per_hospital.get(hid, 0)
        row["assessment_coef"] = coef
        row["assessment_adjustment"] = yuan(assessed - fund_cents)
        row["deductions"] = yuan(deduction)
        row["net_settlement"] = yuan(assessed - deduction)
        row["prepayment"] = (
            yuan(scaled(assessed - deduction, config.prepayment_ratio)) if mode != ANNUAL else None
        )
        row.pop("dip_cents")
        row.pop("cost_cents_")
    departments = table(
        f"""SELECT hospital_id, department, {common}, sum(cost_cents)::HUGEINT AS cost_cents_
            FROM settled GROUP BY hospital_id, department ORDER BY hospital_id, department"""
    )
    for row in departments:
        money_fields(row)
        for key in ("dip_cents", "fund_cents", "cost_cents_"):
            row.pop(key)
    groups = table(
        f"""SELECT coalesce(dip_code, '') AS dip_code, min(group_name) AS group_name, min(group_type) AS group_type,
            min(base_score) AS score, avg(reference_cost)::DECIMAL(18,2) AS avg_reference_cost, {common},
            sum(cost_cents)::HUGEINT AS cost_cents_
            FROM settled GROUP BY coalesce(dip_code, '') ORDER BY dip_code"""
    )
    for row in groups:
        money_fields(row)
        row["avg_cost"] = (
            (row["total_cost"] / row["cases"]).quantize(Decimal("0.01")) if row["cases"] else None
        )
        row["loss_rate"] = (Decimal(row["loss_cases"]) / row["cases"]).quantize(Decimal("0.0001"))
        for key in ("dip_cents", "fund_cents", "cost_cents_"):
            row.pop(key)

    bands = table(
        """SELECT band, count(*) AS cases, sum(cost_cents)::HUGEINT AS cost_cents, coalesce(sum(dip_cents),0)::HUGEINT
           AS dip_cents FROM settled GROUP BY band ORDER BY band"""
    )
    for row in bands:
        row["total_cost"] = yuan(int(row.pop("cost_cents")))
        row["dip_payment"] = yuan(int(row.pop("dip_cents")))
    bins = []
    for label, low, high in RATIO_BINS:
        where = ["cost_ratio IS NOT NULL"]
        params = []
        if low is not None:
            where.append("cost_ratio >= ?")
            params.append(low)
        if high is not None:
            where.append("cost_ratio < ?")
            params.append(high)
        n = _one_row(con, f"SELECT count(*) FROM settled WHERE {' AND '.join(where)}", params)[0]
        bins.append({"bin": label, "cases": int(n)})
    dip_row = _one_row(
        con,
        f"""SELECT coalesce(sum(dip_cents) FILTER (WHERE basis = '{BASIS_DIP}'), 0)::HUGEINT,
            coalesce(sum(dip_cents) FILTER (WHERE basis <> '{BASIS_DIP}'), 0)::HUGEINT, coalesce(sum(cost_cents), 0)::HUGEINT
            FROM settled""",
    )
    sensitivity = [
        {
            "factor": f,
            "dip_payment": yuan(scaled(int(dip_row[0]), f) + int(dip_row[1])),
            "gain_loss": yuan(scaled(int(dip_row[0]), f) + int(dip_row[1]) - int(dip_row[2])),
        }
        for f in SENSITIVITY
    ]
    reconciliation = reconcile(con, plans, counts, hospitals, mode)
    special_cases = table(
        f"""SELECT case_id, hospital_id, department, coalesce(dip_code, '') AS dip_code, group_name,
            total_cost, reference_cost, cost_ratio, CAST(CAST(dip_cents - cost_cents AS DECIMAL(18,0))
            * CAST(0.01 AS DECIMAL(3,2)) AS DECIMAL(18,2)) AS gain_loss
            FROM settled WHERE review = '{REVIEW_SPECIAL}' ORDER BY cost_ratio DESC, case_id LIMIT 50"""
    )
    return PeriodResult(
        mode=mode,
        plans=plans,
        hospitals=hospitals,
        departments=departments,
        groups=groups,
        bands=bands,
        ratio_bins=bins,
        sensitivity=sensitivity,
        counts=counts,
        reconciliation=reconciliation,
        duplicates=duplicates,
        notices=notices + point_value_notices(plans),
        special_cases=special_cases,
        qc_rules=qc_rule_counts(con),
    )


def qc_rule_counts(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """Cases per quality-gate rule among the period's cases (one case counts once per rule)."""
    from dip_engine.quality import RULE_NAMES

    rows = con.execute(
        """SELECT rule, count(DISTINCT file_idx * 10000000000 + line) AS cases FROM (
               SELECT file_idx, line, split_part(unnest(string_split(qc_flags, '|')), ':', 1) AS rule
               FROM settled WHERE qc_flags IS NOT NULL AND qc_flags <> '')
           GROUP BY rule ORDER BY cases DESC, rule"""
    ).fetchall()
    return [{"rule": r, "name": RULE_NAMES.get(r, ""), "cases": int(n)} for r, n in rows]


POINT_VALUE_PLAUSIBLE = Decimal(3)  # a 结算点值 beyond 3× or below ⅓ of the 年初点值 is not a year's drift


def point_value_notices(plans: list[FundPlan]) -> list[str]:
    """A settlement point value far from the 年初点值 almost always means the fund budget and the cases
    settled do not belong together (a whole city's year over one hospital's month, a budget in 万元):
    the run is arithmetically right and says so, but the point value is not one a bureau would pay."""
    out = []
    for plan in plans:
        if plan.mode != ANNUAL or not plan.point_value or not plan.budget_point_value or plan.problem:
            continue
        ratio = plan.point_value / plan.budget_point_value
        if ratio > POINT_VALUE_PLAUSIBLE or ratio < 1 / POINT_VALUE_PLAUSIBLE:
            out.append(
                f"{plan.label}: 结算点值 {plan.point_value:.4f} 是年初点值 {plan.budget_point_value:.4f} 的 "
                f"{ratio:.2f} 倍，请核对可用基金与本次结算的病例范围是否一致（例如全市全年基金对应部分病例）"
            )
    return out


def reconcile(
    con, plans: list[FundPlan], counts: dict[str, int], hospitals: list[dict], mode: str
) -> list[dict]:
    """The checks printed at the end of every run: cases and money must add up exactly."""
    checks = []
    n_in, n_rej = counts["rows_in"], counts["rejected"]
    checks.append(
        {
            "check": "读入病例数 = 接收 + 拒收",
            "detail": f"{n_in} = {counts['accepted']} + {n_rej}",
            "ok": n_in == counts["accepted"] + n_rej,
        }
    )
    settled = counts["settled"]
    checks.append(
        {
            "check": "接收 = 本期结算 + 非本期 (重复病例已计入拒收)",
            "detail": f"{counts['accepted']} = {settled} + {counts['out_of_period']}",
            "ok": counts["accepted"] == settled + counts["out_of_period"],
        }
    )
    checks.append(
        {
            "check": "本期结算 = DIP入组 + 非DIP(按项目/不予支付)",
            "detail": f"{settled} = {counts['dip']} + {counts['outside']}",
            "ok": settled == counts["dip"] + counts["outside"],
        }
    )
    case_fund = con.execute("SELECT coalesce(sum(fund_cents), 0)::HUGEINT FROM settled").fetchone()[0]
    hospital_fund = sum(int(h["fund_payment"] * 100) for h in hospitals)
    checks.append(
        {
            "check": "Σ医疗机构基金支付 = Σ病例基金支付",
            "detail": f"{yuan(hospital_fund)} = {yuan(int(case_fund))}",
            "ok": hospital_fund == int(case_fund),
        }
    )
    if mode == ANNUAL:
        for plan in plans:
            if plan.problem:
                checks.append({"check": f"{plan.label}: 结算点值", "detail": plan.problem, "ok": False})
                continue
            row = con.execute(
                "SELECT coalesce(sum(fund_cents),0)::HUGEINT, coalesce(sum(dip_cents),0)::HUGEINT FROM settled "
                "WHERE fund = ?",
                [plan.fund],
            ).fetchone()
            checks.append(
                {
                    "check": f"{plan.label}: Σ基金支付 = 可用基金",
                    "detail": f"{yuan(int(row[0]))} = {yuan(plan.budget_cents)}",
                    "ok": int(row[0]) == plan.budget_cents,
                }
            )
            checks.append(
                {
                    "check": f"{plan.label}: ΣDIP支付 = 基金 ÷ 支付比例",
                    "detail": f"{yuan(int(row[1]))} = {yuan(plan.dip_total_cents)}",
                    "ok": int(row[1]) == plan.dip_total_cents,
                }
            )
    else:
        missing = con.execute(
            f"SELECT count(*) FROM settled WHERE basis = '{BASIS_DIP}' AND dip_cents IS NULL"
        ).fetchone()[0]
        checks.append(
            {
                "check": "每个DIP病例都有支付额(年初点值)",
                "detail": f"缺少 {missing} 例",
                "ok": int(missing) == 0,
            }
        )
    return checks


def case_counts(con, rows_in: int, rejected_rows: int, duplicates: int) -> dict[str, int]:
    """Case counts for the reconciliation; ``cases`` holds the accepted, de-duplicated records."""
    accepted, out_of_period = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE in_period = 0) FROM cases"
    ).fetchone()
    settled, dip, qc_rejected, withheld = con.execute(
        f"""SELECT count(*), count(*) FILTER (WHERE basis = '{BASIS_DIP}'),
            count(*) FILTER (WHERE basis LIKE '%质控不通过%'), count(*) FILTER (WHERE basis LIKE '不予支付%')
            FROM settled"""
    ).fetchone()
    return {
        "rows_in": rows_in,
        "accepted": int(accepted),
        "rejected": rejected_rows + duplicates,
        "duplicates": duplicates,
        "settled": int(settled),
        "dip": int(dip),
        "outside": int(settled) - int(dip),
        "out_of_period": int(out_of_period),
        "qc_rejected": int(qc_rejected),
        "withheld": int(withheld),
    }


def _one_row(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> tuple[Any, ...]:
    """The single row of an aggregate query (count/sum always answer one)."""
    row = con.execute(sql, params or []).fetchone()
    if row is None:
        raise RuntimeError("aggregate query returned no row")
    return row
