"""``dip-order-sign``: when orders are signed, where the stay stands against its DIP payment standard
and what the new orders do to it — their cost, and the predicted group when a draft operation
(手术/介入) becomes the stay's principal procedure, said in neutral words.

Also the card of ``dip-order-select`` (same question, asked earlier). No open inpatient encounter
→ no card: DIP pays inpatient stays only.
"""

from __future__ import annotations

from typing import Any

from cards import GroupChangeView, OrderSignView, unpriced_from
from cds_service.registry import HookRequest, cds_service
from hooks import ENCOUNTER_PREFETCH
from hooks.assessment import Assessment, assess
from hooks.card_views import basis_view, cost_position, prediction_view, ungrouped_reason
from hooks.context import DipContext
from hooks.encounter_data import EncounterData
from hooks.estimate_notes import estimate_notes
from hooks.events import publish
from hooks.service import for_inpatient_stay

MAX_UNPRICED_LISTED = 20


def order_sign_view(assessment: Assessment, request_notes: list[str]) -> OrderSignView:
    """The order-sign / order-select card's view of the request's assessment."""
    prediction = assessment.prediction
    group = prediction_view(prediction)
    change = None
    surgery = assessment.group_change
    if surgery is not None and group is not None:
        change = GroupChangeView(prediction_view(assessment.before), group, surgery.code, surgery.name)
    orders = assessment.orders
    return OrderSignView(
        catalog_label=assessment.context.label,
        group=group,
        position=cost_position(assessment),
        ungrouped_reason=ungrouped_reason(assessment),
        group_change=change,
        priced_order_count=len(orders.cost.priced) if orders is not None else 0,
        unpriced_orders=unpriced_from(orders.cost if orders is not None else None)[:MAX_UNPRICED_LISTED],
        estimate_notes=estimate_notes(assessment, request_notes),
        basis=basis_view(prediction.pricing, assessment.insurance),
    )


@for_inpatient_stay(find_open=True)
def order_cards(req: HookRequest, ctx: DipContext, data: EncounterData) -> list[dict[str, Any]]:
    """The order-sign / order-select status card."""
    assessment = assess(req, ctx, data, with_orders=True)
    card = ctx.templates.build("order_sign", order_sign_view(assessment, req.notes), source=ctx.card_source())
    return publish(req, assessment, [card])


@cds_service(
    id="dip-order-sign",
    hook="order-sign",
    title="DIP 病种分值与结余预测（签署医嘱）/ DIP group and budget at order signing",
    description=(
        "签署医嘱时预测本次住院的 DIP 病种、支付标准与剩余额度，提示医嘱费用对结余的影响。"
        " Predicts the stay's DIP group, payment standard and remaining budget when orders are signed."
    ),
    prefetch=ENCOUNTER_PREFETCH,
    required_prefetch={"patient", "encounter"},
)
def handle(req: HookRequest) -> list[dict[str, Any]]:
    return order_cards(req)
