"""``dip-encounter-start``: from the admitting diagnosis, the pathways such stays usually take in the
region — the 保守 (conservative) group of its 亚目 and its procedure groups, most cases first, with
their average length of stay — so the team can plan. A forecast, and it says so; never a list
ordered by payment.
"""

from __future__ import annotations

from typing import Any

from cards import EncounterStartView
from cds_service.registry import HookRequest, cds_service
from grouper import Group, GroupType, OpType
from hooks import ENCOUNTER_PREFETCH
from hooks.assessment import assess
from hooks.card_views import basis_view, catalog_group_view
from hooks.context import DipContext
from hooks.encounter_data import EncounterData
from hooks.estimate_notes import estimate_notes
from hooks.events import publish
from hooks.service import for_inpatient_stay
from terminology.structure import leimu, yamu

MAX_PATHWAYS = 6


def by_case_count(group: Group) -> tuple[int, str]:
    """Most cases first; the code (not the score) settles ties, so payment never orders the list."""
    return (-(group.case_count or 0), group.code)


def expected_pathways(catalog: Any, code: str) -> tuple[list[Group], Group | None, int | None]:
    """(pathways most cases first, the 类目's comprehensive surgery group, cases of all the 亚目's
    groups). Without a core group for the 亚目, the 类目's comprehensive groups are the pathways."""
    groups = list(catalog.groups_for_yamu(yamu(code) or ""))
    comprehensive = [
        g for g in catalog.groups_for_leimu(leimu(code) or "") if g.type == GroupType.COMPREHENSIVE
    ]
    other_operations = next((g for g in comprehensive if g.op_type == OpType.SS), None)
    if not groups:
        groups, other_operations = comprehensive, None
    counts = [g.case_count for g in groups if g.case_count is not None]
    return sorted(groups, key=by_case_count)[:MAX_PATHWAYS], other_operations, sum(counts) if counts else None


@cds_service(
    id="dip-encounter-start",
    hook="encounter-start",
    title="DIP 入院病种预测 / DIP group forecast at admission",
    description=(
        "入院时根据入院诊断列出本地区常见的诊疗路径（病种、病例数、平均住院日与支付标准），并提示编码问题。"
        " Lists the region's usual pathways (groups, case counts, length of stay, standards) for the admitting diagnosis."
    ),
    prefetch=ENCOUNTER_PREFETCH,
    required_prefetch={"patient", "encounter"},
)
@for_inpatient_stay(find_open=False)
def handle(req: HookRequest, ctx: DipContext, data: EncounterData) -> list[dict[str, Any]]:
    assessment = assess(req, ctx, data, with_cost=False)
    principal = assessment.stay.principal
    code = principal.best_guess if principal is not None else None
    if principal is None or code is None:
        return []  # no admitting diagnosis yet: nothing to forecast (the order-sign card will say more)
    pathways, other_operations, case_total = expected_pathways(ctx.engine.catalog, code)
    view = EncounterStartView(
        catalog_label=ctx.label,
        diagnosis_code=code,
        diagnosis_name=principal.name,
        yamu=yamu(code) or "",
        pathways=[v for g in pathways if (v := catalog_group_view(assessment, g)) is not None],
        other_operations=catalog_group_view(assessment, other_operations) if other_operations else None,
        case_total=case_total,
        estimate_notes=estimate_notes(assessment, req.notes),
        basis=basis_view(assessment.before.pricing, assessment.insurance),
    )
    return publish(req, assessment, [ctx.templates.build("encounter_start", view, source=ctx.card_source())])
