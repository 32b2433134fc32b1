"""The DIP grouping algorithm (DIP-RULES §2): exclusions → core → 基层 → comprehensive → chapter → 未入组.

Pure: inputs are already-normalised codes, the catalog index, the local policy and a procedure-type
classifier; the output is a :class:`GroupResult` with a trace. No I/O, no global state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from grouper.index import GroupIndex
from grouper.model import Group, GroupType, OpType
from grouper.policy import GroupingPolicy
from grouper.result import GroupResult, Trace

#: ``classify(code) -> (type_code, from_default_rule)``; type codes SS / JR / ZLXCZ / ZDXCZ.
Classifier = Callable[[str], tuple[str | None, bool]]

FLAG_OPTYPE_DEFAULT = "optype_default"
_TYPE_ALIASES = {"JR": OpType.SS}


def _canonical_type(optype: str | None) -> str:
    """A procedure type with its local alias resolved; none counts as 手术 (SS)."""
    return _TYPE_ALIASES.get(optype, optype) if optype else OpType.SS


def _tie_key(g: Group, principal: str, criteria: Sequence[str]) -> tuple:
    key: list = [-(len(g.slots))]
    for c in criteria:
        if c == "principal_procedure":
            key.append(0 if principal in g.slots[0] else 1)
        elif c == "higher_score":
            key.append(-g.score)
        elif c == "lower_score":
            key.append(g.score)
        elif c == "more_cases":
            key.append(-(g.case_count or 0))
        else:  # "code": deterministic last resort
            key.append(g.code)
    return tuple(key)


_TIE_REASONS = {
    "principal_procedure": "主要操作与病例首个手术操作一致",
    "higher_score": "分值较高",
    "lower_score": "分值较低",
    "more_cases": "例数较多",
    "code": "编码顺序",
}


def _deciding_rule(winner_key: tuple, runner_key: tuple, criteria: Sequence[str]) -> str:
    if winner_key[0] != runner_key[0]:
        return "most_related"
    for i, c in enumerate(criteria, start=1):
        if winner_key[i] != runner_key[i]:
            return c
    return "code"


def _result(g: Group, group_type: str, reason: str, trace: Trace, flags: tuple[str, ...]) -> GroupResult:
    return GroupResult(g.code, group_type, g.name, g.score, reason, trace, flags, g)


def _core_type(g: Group, policy: GroupingPolicy) -> str:
    if (
        g.primary_care
        or g.type == GroupType.PRIMARY
        or (policy.primary_care and g.code.upper() in policy.primary_care)
    ):
        return GroupType.PRIMARY
    return GroupType.CORE


def group_case(
    index: GroupIndex,
    policy: GroupingPolicy,
    classify: Classifier,
    diagnosis: str | None,
    yamu: str | None,
    leimu: str | None,
    chapter: int | None,
    procedures: Sequence[str] = (),
    notes: tuple[str, ...] = (),
) -> GroupResult:
    """Group one case given its normalised principal diagnosis and procedures (first = principal)."""
    ymk = yamu.upper() if yamu else None
    lmk = leimu.upper() if leimu else None

    ignored: list[str] = []
    effective: list[str] = []  # match keys (upper case)
    shown: list[str] = []  # the same codes as given, for the trace
    seen: set[str] = set()
    ignored_set = policy.ignored_procedures
    for p in procedures:
        if not p:
            continue
        k = p.upper()
        if k in seen:
            continue
        seen.add(k)
        if k in ignored_set:
            ignored.append(p)
        else:
            effective.append(k)
            shown.append(p)
    principal = effective[0] if effective else ""  # the principal procedure; used only when P is not empty
    P = frozenset(effective)
    if ignored and procedures and procedures[0] in ignored:
        moved = f"，主要操作按 {shown[0]}" if shown else "，按无手术操作处理"
        notes = (*notes, f"首个手术操作 {procedures[0]} 按本地规则不参与入组{moved}")

    def trace(rule: str, candidates=(), partial=(), optype=None, extra_notes=()) -> Trace:
        return Trace(
            diagnosis, yamu, leimu, chapter, tuple(shown), tuple(ignored), shown[0] if shown else None,
            optype, tuple(candidates), tuple(partial), rule, notes + tuple(extra_notes),
        )  # fmt: skip

    flags: tuple[str, ...] = ()

    if not diagnosis:
        return GroupResult(
            None, GroupType.UNGROUPED, "", None, "未入组：缺少主要诊断", trace("ungrouped.no_diagnosis")
        )
    hit = policy.excludes(diagnosis.upper(), ymk, lmk)
    if hit:
        return GroupResult(
            None, GroupType.UNGROUPED, "", None,
            f"未入组：{diagnosis} 不可作为主要诊断（本地规则 {hit}）", trace("ungrouped.excluded_principal"),
        )  # fmt: skip

    # --- core groups (核心 / 基层) -----------------------------------------------------------
    partial: list[str] = []  # kept sorted in the trace so it does not depend on procedure order
    if ymk is not None:
        if not P:
            g = index.conservative.get(ymk)
            if g is not None:
                gt = _core_type(g, policy)
                return _result(
                    g, gt, f"{gt}病种：主要诊断亚目 {yamu}，无手术操作，入保守治疗组",
                    trace("core.conservative", (g.code,)), flags,
                )  # fmt: skip
        else:
            matches: list[Group] = []
            by_main = index.core_by_main
            for p in effective:
                for g in by_main.get((ymk, p), ()):
                    slots = g.slots
                    if len(slots) == 1 or all(not P.isdisjoint(s) for s in slots[1:]):
                        # a group reached twice only when several alternatives of its main slot are present
                        if len(slots[0]) == 1 or not any(m is g for m in matches):
                            matches.append(g)
                    elif g.code not in partial:
                        partial.append(g.code)
            if matches:
                criteria = policy.tie_break
                if len(matches) == 1:
                    best, rule = matches[0], "single_match"
                else:
                    keyed = sorted(((_tie_key(g, principal, criteria), i) for i, g in enumerate(matches)))
                    best = matches[keyed[0][1]]
                    rule = _deciding_rule(keyed[0][0], keyed[1][0], criteria)
                    matches = [matches[i] for _, i in keyed]
                gt = _core_type(best, policy)
                if rule == "single_match":
                    why = "唯一匹配的核心病种"
                elif rule == "most_related":
                    why = f"匹配相关操作最多（{best.related_count} 项）"
                else:
                    why = f"匹配相关操作数相同（{best.related_count} 项），按本地规则取{_TIE_REASONS[rule]}者"
                return _result(
                    best, gt, f"{gt}病种：亚目 {yamu} + 操作 {best.code.partition(':')[2]}，{why}",
                    trace(f"core.{rule}", [g.code for g in matches], sorted(partial)), flags,
                )  # fmt: skip

    # --- procedure type for comprehensive / chapter groups -----------------------------------
    if not P:
        optype = OpType.BSZL
        defaulted = False
    elif policy.type_selection == "highest":
        best_rank, optype, defaulted = len(policy.type_rank), OpType.SS, False
        for p in effective:
            t, d = classify(p)
            t = _canonical_type(t)
            rank = policy.type_rank.index(t) if t in policy.type_rank else len(policy.type_rank)
            if rank < best_rank:
                best_rank, optype, defaulted = rank, t, d
    else:
        t, defaulted = classify(principal)
        optype = _canonical_type(t)
    if defaulted:
        flags = (FLAG_OPTYPE_DEFAULT,)
    type_note = f"{OpType.NAMES.get(optype, optype)}（{optype}{'，按默认规则判定' if defaulted else ''}）"

    if P and ymk is not None and policy.conservative_types and optype in policy.conservative_types:
        g = index.conservative.get(ymk)
        if g is not None:
            gt = _core_type(g, policy)
            return _result(
                g, gt, f"{gt}病种：亚目 {yamu}，仅有{type_note}，按本地规则入保守治疗组",
                trace("core.conservative_by_type", (g.code,), sorted(partial), optype), flags,
            )  # fmt: skip

    missed = "无匹配的核心病种" if ymk and index.core_count.get(ymk) else f"亚目 {yamu} 无核心病种"
    if lmk is not None:
        g = index.comprehensive_for(lmk, optype)
        if g is not None:
            return _result(
                g, GroupType.COMPREHENSIVE, f"综合病种：{missed}，类目 {leimu} × {type_note}",
                trace("comprehensive", (g.code,), sorted(partial), optype), flags,
            )  # fmt: skip

    if policy.chapter_fallback and chapter is not None:
        g = index.chapter.get((chapter, optype))
        if g is not None:
            return _result(
                g, GroupType.CHAPTER,
                f"章节兜底病种：{missed}，类目 {leimu} 无 {optype} 综合病种，按第 {chapter} 章 × {type_note}",
                trace("chapter", (g.code,), sorted(partial), optype), flags,
            )  # fmt: skip

    return GroupResult(
        None, GroupType.UNGROUPED, "", None,
        f"未入组：{missed}，类目 {leimu} 无 {optype} 综合病种，且无第 {chapter} 章兜底病种",
        trace("ungrouped.no_group", (), sorted(partial), optype), flags,
    )  # fmt: skip
