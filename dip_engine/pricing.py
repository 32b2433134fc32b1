"""Pricing (DIP-RULES §3–§6): case score, point value, payment standard, cost deviation, remaining budget.

Pure functions over a group result, the case and the region rules. Money is Decimal, yuan to 2
places (ROUND_HALF_UP); scores keep 4 decimal places.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache

from dip_engine.rules import PAYMENT_RULES, RegionRules
from grouper import Case, GroupResult, GroupType

CENT = Decimal("0.01")
SCORE_Q = Decimal("0.0001")
ONE = Decimal(1)
THOUSAND = Decimal(1000)


class Band:
    LOW = "超低"
    NORMAL = "正常"
    HIGH = "超高"
    SPECIAL = "特例"


_INSURANCE_ALIASES = {
    "职工": "职工", "城镇职工": "职工", "职工医保": "职工", "职工基本医疗保险": "职工", "310": "职工",
    "employee": "职工", "1": "职工",
    "居民": "居民", "城乡居民": "居民", "居民医保": "居民", "城乡居民基本医疗保险": "居民", "390": "居民",
    "resident": "居民", "2": "居民",
}  # fmt: skip


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def insurance_key(value: str | None) -> str | None:
    return _INSURANCE_ALIASES.get((value or "").strip(), (value or "").strip() or None)


class Basis:
    """How a case is paid (``Pricing.payment_basis``)."""

    DIP = "DIP"
    FEE_FOR_SERVICE = "按项目付费"
    WITHHELD = "不予支付"


#: ``Pricing.hospital_coefficient_basis``: where the coefficient came from.
HC_HOSPITAL, HC_LEVEL, HC_REGION_DEFAULT, HC_UNCONFIGURED, HC_NOT_APPLICABLE = (
    "hospital", "level", "region_default", "unconfigured", "not_applicable",
)  # fmt: skip


@dataclass(slots=True)  # read-only by convention: not frozen, for speed (see grouper.result)
class Pricing:
    """Payment standard and where the stay's cost sits against it. ``estimated`` = some input was estimated.

    ``adjusted_case_score`` is the case score after the cost-deviation rule (费用偏差校正后的病例分值)
    and ``case_payment`` what the case is paid: adjusted score × point value for a DIP case, or what
    the region's ``[ungrouped]`` rule pays for a case without a group (``payment_basis`` says which).
    Both need the case's cost; without it they are None. The deviation thresholds of the region
    and whether the hospital coefficient was configured are carried so a card can show them.
    """

    dip_code: str | None
    group_score: Decimal | None
    case_score: Decimal | None
    point_value: Decimal | None
    point_value_kind: str | None  # budget | settlement | catalog_estimate
    point_value_estimated: bool
    point_value_source: str
    hospital_coefficient: Decimal
    hospital_coefficient_source: str
    hospital_coefficient_basis: str
    aux_coefficient: Decimal
    aux_reason: str
    payment_standard: Decimal | None
    reference_cost: Decimal | None
    cost: Decimal | None
    cost_ratio: Decimal | None
    deviation_band: str | None
    adjusted_case_score: Decimal | None
    case_payment: Decimal | None
    special_review: bool
    cost_so_far: Decimal | None
    remaining_budget: Decimal | None
    additional_cost: Decimal | None
    projected_cost: Decimal | None
    projected_ratio: Decimal | None
    projected_position: str | None
    estimated: bool
    notes: tuple[str, ...] = ()
    payment_basis: str = Basis.DIP
    deviation_rule: str = "2.0"
    deviation_low: Decimal = Decimal("0.5")
    deviation_high: Decimal = Decimal("2.0")
    deviation_special: Decimal = Decimal("5.0")

    @property
    def adjusted_payment(self) -> Decimal | None:
        """The DIP payment after the deviation rule (None for a case without a group)."""
        return self.case_payment if self.payment_basis == Basis.DIP else None

    @property
    def hospital_coefficient_configured(self) -> bool:
        """False when no coefficient was configured for this hospital and 1.0 was assumed."""
        return self.hospital_coefficient_basis != HC_UNCONFIGURED

    def as_dict(self) -> dict:
        out = {}
        for name in self.__slots__:
            v = getattr(self, name)
            out[name] = str(v) if isinstance(v, Decimal) else (list(v) if isinstance(v, tuple) else v)
        out["hospital_coefficient_configured"] = self.hospital_coefficient_configured
        return out


def point_value_for(rules: RegionRules, insurance_type: str | None, region_avg_cost: Decimal | None):
    """(point value, kind, estimated, source) for an insurance type."""
    key = insurance_key(insurance_type)
    table = rules.point_values.get(key) if key else None
    if table is None and len(rules.point_values) == 1:
        table = next(iter(rules.point_values.values()))
        key = next(iter(rules.point_values))
    if table:
        use = rules.point_value_use
        if use in table:
            return (
                table[use],
                use,
                use == "budget",
                f"区域规则 {key}{'预估' if use == 'budget' else '结算'}点值",
            )
        other = "settlement" if use == "budget" else "budget"
        if other in table:
            return (
                table[other],
                other,
                other == "budget",
                f"区域规则 {key}{'预估' if other == 'budget' else '结算'}点值",
            )
    if region_avg_cost:
        return (
            region_avg_cost / THOUSAND,
            "catalog_estimate",
            True,
            "由目录区域次均费用估算（REGION_AVE_VAL/1000）",
        )
    return None, None, True, "未配置点值，目录也无区域次均费用"


def hospital_coefficient(rules: RegionRules, case: Case, group_type: str) -> tuple[Decimal, str, str]:
    """(coefficient, source in words, basis): by hospital, by level, the region default, or 1.0
    when nothing is configured (a card then says so); 基层病种 take none."""
    if group_type == GroupType.PRIMARY:
        return ONE, "基层病种不设医院系数", HC_NOT_APPLICABLE
    if case.hospital_id and case.hospital_id in rules.hospital_by_hospital:
        return rules.hospital_by_hospital[case.hospital_id], f"医院 {case.hospital_id} 系数", HC_HOSPITAL
    level = (case.hospital_level or "").strip()
    if level and level in rules.hospital_by_level:
        return rules.hospital_by_level[level], f"{level} 级医院系数", HC_LEVEL
    if rules.hospital_default_configured:
        return rules.hospital_default, "本地区默认医院系数", HC_REGION_DEFAULT
    return rules.hospital_default, "未配置医院系数，按 1.0 估算", HC_UNCONFIGURED


def aux_coefficient(rules: RegionRules, case: Case, secondary: tuple[str, ...] = ()) -> tuple[Decimal, str]:
    """The highest applicable auxiliary coefficient (1 when none applies)."""
    best, why = ONE, ""
    age_days = (
        case.age_days if case.age_days is not None else (case.age * 365 if case.age is not None else None)
    )
    if age_days is not None:
        for b in rules.age_bands:
            if b.contains(age_days) and b.coefficient > best:
                best, why = b.coefficient, b.label or "年龄"
    if case.icu_days:
        for b in rules.icu_bands:
            if b.contains(case.icu_days) and b.coefficient > best:
                best, why = b.coefficient, b.label or "ICU 天数"
    if rules.severity and secondary:
        keys: set[str] = set()
        for code in secondary:
            u = code.upper()
            keys.update((u, u[:5], u[:3]))
        for codes, coef, label in rules.severity:
            if coef > best and not codes.isdisjoint(keys):
                best, why = coef, label or "严重程度"
    if rules.cci_weights and rules.cci_bands and secondary:
        total = 0
        for code in secondary:
            u = code.upper()
            total += rules.cci_weights.get(u, rules.cci_weights.get(u[:5], rules.cci_weights.get(u[:3], 0)))
        for b in rules.cci_bands:
            if b.contains(total) and b.coefficient > best:
                best, why = b.coefficient, b.label or f"CCI {total}"
    return best, why


def deviation(
    rules: RegionRules, case_score: Decimal, cost: Decimal, reference: Decimal
) -> tuple[str, Decimal, Decimal, bool]:
    """(band, cost/reference ratio, adjusted case score, special review) per the selected rule.

    Edges: exactly 50% and exactly 200% are 正常; exactly 5× is 超高 (特例 needs more than 5×).
    """
    ratio = cost / reference
    if ratio < rules.deviation_low:
        return Band.LOW, ratio, case_score * ratio, False
    if ratio <= rules.deviation_high:
        return Band.NORMAL, ratio, case_score, False
    if rules.deviation_rule == "3.0":
        special = ratio > rules.deviation_special
        return (Band.SPECIAL if special else Band.HIGH), ratio, case_score, True
    adjusted = case_score * (ratio - rules.deviation_high + ONE)
    if ratio > rules.deviation_special:
        return Band.SPECIAL, ratio, adjusted, True
    return Band.HIGH, ratio, adjusted, False


def position(
    ratio_standard: Decimal | None, ratio_reference: Decimal | None, rules: RegionRules
) -> str | None:
    """Where a projected cost sits (DIP-RULES §6), for the doctor's card."""
    if ratio_reference is not None and ratio_reference > rules.deviation_high:
        return "超高费用病例（仅部分补偿）"
    if ratio_reference is not None and ratio_reference < rules.deviation_low:
        return "低于参考费用 50%（按实际费用结算，无结余）"
    if ratio_standard is None:
        return None
    if ratio_standard > ONE:
        return "超出支付标准（亏损）"
    if ratio_standard >= Decimal("0.8"):
        return "接近支付标准（80%–100%）"
    return "支付标准以内"


@lru_cache(maxsize=65536)
def _standard(
    score: Decimal, hc: Decimal, aux: Decimal, pv: Decimal | None, avg_cost: Decimal | None
) -> tuple[Decimal, Decimal | None, Decimal | None]:
    """(case score, payment standard, reference cost): the same few thousand combinations repeat
    across a million cases, so they are computed once."""
    case_score = (score * hc * aux).quantize(SCORE_Q, rounding=ROUND_HALF_UP)
    standard = money(case_score * pv) if pv is not None else None
    reference = money(avg_cost * hc) if avg_cost else standard
    return case_score, standard, reference


def price(
    rules: RegionRules,
    region_avg_cost: Decimal | None,
    case: Case,
    result: GroupResult,
    secondary: tuple[str, ...] = (),
    cost_so_far: Decimal | None = None,
    additional_cost: Decimal | None = None,
    point: tuple | None = None,
    hospital: tuple[Decimal, str, str] | None = None,
) -> Pricing:
    """Price one grouped case. Ungrouped cases get a Pricing with no standard and a note why.

    ``point`` / ``hospital``: precomputed ``point_value_for`` / ``hospital_coefficient`` results
    (the engine caches them per insurance type and hospital).
    """
    notes: list[str] = []
    group = result.group
    pv, pv_kind, pv_est, pv_src = point or point_value_for(rules, case.insurance_type, region_avg_cost)
    hc, hc_src, hc_basis = hospital or hospital_coefficient(rules, case, result.group_type)
    aux, aux_why = aux_coefficient(rules, case, secondary)
    cost = case.total_cost if case.total_cost is not None else cost_so_far
    thresholds = (rules.deviation_rule, rules.deviation_low, rules.deviation_high, rules.deviation_special)
    if result.score is None or group is None:
        rule = rules.rejected_payment if result.rejected else rules.ungrouped_payment
        notes.append(
            f"{'质控不通过' if result.rejected else '未入组'}，无支付标准；本地区规定：{PAYMENT_RULES[rule]}"
        )
        basis = Basis.FEE_FOR_SERVICE if rule == "fee_for_service" else Basis.WITHHELD
        payment = (
            (money(cost) if cost is not None else None) if basis == Basis.FEE_FOR_SERVICE else Decimal("0.00")
        )
        return Pricing(
            result.dip_code, None, None, pv, pv_kind, pv_est, pv_src, hc, hc_src, hc_basis, aux, aux_why, None, None,
            cost, None, None, None, payment, False, cost_so_far, None, additional_cost,
            None if cost is None and additional_cost is None else (cost or Decimal(0)) + (additional_cost or Decimal(0)),
            None, None, True, tuple(notes), basis, *thresholds,
        )  # fmt: skip
    case_score, standard, reference = _standard(
        result.score, hc, aux, pv, group.avg_cost if rules.deviation_reference == "average_cost" else None
    )
    if pv is None:
        notes.append(pv_src)
    band = ratio = adjusted = adjusted_payment = None
    special = False
    if cost is not None and reference:
        band, ratio, adjusted, special = deviation(rules, case_score, cost, reference)
        adjusted = adjusted.quantize(SCORE_Q, rounding=ROUND_HALF_UP)
        ratio = ratio.quantize(SCORE_Q, rounding=ROUND_HALF_UP)
        if pv is not None:
            adjusted_payment = money(adjusted * pv)
        if special:
            notes.append("特例单议候选：费用超出参考费用的倍数阈值")
    remaining = money(standard - cost_so_far) if standard is not None and cost_so_far is not None else None
    base = cost_so_far if cost_so_far is not None else case.total_cost
    projected = projected_ratio = pos = None
    if additional_cost is not None or base is not None:
        projected = money((base or Decimal(0)) + (additional_cost or Decimal(0)))
        r_std = (projected / standard) if standard else None
        r_ref = (projected / reference) if reference else None
        projected_ratio = r_std.quantize(SCORE_Q, rounding=ROUND_HALF_UP) if r_std is not None else None
        pos = position(r_std, r_ref, rules)
    estimated = pv_est or "optype_default" in result.flags or "estimated" in result.flags
    return Pricing(
        result.dip_code, result.score, case_score, pv, pv_kind, pv_est, pv_src, hc, hc_src, hc_basis, aux, aux_why,
        standard, reference, cost, ratio, band, adjusted, adjusted_payment, special, cost_so_far, remaining,
        additional_cost, projected, projected_ratio, pos, estimated, tuple(notes), Basis.DIP, *thresholds,
    )  # fmt: skip
