"""The case-level settlement record: pure per-case arithmetic done once, where the case is grouped.

Everything that depends only on the case and the configuration (fund, cost ratio, 特例单议 flags,
the fund's share of the cost, the amount at the 年初点值) is computed here in ``Decimal`` and stored
as integer cents / integer score units, so the period-level step (DuckDB or Spark) only adds
integers and both engines agree to the cent.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal

from settlement.bridge import SCORE_UNIT, Priced
from settlement.config import SettleConfig
from settlement.rows import SettleRow

RATIO_PLACES = Decimal("0.000001")

#: Columns of the intermediate (checkpoint) case table, in order; types for DuckDB/Spark readers.
CASE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("file_idx", "INTEGER"),
    ("line", "BIGINT"),
    ("case_id", "VARCHAR"),
    ("hospital_id", "VARCHAR"),
    ("hospital_level", "VARCHAR"),
    ("department", "VARCHAR"),
    ("insurance_type", "VARCHAR"),
    ("fund", "VARCHAR"),
    ("discharge_date", "VARCHAR"),
    ("in_period", "INTEGER"),
    ("dip_code", "VARCHAR"),
    ("group_type", "VARCHAR"),
    ("group_name", "VARCHAR"),
    ("grouped", "INTEGER"),
    ("base_score", "DECIMAL(18,6)"),
    ("hospital_coef", "DECIMAL(12,6)"),
    ("aux_coef", "DECIMAL(12,6)"),
    ("case_score", "DECIMAL(18,4)"),
    ("reference_cost", "DECIMAL(18,2)"),
    ("total_cost", "DECIMAL(18,2)"),
    ("cost_ratio", "DECIMAL(18,6)"),
    ("band", "VARCHAR"),
    ("review", "VARCHAR"),
    ("settle_units", "BIGINT"),
    ("cost_cents", "BIGINT"),
    ("cost_fund_cents", "BIGINT"),
    ("budget_dip_cents", "BIGINT"),
    ("budget_fund_cents", "BIGINT"),
    ("budget_pv", "DECIMAL(18,6)"),
    ("pv_source", "VARCHAR"),
    ("fund_paid", "DECIMAL(18,2)"),
    ("synthetic", "INTEGER"),
    ("reason", "VARCHAR"),
    ("flags", "VARCHAR"),
    ("qc_flags", "VARCHAR"),
    ("outside_basis", "VARCHAR"),
    ("outside_cents", "BIGINT"),
    ("outside_fund_cents", "BIGINT"),
)
CASE_COLUMN_NAMES = tuple(name for name, _ in CASE_COLUMNS)

REVIEW_HIGH = "超2倍"
REVIEW_SPECIAL = "超5倍(特例单议)"


def outside_basis(priced: Priced) -> str:
    """How a case is paid when it is not paid by DIP: the region's rule for cases without a group
    (质控不通过 or 未入组), shown in every report; a grouped case outside DIP (trimmed) is paid at cost."""
    if priced.grouped:
        return ""
    paid = "按项目" if priced.fee_for_service else "不予支付"
    return f"{paid}({'质控不通过' if priced.rejected else '未入组'})"


def cents(amount: Decimal) -> int:
    """Yuan → integer cents, half up (the rounding every Chinese settlement statement uses)."""
    return int((amount * 100).quantize(Decimal(1), ROUND_HALF_UP))


def review_flag(ratio: Decimal | None, config: SettleConfig) -> str:
    """特例单议 candidates: above 5× the reference (expert review), above 2× listed for attention."""
    if ratio is None:
        return ""
    if ratio > config.special_review_ratio:
        return REVIEW_SPECIAL
    if ratio > config.high_review_ratio:
        return REVIEW_HIGH
    return ""


def in_period(date: str | None, period: str, month: str | None) -> bool:
    """Cases without a discharge date are taken as belonging to the batch's period."""
    if not date:
        return True
    return date.startswith(month) if month else date.startswith(period)


def build_record(
    file_idx: int,
    line: int,
    row: SettleRow,
    priced: Priced,
    fund_key: str,
    payment_ratio: Decimal,
    budget_point_value: Decimal | None,
    budget_source: str,
    config: SettleConfig,
    period: str,
    month: str | None,
) -> tuple:
    """The case's row of the intermediate table (see :data:`CASE_COLUMNS`)."""
    ratio = None
    if priced.grouped and priced.reference_cost:
        ratio = (row.total_cost / priced.reference_cost).quantize(RATIO_PLACES, ROUND_HALF_UP)
    units = int((priced.settle_score * SCORE_UNIT).to_integral_value(ROUND_FLOOR))
    cost_cents, cost_fund_cents = cents(row.total_cost), cents(row.total_cost * payment_ratio)
    paid_at_cost = priced.grouped or priced.fee_for_service
    budget_dip = budget_fund = None
    if budget_point_value is not None and priced.grouped:
        dip = (priced.settle_score * budget_point_value).quantize(Decimal("0.01"), ROUND_HALF_UP)
        budget_dip = cents(dip)
        budget_fund = cents(dip * payment_ratio)
    return (
        file_idx,
        line,
        row.case_id,
        row.hospital_id,
        row.hospital_level or "",
        row.department,
        row.insurance_type or "",
        fund_key,
        row.discharge_date or "",
        int(in_period(row.discharge_date, period, month)),
        priced.dip_code,
        priced.group_type,
        priced.group_name,
        int(priced.grouped),
        priced.base_score.quantize(RATIO_PLACES, ROUND_HALF_UP),
        priced.hospital_coef.quantize(RATIO_PLACES, ROUND_HALF_UP),
        priced.aux_coef.quantize(RATIO_PLACES, ROUND_HALF_UP),
        priced.case_score.quantize(Decimal("0.0001"), ROUND_HALF_UP),
        priced.reference_cost if priced.reference_cost is not None else "",
        row.total_cost,
        ratio if ratio is not None else "",
        priced.band,
        review_flag(ratio, config),
        units,
        cost_cents,
        cost_fund_cents,
        budget_dip if budget_dip is not None else "",
        budget_fund if budget_fund is not None else "",
        budget_point_value.quantize(Decimal("0.000001"), ROUND_HALF_UP)
        if budget_point_value is not None and budget_dip is not None
        else "",
        budget_source if budget_dip is not None else "",
        row.fund_paid if row.fund_paid is not None else "",
        int(row.synthetic),
        priced.reason,
        priced.flags,
        priced.qc_flags,
        outside_basis(priced),
        cost_cents if paid_at_cost else 0,
        cost_fund_cents if paid_at_cost else 0,
    )
