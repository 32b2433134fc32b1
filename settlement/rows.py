"""One 结算清单 row → a validated settlement input, or a rejection with a reason a clerk understands.

The columns are those of ``dip-cds group`` (case_id, sex, age, age_days, birth_weight_g, los_days,
icu_days, discharge_way, main_diagnosis, other_diagnoses ``|``-separated, procedures ``|``-separated
with the principal first, total_cost, hospital_id, hospital_level, insurance_type) plus, for
settlement: department, discharge_date (YYYY-MM-DD), fund_type (overrides the fund chosen from
insurance_type), fund_paid (what the fund already paid on account), cost_01 … cost_14 (费用类别
01 床位 … 14 其他; when present their sum must equal total_cost) and synthetic (1 for generated data).
Chinese header variants are accepted through :data:`HEADER_ALIASES`.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

COST_COLUMNS = tuple(f"cost_{i:02d}" for i in range(1, 15))
COST_CATEGORY_NAMES = (
    "床位费",
    "诊察费",
    "检查费",
    "化验费",
    "治疗费",
    "手术费",
    "护理费",
    "卫生材料费",
    "西药费",
    "中药饮片费",
    "中成药费",
    "一般诊疗费",
    "挂号费",
    "其他费",
)

REQUIRED = ("case_id", "main_diagnosis", "total_cost", "hospital_id")
KNOWN = (
    "case_id",
    "sex",
    "age",
    "age_days",
    "birth_weight_g",
    "los_days",
    "icu_days",
    "discharge_way",
    "main_diagnosis",
    "other_diagnoses",
    "procedures",
    "total_cost",
    "hospital_id",
    "hospital_level",
    "insurance_type",
    "department",
    "discharge_date",
    "fund_type",
    "fund_paid",
    "synthetic",
    "code_system",
    *COST_COLUMNS,
)

#: Header spellings seen in hospital exports → canonical column names.
HEADER_ALIASES = {
    "病案号": "case_id",
    "病例号": "case_id",
    "结算id": "case_id",
    "就诊id": "case_id",
    "性别": "sex",
    "年龄": "age",
    "年龄(天)": "age_days",
    "新生儿出生体重": "birth_weight_g",
    "住院天数": "los_days",
    "重症监护天数": "icu_days",
    "离院方式": "discharge_way",
    "主要诊断": "main_diagnosis",
    "主诊断代码": "main_diagnosis",
    "其他诊断": "other_diagnoses",
    "手术操作": "procedures",
    "手术及操作": "procedures",
    "总费用": "total_cost",
    "医疗总费用": "total_cost",
    "医疗机构编码": "hospital_id",
    "定点医药机构编号": "hospital_id",
    "医院等级": "hospital_level",
    "险种": "insurance_type",
    "险种类型": "insurance_type",
    "科室": "department",
    "出院科别": "department",
    "出院日期": "discharge_date",
    "基金类型": "fund_type",
    "基金支付": "fund_paid",
    "统筹基金支付": "fund_paid",
    "编码体系": "code_system",
    **{f"{name}": col for name, col in zip(COST_CATEGORY_NAMES, COST_COLUMNS, strict=True)},
}

_MAX_FIELD = 2000
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})")
CENT = Decimal("0.01")


class RowError(ValueError):
    """A row that cannot be settled; the message is shown in the rejects file."""


def canonical_header(name: str) -> str:
    key = str(name or "").strip().lstrip("\ufeff").strip()
    low = key.lower()
    if low in KNOWN:
        return low
    return HEADER_ALIASES.get(key, HEADER_ALIASES.get(low, low))


@dataclass(frozen=True, slots=True)
class SettleRow:
    """Validated input of one case: the engine's ``Case`` plus what only settlement needs."""

    case: Any  # grouper.Case, as read by the engine's case-file reader
    case_id: str
    total_cost: Decimal  # rounded to cents
    hospital_id: str
    hospital_level: str | None
    insurance_type: str | None
    department: str
    discharge_date: str | None
    fund_type: str | None
    fund_paid: Decimal | None
    synthetic: bool


def _text(row: dict, key: str) -> str | None:
    value = row.get(key)
    if not value:
        return None
    value = str(value).strip()
    if len(value) > _MAX_FIELD:
        raise RowError(f"{key}: value longer than {_MAX_FIELD} characters")
    return value or None


_MAX_AMOUNT = Decimal("100000000")


def _money(row: dict, key: str) -> Decimal | None:
    value = row.get(key)
    if not value:
        return None
    try:
        number = Decimal(value)  # fast path: a plain number as exported by every HIS
    except (InvalidOperation, TypeError, ValueError):
        text = _text(row, key)
        if text is None:
            return None
        try:
            number = Decimal(text.replace(",", "").replace("¥", "").replace("￥", ""))
        except InvalidOperation:
            raise RowError(f"{key}: not an amount: {text[:40]!r}") from None
    if not number.is_finite() or number < 0 or number > _MAX_AMOUNT:
        raise RowError(f"{key}: amount {str(value)[:40]!r} is negative or implausible")
    return number.quantize(CENT, ROUND_HALF_UP)


def _category_sum(row: dict) -> Decimal | None:
    """Σ cost_01…cost_14 (None when all are empty); every amount is validated like total_cost."""
    total = None
    for key in COST_COLUMNS:
        value = row.get(key)
        if not value:
            continue
        try:
            number = Decimal(value)
            if not (number >= 0 and number <= _MAX_AMOUNT):  # also false for NaN
                raise InvalidOperation
        except (InvalidOperation, TypeError, ValueError):
            slow = _money(row, key)  # slow path: formatted amounts, or the precise error message
            if slow is None:
                continue
            number = slow
        total = number if total is None else total + number
    return None if total is None else total.quantize(CENT, ROUND_HALF_UP)


@lru_cache(maxsize=4096)  # a year has few distinct dates; a million rows repeat them
def _calendar_date(text: str) -> str:
    """``YYYY-MM-DD`` (``/`` also accepted) that exists in the calendar (``2025-02-30`` does not)."""
    match = _DATE.match(text.replace("/", "-"))
    if not match:
        raise RowError(f"discharge_date: not YYYY-MM-DD: {text[:20]!r}")
    year, month, day = (int(g) for g in match.groups())
    try:
        _dt.date(year, month, day)
    except ValueError:
        raise RowError(f"discharge_date: {text[:20]!r} is not a calendar date (日期不存在)") from None
    return "-".join(match.groups())


def _s(value: str | None) -> str | None:
    return (value.strip() or None) if value else None


def parse_row(row: dict) -> SettleRow:
    """Validate one row (a dict keyed by canonical column names); raise :class:`RowError` with the reason.

    The case itself is read by the engine's own case-file reader (``dip_engine.batch.case_from_record``,
    the one ``dip-cds group`` uses); this function adds what only settlement needs: total_cost and
    hospital_id are required, amounts are checked and rounded to cents, the 费用类别 breakdown must
    add up, and the discharge date, fund and synthetic-data columns are read.
    """
    from dip_engine.batch import CaseError, case_from_record

    get = row.get
    if not (
        _s(get("case_id")) and _s(get("main_diagnosis")) and _s(get("hospital_id")) and _s(get("total_cost"))
    ):
        missing = [key for key in REQUIRED if not _s(get(key))]
        raise RowError("missing required column value: " + ", ".join(missing))
    try:
        case = case_from_record(row)
    except CaseError as exc:
        raise RowError(str(exc)) from None
    total = _money(row, "total_cost")
    if total is not None and total == 0:
        raise RowError("total_cost 为 0：没有费用的病例不能结算 (zero total cost)")
    if "cost_01" in row:
        categories = _category_sum(row)
        if categories is not None and categories != total:
            raise RowError(f"cost_01…cost_14 add up to {categories}, but total_cost is {total}")
    date = _s(get("discharge_date"))
    if date:
        date = _calendar_date(date)
    synthetic = (get("synthetic") or "").strip().lower() in ("1", "true", "yes", "是")
    return SettleRow(
        case=case,
        case_id=case.case_id,
        total_cost=total,  # type: ignore[arg-type]
        hospital_id=case.hospital_id or "",
        hospital_level=case.hospital_level,
        insurance_type=case.insurance_type,
        department=case.department or "(未填科室)",
        discharge_date=date,
        fund_type=_s(get("fund_type")),
        fund_paid=_money(row, "fund_paid"),
        synthetic=synthetic,
    )
