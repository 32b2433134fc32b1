"""``dip-encounter-discharge``: the coder's card when the record is closed.

The final grouping with its trace; the documented diagnoses compared as principal — each judged
admissible or not *with the reason* before any group or standard is shown (DIP-RULES.md §7: never
a bare "this one pays more", never an undocumented diagnosis); the codes that were mapped or are
missing; the settlement-list checks that change grouping. Suggestions carry FHIR update actions:
add the 医保版 coding to a Condition, and — only when the documented principal is not admissible —
make an admissible documented diagnosis the principal one.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

from cards import (
    DischargeView,
    MappingView,
    PrincipalOption,
    add_coding_action,
    position_from,
    principal_diagnosis_action,
    suggestion,
)
from cds_service.registry import HookRequest, cds_service
from grouper import GroupResult, OpType
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
from hooks.coding_rules import admissibility, load_coding_rules, settlement_checks, treated_by_operation
from hooks.events import publish_assessment
from hooks.stay import Stay, StayDiagnosis, StayProcedure, birth_weight_grams
from terminology.structure import leimu
from terminology.systems import canonical_for_kind, identify_system

MAX_OPTIONS = 12
MAX_SUGGESTIONS = 8
BIRTH_WEIGHT_SEARCH = {"code": "http://loinc.org|8339-4", "_count": "5"}


def trace_lines(result: GroupResult) -> list[str]:
    """The grouper's trace as numbered steps a coder can follow."""
    t = result.trace
    lines: list[str] = []
    if t.diagnosis:
        where = "，".join(
            part for part in (f"亚目 {t.yamu}" if t.yamu else "", f"类目 {t.leimu}" if t.leimu else "",
                              f"第 {t.chapter} 章" if t.chapter else "") if part
        )  # fmt: skip
        lines.append(f"主要诊断 {t.diagnosis}（{where}）" if where else f"主要诊断 {t.diagnosis}")
    lines.append(
        f"参与分组的手术操作：{'、'.join(t.procedures)}" if t.procedures else "没有参与分组的手术操作"
    )
    if t.ignored_procedures:
        lines.append(f"按本地规则不参与分组的操作：{'、'.join(t.ignored_procedures)}")
    if t.procedure_type:
        lines.append(f"手术操作类型：{t.procedure_type}")
    if t.candidates:
        lines.append(f"完全符合的病种：{'、'.join(t.candidates[:6])}")
    if t.partial:
        lines.append(
            f"主要操作相符但缺少相关操作的病种：{'、'.join(t.partial[:6])}（请核对是否有未编码的操作）"
        )
    lines.append(f"结论：{result.reason}")
    lines.extend(t.notes[:6])
    return lines


def _system_label(concept: Any) -> str:
    codings = (
        [c for c in (concept or {}).get("coding") or [] if isinstance(c, dict)]
        if isinstance(concept, dict)
        else []
    )
    for coding in codings:
        info = identify_system(coding.get("system"))
        if info is not None:
            return info.title
    if codings:
        return "本院编码"
    return "仅文本"


def mapping_views(stay: Stay) -> list[MappingView]:
    """Every code that was not sent as an exact 医保版 code: mapped, completed, guessed or missing."""
    views: list[MappingView] = []
    items: list[StayDiagnosis | StayProcedure] = [*stay.diagnoses, *stay.procedures]
    for item in items:
        res = item.resolution
        if res.code and res.path.endswith("-exact") and not res.needs_confirmation:
            continue
        concept = (item.condition if isinstance(item, StayDiagnosis) else item.procedure or {}) or {}
        target = res.code or (res.candidates[0].code if res.candidates else None)
        target_name = res.display or (res.candidates[0].display if res.candidates else "")
        views.append(
            MappingView(
                source=item.documented,
                source_system=_system_label(concept.get("code")),
                target_code=target,
                target_name=target_name or "",
                path="；".join(res.reasons[:2]) if res.reasons else res.path,
                confidence=None if target is None else Decimal(str(round(res.confidence, 2))),
                needs_confirmation=res.needs_confirmation or target is None or res.path.startswith("text"),
            )
        )
    return views


def coding_suggestions(stay: Stay) -> list[dict[str, Any]]:
    """Add the 医保版 code to Conditions documented in another code system (confirmed mappings only)."""
    out: list[dict[str, Any]] = []
    for d in stay.diagnoses:
        if not d.code or not d.mapped_from_other_system or not d.condition or not d.condition.get("id"):
            continue
        coding = {"system": canonical_for_kind("dx"), "code": d.code, "display": d.resolution.display or ""}
        try:
            action = add_coding_action(dict(d.condition), coding)
        except ValueError:
            continue  # already carries it
        out.append(suggestion(f"为“{d.documented}”补充医保版编码 {d.code}", [action]))
    return out


def _catalog_pairs(ctx: DipContext):
    """``pairs(diagnosis, operation)``: a group of the diagnosis's 亚目 or 类目 contains the operation."""
    catalog = ctx.engine.catalog

    def pairs(diagnosis: str, operation: str) -> bool:
        key = operation.upper()
        groups = catalog.groups_for_leimu(leimu(diagnosis) or "")
        return any(key in slot for g in groups for slot in g.slots)

    return pairs


def principal_options(
    ctx: DipContext, stay: Stay, rules: dict[str, Any], cost
) -> tuple[list[PrincipalOption], list[StayDiagnosis]]:
    """Each documented diagnosis as principal: admissible or not, why, and only then its group."""
    options: list[PrincipalOption] = []
    admissible_alternatives: list[StayDiagnosis] = []
    excluded = ctx.engine.policy.excludes
    treated = treated_by_operation(
        stay, lambda code: ctx.engine.optypes.classify(code)[0] == OpType.SS, _catalog_pairs(ctx)
    )
    for d in stay.diagnoses[:MAX_OPTIONS]:
        code = d.code or ""
        verdict = admissibility(stay, d, rules, lambda c: excluded(c, c[:5], c[:3]), treated)
        group = None
        if verdict.admissible:
            result, pricing = evaluate(ctx, stay.case(principal=d), cost)
            group = group_view(result, pricing, is_estimate(stay, result))
            if d is not stay.principal:
                admissible_alternatives.append(d)
        options.append(
            PrincipalOption(
                code=code or (f"{d.best_guess}（待确认）" if d.best_guess else "未编码"),
                name=d.name if code else d.documented,
                current=d is stay.principal,
                admissible=verdict.admissible,
                reasons=list(verdict.reasons),
                group=group,
            )
        )
    return options, admissible_alternatives


def _birth_weight_observations(req: HookRequest, stay_age_days: int | None, newborn_days: int) -> Any:
    """Newborns only: the birth weight Observation, read from the FHIR server (a settlement-list field)."""
    if stay_age_days is None or stay_age_days >= newborn_days or req.fhir is None:
        return None
    from cds_service.fhir_client import FetchError

    try:
        return req.fhir.search("Observation", {"patient": req.patient_id, **BIRTH_WEIGHT_SEARCH})
    except FetchError as exc:
        req.notes.append(f"未能读取新生儿出生体重（{exc}）")
        return None


@cds_service(
    id="dip-encounter-discharge",
    hook="encounter-discharge",
    title="DIP 出院分组与编码核对 / DIP grouping and coding review at discharge",
    description=(
        "出院时给出最终 DIP 分组与分组过程、主要诊断选择的合规比较、编码映射与结算清单检查。"
        " Final DIP grouping with trace, principal-diagnosis compliance comparison, mapped codes"
        " and settlement-list checks for the coder."
    ),
    prefetch=ENCOUNTER_PREFETCH,
    required_prefetch={"patient", "encounter"},
)
@for_inpatient_stay(find_open=False)
def handle(req: HookRequest, ctx: DipContext, data: EncounterData) -> list[dict[str, Any]]:
    rules = load_coding_rules(ctx.home)
    stay = stay_of(req, ctx, data, at_discharge=True)
    newborn_days = ctx.engine.quality.newborn_days
    observations = _birth_weight_observations(req, stay.age_days, newborn_days)
    if observations is not None:
        stay = replace(stay, birth_weight_g=birth_weight_grams(observations))
    so_far = cost_of_stay(req, ctx, data)
    cost = so_far.total if so_far is not None else None
    result, pricing = evaluate(ctx, stay.case(), cost)
    options, alternatives = principal_options(ctx, stay, rules, cost)
    suggestions = coding_suggestions(stay)
    current_ok = next((o.admissible for o in options if o.current), True)
    if not current_ok and data.encounter and data.encounter.get("id"):
        for d in alternatives:
            if d.condition_id is None:
                continue
            try:
                action = principal_diagnosis_action(
                    dict(data.encounter), dict(d.condition or {}) or d.condition_id
                )
            except ValueError:
                continue
            suggestions.append(suggestion(f"按规范将“{d.documented}”设为主要诊断", [action]))
    notes = estimate_notes(stay, result, pricing) + ctx.templates.cost_notes(so_far) + req.notes
    view = DischargeView(
        catalog_label=ctx.label,
        group=group_view(result, pricing, is_estimate(stay, result)),
        ungrouped_reason=ungrouped_reason(result, stay, data),
        trace=trace_lines(result),
        principal_options=options,
        mappings=mapping_views(stay),
        checks=settlement_checks(stay, result, newborn_days),
        position=position_from(pricing.payment_standard, so_far),
        estimate_notes=list(dict.fromkeys(notes)),
    )
    cards = [
        ctx.templates.build(
            "discharge", view, source=ctx.card_source(), suggestions=suggestions[:MAX_SUGGESTIONS],
            selection_behavior="any" if suggestions else None,
        )
    ]  # fmt: skip
    return publish_assessment(
        req, ctx, data, result, pricing, view.position, cards, estimate=is_estimate(stay, result)
    )
