"""``dip-order-sign``: when orders are signed, where the stay stands against its DIP payment standard
and what the new orders do to it (cost, and the group when a draft operation changes it).

Also the card of ``dip-order-select`` (same question, asked earlier). No open inpatient encounter
→ no card: DIP pays inpatient stays only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from cards import GroupChangeView, OrderSignView, position_from, unpriced_from
from cds_service.registry import HookRequest, cds_service
from costing import cost_of_orders
from grouper import OpType
from hooks import ENCOUNTER_PREFETCH
from hooks.assess import (
    DipContext,
    EncounterData,
    cost_of_stay,
    estimate_notes,
    evaluate,
    for_inpatient_stay,
    group_view,
    is_estimate,
    stay_of,
    ungrouped_reason,
)
from hooks.events import publish_assessment
from mappings import resolve_coding

GROUP_MOVING_TYPES = frozenset({OpType.SS, OpType.ZLXCZ})  # operations/interventions, therapeutic procedures
MAX_ORDERS = 1000  # a bundle larger than this is priced in part, and the card says so
ORDER_STATUSES_IGNORED = frozenset({"revoked", "entered-in-error", "completed", "cancelled"})


def draft_procedures(
    orders: list[dict[str, Any]], terminology: Any, counts: Callable[[str], bool], local_maps: Any = None
) -> list[tuple[str, str]]:
    """(医保版 ICD-9-CM-3 code, name) of draft operations and therapeutic procedures: ServiceRequests
    whose coding the mapping layer resolves to a procedure code (国临版 and hospital codes mapped; a
    misspelt or unknown system URI only when the display confirms the code) whose type ``counts``.
    Diagnostic examinations (an MRI, a CT) are left out: they are rarely coded on the settlement list
    and must not read as "this operation moves the stay". Charge-item codes and text never count."""
    found: list[tuple[str, str]] = []
    for order in orders[:MAX_ORDERS]:
        if order.get("resourceType") != "ServiceRequest" or order.get("status") in ORDER_STATUSES_IGNORED:
            continue
        concept = order.get("code")
        if isinstance(concept, Mapping) and isinstance(concept.get("concept"), Mapping):
            concept = concept["concept"]  # R5 CodeableReference
        for coding in (concept or {}).get("coding") or [] if isinstance(concept, Mapping) else []:
            res = resolve_coding(terminology, "px", coding, local_maps, trust_systemless=False)
            if res.mapped and res.code and counts(res.code) and res.code not in {code for code, _ in found}:
                found.append((res.code, res.display or str(coding.get("display") or "")))
                break
    return found


@for_inpatient_stay(find_open=True)
def order_cards(req: HookRequest, ctx: DipContext, data: EncounterData) -> list[dict[str, Any]]:
    """The order-sign / order-select status card."""
    stay = stay_of(req, ctx, data)
    so_far = cost_of_stay(req, ctx, data)
    orders = req.draft_orders()
    order_cost = cost_of_orders(orders[:MAX_ORDERS], ctx.prices)
    cost = so_far.total if so_far is not None else None
    case = stay.case()
    result, pricing = evaluate(ctx, case, cost, order_cost.total)
    change = None
    operations = draft_procedures(
        orders,
        req.app_data.terminology,
        lambda code: ctx.engine.optypes.classify(code)[0] in GROUP_MOVING_TYPES,
        ctx.local_maps,
    )
    if operations:
        after, after_pricing = evaluate(
            ctx, stay.case(extra_procedures=[code for code, _ in operations]), cost, order_cost.total
        )
        after_view = group_view(after, after_pricing, is_estimate(stay, after))
        if after.dip_code != result.dip_code and after_view is not None:
            code, name = operations[0]
            if after.trace.principal_procedure:
                code = after.trace.principal_procedure
                name = next((n for c, n in operations if c == code), name)
            change = GroupChangeView(
                before=group_view(result, pricing, is_estimate(stay, result)),
                after=after_view,
                procedure_code=code,
                procedure_name=name,
            )
        result, pricing = after, after_pricing
    notes = estimate_notes(stay, result, pricing) + ctx.templates.cost_notes(so_far, order_cost) + req.notes
    if len(orders) > MAX_ORDERS:
        notes.append(f"本次共 {len(orders)} 条医嘱，只计算了前 {MAX_ORDERS} 条的费用")
    view = OrderSignView(
        catalog_label=ctx.label,
        group=group_view(result, pricing, is_estimate(stay, result)),
        position=position_from(pricing.payment_standard, so_far, order_cost),
        ungrouped_reason=ungrouped_reason(result, stay, data),
        group_change=change,
        priced_order_count=len(order_cost.priced),
        unpriced_orders=unpriced_from(order_cost)[:20],
        estimate_notes=list(dict.fromkeys(notes)),
    )
    cards = [ctx.templates.build("order_sign", view, source=ctx.card_source())]
    return publish_assessment(
        req, ctx, data, result, pricing, view.position, cards, estimate=is_estimate(stay, result)
    )


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
