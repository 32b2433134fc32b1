"""``dip-patient-view``: opening a chart shows the open stay's DIP status.

Prefetch: the patient, the encounter in context (when the client sends an encounterId) with its
diagnoses, procedures and charges, the patient's insurance (``coverage``) and ``openEncounters``
(the patient's in-progress encounters) for clients such as the Sandbox that send no encounterId.
"""

from __future__ import annotations

from typing import Any

from cards import PatientStatusView
from cds_service.registry import HookRequest, cds_service
from hooks import ENCOUNTER_PREFETCH, OPEN_ENCOUNTERS
from hooks.assessment import assess
from hooks.card_views import basis_view, cost_position, prediction_view, ungrouped_reason
from hooks.context import DipContext
from hooks.encounter_data import EncounterData
from hooks.estimate_notes import estimate_notes
from hooks.events import publish
from hooks.service import for_inpatient_stay

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
    status = (data.encounter or {}).get("status")
    if not isinstance(status, str) or status not in OPEN_STATUSES:
        return []  # no open stay: nothing to say (the spec: no card rather than an empty one)
    assessment = assess(req, ctx, data)
    stay, prediction = assessment.stay, assessment.prediction
    view = PatientStatusView(
        catalog_label=ctx.label,
        group=prediction_view(prediction),
        position=cost_position(assessment),
        ungrouped_reason=ungrouped_reason(assessment),
        admitted_on=stay.admitted.strftime("%Y-%m-%d") if stay.admitted else None,
        los_days=stay.los_days(),
        estimate_notes=estimate_notes(assessment, req.notes),
        basis=basis_view(prediction.pricing, assessment.insurance),
    )
    return publish(req, assessment, [ctx.templates.build("patient_view", view, source=ctx.card_source())])
