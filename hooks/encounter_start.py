"""``dip-encounter-start``: from the admitting diagnosis, the groups the stay can end in — the 保守
(conservative) group of its 亚目 and the most common procedure groups, with their standards and
average length of stay — so the team can plan. It is a forecast and says so.
"""

from __future__ import annotations

from typing import Any

from cards import EncounterStartView
from cds_service.registry import HookRequest, cds_service
from grouper import GroupType, OpType
from hooks import ENCOUNTER_PREFETCH
from hooks.assess import (
    DipContext,
    EncounterData,
    estimate_notes,
    evaluate,
    for_inpatient_stay,
    is_estimate,
    price_group,
    stay_of,
)
from hooks.events import publish_assessment
from terminology.structure import leimu, yamu

MAX_PROCEDURE_GROUPS = 5


def _by_frequency(group: Any) -> tuple:
    return (-(group.case_count or 0), -group.score, group.code)


@cds_service(
    id="dip-encounter-start",
    hook="encounter-start",
    title="DIP 入院病种预测 / DIP group forecast at admission",
    description=(
        "入院时根据入院诊断预测 DIP 病种与支付标准，并提示编码问题。"
        " Forecasts the DIP group and payment standard from the admission diagnoses and flags coding issues."
    ),
    prefetch=ENCOUNTER_PREFETCH,
    required_prefetch={"patient", "encounter"},
)
@for_inpatient_stay(find_open=False)
def handle(req: HookRequest, ctx: DipContext, data: EncounterData) -> list[dict[str, Any]]:
    stay = stay_of(req, ctx, data)
    principal = stay.principal
    code = principal.best_guess if principal is not None else None
    if principal is None or code is None:
        return []  # no admitting diagnosis yet: nothing to forecast (the order-sign card will say more)
    catalog = ctx.engine.catalog
    case = stay.case()
    groups = catalog.groups_for_yamu(yamu(code) or "")
    conservative = next((g for g in groups if g.is_conservative), None)
    procedure_groups = sorted((g for g in groups if not g.is_conservative), key=_by_frequency)
    comprehensive = [
        g for g in catalog.groups_for_leimu(leimu(code) or "") if g.type == GroupType.COMPREHENSIVE
    ]
    if not groups:  # no core group for the 亚目: the 类目's comprehensive groups are where it goes
        conservative = next((g for g in comprehensive if g.op_type == OpType.BSZL), None)
        procedure_groups = sorted((g for g in comprehensive if g is not conservative), key=_by_frequency)
        comprehensive = []
    comprehensive = [g for g in comprehensive if g.op_type == OpType.SS]
    result, pricing = evaluate(ctx, case)  # the point value behind every standard on the card
    notes = estimate_notes(stay, None, pricing) + req.notes
    view = EncounterStartView(
        catalog_label=ctx.label,
        diagnosis_code=code,
        diagnosis_name=principal.name,
        yamu=yamu(code) or "",
        conservative=price_group(ctx, case, conservative) if conservative else None,
        procedure_groups=[
            view
            for g in procedure_groups[:MAX_PROCEDURE_GROUPS]
            if (view := price_group(ctx, case, g)) is not None
        ],
        comprehensive=price_group(ctx, case, comprehensive[0]) if comprehensive else None,
        estimate_notes=notes,
    )
    cards = [ctx.templates.build("encounter_start", view, source=ctx.card_source())]
    return publish_assessment(
        req, ctx, data, result, pricing, None, cards, estimate=is_estimate(stay, result)
    )
