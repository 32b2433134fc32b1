"""From an :class:`~hooks.assessment.Assessment` to the pieces of the cards' view-models
(:mod:`cards.views`): the group as people read it, the cost position, what the standard was computed
with. The card modules assemble these; the texts are the templates'."""

from __future__ import annotations

from decimal import Decimal

from cards import CostPosition, GroupView, PricingBasis, position_from
from dip_engine.pricing import Pricing
from grouper import Group, GroupResult, GroupType, OpType, Trace
from hooks.assessment import Assessment, Prediction
from hooks.coverage import Insurance

KINDS = {
    GroupType.CORE: "core",
    GroupType.PRIMARY: "basic",
    GroupType.COMPREHENSIVE: "comprehensive",
    GroupType.CHAPTER: "chapter",
}


def procedure_label(group: Group | None) -> str:
    """A group's procedures in words ("腹腔镜下阑尾切除术"), a comprehensive group's procedure type
    ("治疗性操作"); "" for a 保守 group."""
    if group is None:
        return ""
    if group.procedure_names:
        return "、".join(n for n in group.procedure_names if n)
    if group.op_type in OpType.NAMES and group.op_type != OpType.BSZL:
        return OpType.NAMES[group.op_type]
    return ""


def display_name(name: str, group: Group | None) -> str:
    """The group's name with its procedures ("急性阑尾炎：腹腔镜下阑尾切除术") or its type
    ("急性阑尾炎（相关手术）") — never a word the catalog's own name already carries."""
    label = procedure_label(group)
    if not label or label in name:
        return name
    if group is not None and group.procedure_names:
        return f"{name}：{label}"
    return f"{name}（{label}）"


def group_view(result: GroupResult, pricing: Pricing | None, estimate: bool) -> GroupView | None:
    """The card's view of a group; None when the case is 未入组."""
    if not result.grouped or result.dip_code is None:
        return None
    group = result.group
    avg_los = group.avg_los if group is not None else None
    return GroupView(
        code=result.dip_code,
        name=display_name(result.group_name, group),
        kind=KINDS.get(result.group_type, "core"),
        score=result.score,
        standard=pricing.payment_standard if pricing is not None else None,
        avg_los=Decimal(str(avg_los)) if avg_los is not None else None,
        case_count=group.case_count if group is not None else None,
        estimate=estimate,
        procedure_label=procedure_label(group),
    )


def procedure_name(assessment: Assessment, code: str) -> str:
    """A procedure's name as the record or the draft order gives it, else the 医保版 table's."""
    key = code.upper()
    for p in assessment.stay.procedures:
        if p.code and p.code.upper() == key:
            return p.name
    for d in assessment.orders.procedures if assessment.orders is not None else ():
        if d.code.upper() == key and d.name:
            return d.name
    terminology = assessment.context.engine.terminology
    return (terminology.display("px", code) or "") if terminology is not None else ""


def prediction_view(prediction: Prediction) -> GroupView | None:
    return group_view(prediction.result, prediction.pricing, prediction.estimate)


def catalog_group_view(assessment: Assessment, group: Group) -> GroupView | None:
    """A catalog group as the card shows it, priced for this patient (coefficients, insurance)."""
    result = GroupResult(
        group.code, group.type, group.name, group.score, "", Trace(None, None, None, None, ()), (), group
    )
    case = assessment.before.case
    return group_view(result, assessment.context.engine.price(case, result), estimate=False)


def basis_view(pricing: Pricing, insurance: Insurance) -> PricingBasis:
    """What the standard was computed with: the insurance type and whose it was, the point value and
    its kind, the hospital and auxiliary coefficients, the region's deviation rule."""
    return PricingBasis(
        insurance_type=insurance.type,
        insurance_source=insurance.source,
        insurance_detail=insurance.detail,
        point_value=pricing.point_value,
        point_value_kind=pricing.point_value_kind,
        hospital_coefficient=pricing.hospital_coefficient,
        hospital_coefficient_configured=pricing.hospital_coefficient_configured,
        hospital_coefficient_source=pricing.hospital_coefficient_source,
        aux_coefficient=pricing.aux_coefficient,
        aux_reason=pricing.aux_reason,
        deviation_rule=pricing.deviation_rule,
        deviation_low=pricing.deviation_low,
        deviation_high=pricing.deviation_high,
        deviation_special=pricing.deviation_special,
    )


def cost_position(assessment: Assessment) -> CostPosition:
    """Where the stay stands against the predicted group's standard (with the draft orders' cost)."""
    orders = assessment.orders.cost if assessment.orders is not None else None
    return position_from(assessment.prediction.pricing.payment_standard, assessment.cost, orders)


def ungrouped_reason_of(result: GroupResult) -> str | None:
    """The grouper's reason for 未入组, without the prefix the card already says; None when grouped."""
    return None if result.grouped else result.reason.removeprefix("未入组：")


def ungrouped_reason(assessment: Assessment) -> str | None:
    """Why there is no group, in the doctor's words; a data problem is named as such, not as 未入组."""
    result, stay, problem = assessment.prediction.result, assessment.stay, assessment.data.problem
    if result.grouped:
        return None
    if not stay.diagnoses and problem:
        return f"未能取得本次住院的诊断数据（{problem}），无法预测病种"
    if not stay.diagnoses:
        return "本次住院尚未记录诊断"
    principal = stay.principal
    if principal is not None and principal.best_guess is None:
        return f"主要诊断“{principal.documented}”无法映射到医保版编码"
    return ungrouped_reason_of(result)
