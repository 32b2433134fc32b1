"""Why a card's numbers are estimates, in the doctor's and coder's words: mapped or guessed inputs,
an estimated principal procedure, default rules, a point value that is not the settlement one,
incomplete cost data. The card shows them under "以下为估算"."""

from __future__ import annotations

from collections.abc import Sequence

from dip_engine.engine import FLAG_NOT_IN_TERMINOLOGY
from hooks.assessment import Assessment, Prediction
from hooks.card_views import procedure_name
from hooks.draft_orders import MAX_ORDERS
from hooks.stay import Stay


def _principal_diagnosis_notes(stay: Stay) -> list[str]:
    principal = stay.principal
    notes: list[str] = []
    if principal is None:
        return notes
    if principal.code is None and principal.best_guess:
        notes.append(
            f"主要诊断“{principal.documented}”没有确认的医保版编码，按最接近的 {principal.best_guess} 估算"
        )
    elif principal.code is None:
        notes.append(f"主要诊断“{principal.documented}”无法映射到医保版编码")
    elif principal.resolution.path.startswith("text"):
        notes.append(f"主要诊断仅有文字“{principal.documented}”，按名称对应为 {principal.code}，需编码员确认")
    elif principal.mapped_from_other_system:
        notes.append(f"主要诊断 {principal.documented} 经映射为医保版 {principal.code}")
    if stay.rank_conflict:
        notes.append(f"多个诊断排序相同（{'、'.join(stay.rank_conflict)}），按第一个估算")
    return notes


def _prediction_notes(assessment: Assessment, prediction: Prediction) -> list[str]:
    notes: list[str] = []
    result, pricing = prediction.result, prediction.pricing
    if prediction.principal is not None:
        code = prediction.principal.code
        name = procedure_name(assessment, code)
        notes.append(
            f"病历未标明手术操作的主次，按类型（手术/介入优先）和目录分值估算 {code}{' ' + name if name else ''}"
            " 为主要手术操作"
        )
    if "optype_default" in result.flags:
        notes.append("手术操作类型按默认规则判定（未导入本地手术操作类型表）")
    if FLAG_NOT_IN_TERMINOLOGY in result.flags:
        notes.append("部分编码不在医保版编码表中")
    if pricing.payment_standard is not None and pricing.point_value_estimated:
        notes.append("支付标准按估算点值计算（见计算依据），最终以年度结算点值为准")
    if pricing.payment_standard is None and result.grouped:
        notes.extend(pricing.notes or ("未配置点值，无法计算支付标准",))
    return notes


def estimate_notes(assessment: Assessment, request_notes: Sequence[str] = ()) -> list[str]:
    """Every reason the card's group or numbers are estimates, each once, in reading order."""
    notes = _principal_diagnosis_notes(assessment.stay) + list(assessment.stay.notes)
    notes += _prediction_notes(assessment, assessment.prediction)
    if assessment.insurance.note:
        notes.append(assessment.insurance.note)
    orders = assessment.orders
    notes += assessment.context.templates.cost_notes(assessment.cost, orders.cost if orders else None)
    if orders is not None and orders.truncated:
        notes.append(f"本次共 {orders.count} 条医嘱，只计算了前 {MAX_ORDERS} 条的费用")
    notes += list(request_notes)
    return list(dict.fromkeys(notes))
