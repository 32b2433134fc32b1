"""``dip-patient-view``: opening a chart shows the open stay's DIP status.

Prefetch: the patient, the encounter in context (when the client sends an encounterId) with its
diagnoses, procedures and charges, and ``openEncounters`` (the patient's in-progress encounters)
for clients such as the Sandbox that send no encounterId.
Handler contract: as in :mod:`hooks.order_sign`.
"""

from __future__ import annotations

from typing import Any

from cards import PatientStatusView, position_from
from cds_service.registry import HookRequest, cds_service
from hooks import ENCOUNTER_PREFETCH, OPEN_ENCOUNTERS
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

OPEN_STATUSES = frozenset({"in-progress", "arrived", "onleave", "planned"})


@cds_service(
    id="dip-patient-view",
    hook="patient-view",
    title="DIP 在院患者结余概览 / DIP budget overview when opening a chart",
    description=(
        "打开病历时显示当前住院的 DIP 病种、已发生费用与剩余额度。"
        " Shows the current stay's DIP group, cost so far and remaining budget when a chart is opened."
    ),
    prefetch={**ENCOUNTER_PREFETCH, "openEncounters": OPEN_ENCOUNTERS},
    required_prefetch={"patient"},
)
@for_inpatient_stay(find_open=True)
def handle(req: HookRequest, ctx: DipContext, data: EncounterData) -> list[dict[str, Any]]:
    if (data.encounter or {}).get("status") not in OPEN_STATUSES:
        return []  # no open stay: nothing to say (the spec: no card rather than an empty one)
    stay = stay_of(req, ctx, data)
    so_far = cost_of_stay(req, ctx, data)
    result, pricing = evaluate(ctx, stay.case(), so_far.total if so_far is not None else None)
    notes = estimate_notes(stay, result, pricing) + ctx.templates.cost_notes(so_far) + req.notes
    view = PatientStatusView(
        catalog_label=ctx.label,
        group=group_view(result, pricing, is_estimate(stay, result)),
        position=position_from(pricing.payment_standard, so_far),
        ungrouped_reason=ungrouped_reason(result, stay, data),
        admitted_on=stay.admitted.strftime("%Y-%m-%d") if stay.admitted else None,
        los_days=stay.los_days(),
        estimate_notes=list(dict.fromkeys(notes)),
    )
    cards = [ctx.templates.build("patient_view", view, source=ctx.card_source())]
    return publish_assessment(
        req, ctx, data, result, pricing, view.position, cards, estimate=is_estimate(stay, result)
    )
