"""Period-level settlement: point values and every case's payment, exact to the cent.

Pure functions over a handful of totals (no I/O): the SQL engines (DuckDB here, Spark in
:mod:`settlement.spark_engine`) aggregate integers and call these for the money rules, then
distribute cents with the largest-remainder method so Σ case payments equals the fund to the cent.

Rules (DIP-RULES.md §5):
- 结算点值 = (DIP fund ÷ fund payment ratio) ÷ total score of the DIP-settled cases.
- Cases outside DIP (未入组, and — when trimming is on — cases outside the cost-ratio quantiles) are
  paid at their actual cost (按项目); their cost is taken off the fund first, so the fund still
  balances exactly.
- 月度预结算 / estimates: payment = score × 年初点值 (× fund ratio), prepayment = × prepayment_ratio.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal

from settlement.bridge import SCORE_UNIT
from settlement.config import Fund

ANNUAL = "annual"  # 年度清算: point value from the fund budget
MONTHLY = "monthly"  # 月度预结算: 年初点值 × prepayment ratio
ESTIMATE = "estimate"  # no budget configured: 年初点值 / catalog estimate, labelled as such

MODE_LABELS = {ANNUAL: "年度清算", MONTHLY: "月度预结算", ESTIMATE: "估算(未配置基金预算)"}


@dataclass(frozen=True)
class FundTotals:
    """What the SQL engine counts for one fund."""

    fund: str
    dip_cases: int
    dip_units: int  # Σ settlement score in 1/10,000 points
    outside_cases: int
    outside_cost_cents: int
    outside_fund_cents: int


@dataclass(frozen=True)
class FundPlan:
    """How one fund's money is distributed: amounts in cents to share out over the DIP score."""

    fund: str
    label: str
    mode: str
    payment_ratio: Decimal
    budget_cents: int | None  # the fund (统筹基金) available, annual mode
    dip_total_cents: int | None  # fund ÷ ratio: the DIP amount behind the fund
    dip_share_cents: int | None  # what is left for DIP cases after 按项目 cases
    fund_share_cents: int | None
    point_value: Decimal | None  # yuan per score point (settlement or 年初点值)
    budget_point_value: Decimal | None
    point_value_source: str
    totals: FundTotals
    problem: str | None = None


def to_cents(amount: Decimal) -> int:
    return int((amount * 100).quantize(Decimal(1), ROUND_HALF_UP))


def yuan(cents_value: int | None) -> Decimal | None:
    return None if cents_value is None else (Decimal(cents_value) / 100).quantize(Decimal("0.01"))


def plan_fund(
    fund: Fund, totals: FundTotals, mode: str, budget_point_value: Decimal | None, budget_source: str
) -> FundPlan:
    """The fund's point value and the cents to distribute, or a plan with ``problem`` set."""
    if mode != ANNUAL:
        return FundPlan(
            fund=fund.key,
            label=fund.label,
            mode=mode,
            payment_ratio=fund.payment_ratio,
            budget_cents=None,
            dip_total_cents=None,
            dip_share_cents=None,
            fund_share_cents=None,
            point_value=budget_point_value,
            budget_point_value=budget_point_value,
            point_value_source=budget_source,
            totals=totals,
            problem=None
            if budget_point_value is not None or budget_source or totals.dip_cases == 0
            else "没有年初点值(settle.toml 的 history / budget_point_value),分组引擎也没有点值",
        )
    assert fund.budget is not None
    budget = to_cents(fund.budget)
    dip_total = to_cents(fund.budget / fund.payment_ratio)
    dip_share = dip_total - totals.outside_cost_cents
    fund_share = budget - totals.outside_fund_cents
    problem = None
    point_value = None
    if totals.dip_units <= 0:
        problem = "本期没有按DIP结算的病例,无法计算结算点值"
    elif dip_share <= 0 or fund_share <= 0:
        problem = "按项目结算病例的费用已超过基金预算"
    else:
        point_value = (Decimal(dip_share) / 100) / (Decimal(totals.dip_units) / SCORE_UNIT)
    return FundPlan(
        fund=fund.key,
        label=fund.label,
        mode=mode,
        payment_ratio=fund.payment_ratio,
        budget_cents=budget,
        dip_total_cents=dip_total,
        dip_share_cents=dip_share if problem is None else None,
        fund_share_cents=fund_share if problem is None else None,
        point_value=point_value,
        budget_point_value=budget_point_value,
        point_value_source="结算点值 = (基金预算 ÷ 基金支付比例 − 非DIP病例支付额) ÷ DIP总分值",
        totals=totals,
        problem=problem,
    )


def largest_remainder(total_cents: int, units: list[int]) -> list[int]:
    """Share ``total_cents`` in proportion to ``units`` (reference implementation of the SQL)."""
    whole = sum(units)
    if whole <= 0:
        return [0] * len(units)
    floors = [total_cents * u // whole for u in units]
    remainders = [total_cents * u % whole for u in units]
    left = total_cents - sum(floors)
    order = sorted(range(len(units)), key=lambda i: (-remainders[i], i))
    for i in order[:left]:
        floors[i] += 1
    return floors


def trim_counts(n: int, low: Decimal, high: Decimal) -> tuple[int, int]:
    """How many cases fall below the low and above the high quantile (floor, deterministic)."""
    below = int((Decimal(n) * low).to_integral_value(ROUND_FLOOR))
    above = int((Decimal(n) * (1 - high)).to_integral_value(ROUND_FLOOR))
    return below, above


def scaled(amount_cents: int, factor: Decimal) -> int:
    """cents × factor, half up (assessment coefficients, prepayment ratio)."""
    return int((Decimal(amount_cents) * factor).quantize(Decimal(1), ROUND_HALF_UP))
