"""The coder's principal-procedure check (主要手术操作选择可能不当), DIP-RULES.md §2.

Grouping takes the settlement list's first procedure as the principal one and never re-orders the
coder's list. The 填写规范 say the principal procedure is the one of greatest risk, difficulty and
cost; so when a later-listed procedure is of a higher type (手术/介入 after a 诊断性操作 …), or is the
主操作 of a core group while the coded principal leads to none, the coder card says so and shows the
grouping of both orders side by side — the coder corrects the list, not the grouper.
"""

from __future__ import annotations

from dataclasses import replace

from cards import ProcedureChoice, ProcedureOrderCheck
from grouper import GroupResult, GroupType
from hooks.assessment import Assessment
from hooks.card_views import group_view, procedure_name, ungrouped_reason_of
from hooks.procedure_types import type_name, type_rank

CORE_TYPES = (GroupType.CORE, GroupType.PRIMARY)


def _leads_to_core(result: GroupResult, code: str) -> bool:
    """The result is a core group whose 主操作 is ``code``."""
    main = result.group.main_procedure if result.group is not None else None
    return result.group_type in CORE_TYPES and main is not None and main.upper() == code.upper()


def procedure_order_check(assessment: Assessment) -> ProcedureOrderCheck | None:
    """The check on the stay as coded (``assessment.before``, procedures in their recorded order);
    None when the principal procedure is plausible or there is nothing to compare."""
    before = assessment.before
    result = before.result
    listed = result.trace.procedures  # procedures that count for grouping, in the coder's order
    if len(listed) < 2 or not result.trace.diagnosis:
        return None
    engine = assessment.context.engine
    coded = listed[0]
    coded_type = engine.optypes.classify(coded)[0]
    core_mains: dict[str, str] = {}
    for code in result.trace.later_main:
        group = engine.catalog.group(code)
        if group is not None and group.main_procedure:
            core_mains.setdefault(group.main_procedure.upper(), code)
    coded_core = _leads_to_core(result, coded)
    flagged: list[tuple[int, int, str, list[str]]] = []
    for position, code in enumerate(listed[1:], start=1):
        kind = engine.optypes.classify(code)[0]
        reasons: list[str] = []
        if type_rank(kind) < type_rank(coded_type):
            reasons.append(
                f"其后的 {code} 为{type_name(kind)}，高于现主要手术操作 {coded}（{type_name(coded_type)}）"
            )
        if not coded_core and code.upper() in core_mains:
            reasons.append(
                f"其后的 {code} 是核心病种 {core_mains[code.upper()]} 的主要操作，而以现主要手术操作 {coded} "
                "未能入核心病种"
            )
        if reasons:
            flagged.append((type_rank(kind), position, code, reasons))
    if not flagged:
        return None
    flagged.sort()
    _, _, best, reasons = flagged[0]
    rest = tuple(p for p in before.case.procedures if p.upper() != best.upper())
    reordered = replace(before.case, procedures=(best, *rest))
    alt_result, alt_pricing = assessment.regroup(reordered)

    def choice(code: str, group_result: GroupResult, pricing, kind: str | None) -> ProcedureChoice:
        return ProcedureChoice(
            code=code,
            name=procedure_name(assessment, code),
            type_name=type_name(kind),
            group=group_view(group_result, pricing, before.estimate),
            ungrouped_reason=ungrouped_reason_of(group_result),
        )

    return ProcedureOrderCheck(
        coded=choice(coded, result, before.pricing, coded_type),
        alternative=choice(best, alt_result, alt_pricing, engine.optypes.classify(best)[0]),
        reasons=reasons,
        others=[f"{code} {procedure_name(assessment, code)}".strip() for _, _, code, _ in flagged[1:5]],
    )
