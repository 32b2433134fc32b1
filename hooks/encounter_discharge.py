"""``dip-encounter-discharge``: the coder's card when the record is closed.

The final grouping with its trace; the principal-procedure check (主要手术操作选择可能不当, both
groupings side by side); the documented diagnoses compared as principal — each judged admissible or
not *with the reason* before any group or standard is shown, in the record's order (DIP-RULES.md §7:
never a bare "this one pays more", never an undocumented diagnosis); the codes that were mapped or
are missing; the settlement-list checks. Suggestions carry FHIR update actions: add the 医保版 coding
to a Condition, and — only when the documented principal is not admissible — make the one documented
diagnosis the 填写规范 make principal the principal one (the others stay information).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from cards import (
    DischargeView,
    MappingView,
    PrincipalOption,
    add_coding_action,
    principal_diagnosis_action,
    suggestion,
)
from cds_service.registry import HookRequest, cds_service
from dip_engine.pricing import Pricing
from grouper import Case, GroupResult, OpType
from hooks import ENCOUNTER_PREFETCH
from hooks.assessment import Assessment, assess, is_estimate
from hooks.card_views import basis_view, cost_position, group_view, prediction_view, ungrouped_reason
from hooks.coding_rules import admissibility, load_coding_rules, settlement_checks, treated_by_operation
from hooks.context import DipContext
from hooks.encounter_data import EncounterData
from hooks.estimate_notes import estimate_notes
from hooks.events import publish
from hooks.procedure_order_check import procedure_order_check
from hooks.service import for_inpatient_stay
from hooks.stay import Stay, StayDiagnosis, StayProcedure
from terminology.structure import leimu
from terminology.systems import canonical_for_kind, identify_system

MAX_OPTIONS = 12
MAX_SUGGESTIONS = 8
TREATED_REASON = "本次手术所治疗的疾病"
NEXT_REASON = "病历诊断顺序中下一个符合《填写规范》的诊断"

Regroup = Callable[[Case], tuple[GroupResult, Pricing]]


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
    found = concept.get("coding") if isinstance(concept, dict) else None
    codings = [c for c in found if isinstance(c, dict)] if isinstance(found, list) else []
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


def _catalog_pairs(ctx: DipContext) -> Callable[[str, str], bool]:
    """``pairs(diagnosis, operation)``: a group of the diagnosis's 类目 contains the operation."""
    catalog = ctx.engine.catalog

    def pairs(diagnosis: str, operation: str) -> bool:
        key = operation.upper()
        groups = catalog.groups_for_leimu(leimu(diagnosis) or "")
        return any(key in slot for g in groups for slot in g.slots)

    return pairs


def treated_diagnoses(ctx: DipContext, stay: Stay) -> tuple[StayDiagnosis, ...] | None:
    """The diagnoses the stay's operations treated (by reasonReference, else by the catalog)."""
    return treated_by_operation(
        stay, lambda code: ctx.engine.optypes.classify(code)[0] == OpType.SS, _catalog_pairs(ctx)
    )


def principal_options(
    ctx: DipContext,
    stay: Stay,
    rules: dict[str, Any],
    regroup: Regroup,
    treated: tuple[StayDiagnosis, ...] | None = None,
) -> tuple[list[PrincipalOption], list[StayDiagnosis]]:
    """Each documented diagnosis as principal, in the record's order: admissible or not, why, and only
    then its group (``regroup`` groups and prices a variant case). Also the admissible alternatives."""
    options: list[PrincipalOption] = []
    admissible_alternatives: list[StayDiagnosis] = []
    excluded = ctx.engine.policy.excludes
    for d in stay.diagnoses[:MAX_OPTIONS]:
        code = d.code or ""
        verdict = admissibility(stay, d, rules, lambda c: excluded(c, c[:5], c[:3]), treated)
        group = None
        if verdict.admissible:
            result, pricing = regroup(stay.case(principal=d))
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


def compliant_principal(
    alternatives: list[StayDiagnosis], treated: tuple[StayDiagnosis, ...] | None
) -> tuple[StayDiagnosis, str] | None:
    """The one documented diagnosis to suggest as principal when the current one is inadmissible:
    the condition the stay's operation treated (填写规范: for surgical stays the principal diagnosis
    is what the principal operation treated), else the next admissible one in the record's order —
    never chosen by score. None when no alternative is admissible."""
    for d in alternatives:
        if any(d is t for t in treated or ()):
            return d, TREATED_REASON
    return (alternatives[0], NEXT_REASON) if alternatives else None


def principal_change(data: EncounterData, choice: tuple[StayDiagnosis, str] | None) -> dict[str, Any] | None:
    """The FHIR suggestion re-ranking Encounter.diagnosis for ``choice`` (None when it cannot be made)."""
    if choice is None or not data.encounter or not data.encounter.get("id"):
        return None
    d = choice[0]
    if d.condition_id is None:
        return None
    try:
        action = principal_diagnosis_action(dict(data.encounter), dict(d.condition or {}) or d.condition_id)
    except ValueError:
        return None
    return suggestion(f"按规范将“{d.documented}”设为主要诊断", [action])


def discharge_view(
    assessment: Assessment, rules: dict[str, Any], request_notes: list[str]
) -> tuple[DischargeView, list[dict[str, Any]]]:
    """The coder's card view of the assessment, and its suggestions."""
    ctx, stay, data = assessment.context, assessment.stay, assessment.data
    before = assessment.before
    treated = treated_diagnoses(ctx, stay)
    options, alternatives = principal_options(ctx, stay, rules, assessment.regroup, treated)
    suggestions = coding_suggestions(stay)
    current_ok = next((o.admissible for o in options if o.current), True)
    choice = None if current_ok else compliant_principal(alternatives, treated)
    change = principal_change(data, choice)
    if change is not None:
        suggestions.insert(0, change)  # the one principal change first: never cut by MAX_SUGGESTIONS
    chosen = None
    if choice is not None:
        chosen = next((o for o, d in zip(options, stay.diagnoses, strict=False) if d is choice[0]), None)
    view = DischargeView(
        catalog_label=ctx.label,
        group=prediction_view(before),
        ungrouped_reason=ungrouped_reason(assessment),
        trace=trace_lines(before.result),
        principal_options=options,
        mappings=mapping_views(stay),
        checks=settlement_checks(stay, before.result, ctx.engine.quality.newborn_days),
        position=cost_position(assessment),
        estimate_notes=estimate_notes(assessment, request_notes),
        procedure_check=procedure_order_check(assessment),
        principal_suggestion=chosen,
        principal_suggestion_reason=choice[1] if choice is not None else "",
        basis=basis_view(before.pricing, assessment.insurance),
    )
    return view, suggestions[:MAX_SUGGESTIONS]


@cds_service(
    id="dip-encounter-discharge",
    hook="encounter-discharge",
    title="DIP 出院分组与编码核对 / DIP grouping and coding review at discharge",
    description=(
        "出院时给出最终 DIP 分组与分组过程、主要手术操作与主要诊断选择的合规核对、编码映射与结算清单检查。"
        " Final DIP grouping with trace, principal-procedure and principal-diagnosis compliance checks,"
        " mapped codes and settlement-list checks for the coder."
    ),
    prefetch=ENCOUNTER_PREFETCH,
    required_prefetch={"patient", "encounter"},
)
@for_inpatient_stay(find_open=False)
def handle(req: HookRequest, ctx: DipContext, data: EncounterData) -> list[dict[str, Any]]:
    assessment = assess(req, ctx, data, at_discharge=True)
    view, suggestions = discharge_view(assessment, load_coding_rules(ctx.home), req.notes)
    card = ctx.templates.build(
        "discharge", view, source=ctx.card_source(), suggestions=suggestions,
        selection_behavior="any" if suggestions else None,
    )  # fmt: skip
    return publish(req, assessment, [card])
