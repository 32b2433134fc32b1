"""The DIP grouping algorithm (DIP-RULES §2): exclusions → core → 基层 → comprehensive → chapter → 未入组.

Pure: inputs are already-normalised codes, the catalog index, the local policy and a procedure-type
classifier; the output is a :class:`GroupResult` with a trace. No I/O, no global state.

The core-group rule is the national one (DIP 3.0 技术规范 第三章 当年病例入组): **主要诊断 + 主要操作
first**. The case's principal procedure is the first listed one that counts for grouping; only core
groups of the case's 亚目 whose 主操作 is that procedure and whose related procedures are all present
are candidates. Among them: the full match (the group names every procedure of the case), then the
group matching the most related procedures, then the 诊断+主操作 group; what is still equal is
decided by the local tie-break (default: higher score, then code). Grouping never re-orders the
coder's procedures: a case whose principal procedure is no candidate's 主操作 goes to the
comprehensive group of that procedure's type.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from grouper.index import GroupIndex
from grouper.model import Group, GroupType, OpType
from grouper.policy import GroupingPolicy
from grouper.result import GroupResult, QcFlag, Trace

#: ``classify(code) -> (type_code, from_default_rule)``; type codes SS / JR / ZLXCZ / ZDXCZ.
Classifier = Callable[[str], tuple[str | None, bool]]

FLAG_OPTYPE_DEFAULT = "optype_default"
_TYPE_ALIASES = {"JR": OpType.SS}


def _canonical_type(optype: str | None) -> str:
    """A procedure type with its local alias resolved; none counts as 手术 (SS)."""
    return _TYPE_ALIASES.get(optype, optype) if optype else OpType.SS


_TIE_REASONS = {
    "higher_score": "分值较高",
    "lower_score": "分值较低",
    "more_cases": "例数较多",
    "code": "编码顺序",
}


def _rank_key(g: Group, others: frozenset[str], criteria: Sequence[str]) -> tuple:
    """Sort key of a candidate: full match, then more related procedures, then the local criteria."""
    covered = others.issubset(frozenset().union(*g.slots)) if others else True
    key: list = [0 if covered else 1, -len(g.slots)]
    for c in criteria:
        if c == "higher_score":
            key.append(-g.score)
        elif c == "lower_score":
            key.append(g.score)
        elif c == "more_cases":
            key.append(-(g.case_count or 0))
        else:  # "code": deterministic last resort
            key.append(g.code)
    return tuple(key)


def _deciding_rule(winner: tuple, runner_up: tuple, criteria: Sequence[str]) -> str:
    if winner[0] != runner_up[0]:
        return "full_match"
    if winner[1] != runner_up[1]:
        return "most_related"
    for i, c in enumerate(criteria, start=2):
        if winner[i] != runner_up[i]:
            return c
    return "code"


def _why(rule: str, best: Group) -> str:
    n = len(best.slots) - 1  # related procedures
    if rule == "single_match":
        return "唯一符合的核心病种" if n else "唯一符合的核心病种（诊断+主要操作）"
    if rule == "full_match":
        return f"病例手术操作与病种完全一致（主要操作 + {n} 项相关操作）"
    if rule == "most_related":
        return f"匹配相关操作最多（{n} 项）" if n else "诊断+主要操作"
    return f"匹配相关操作数相同（{n} 项），按本地规则取{_TIE_REASONS.get(rule, rule)}者"


def _core_type(g: Group, policy: GroupingPolicy) -> str:
    if (
        g.primary_care
        or g.type == GroupType.PRIMARY
        or (policy.primary_care and g.code.upper() in policy.primary_care)
    ):
        return GroupType.PRIMARY
    return GroupType.CORE


def _complete(g: Group, others: frozenset[str]) -> bool:
    """Every related slot of ``g`` is matched by one of the case's other procedures."""
    slots = g.slots
    return len(slots) == 1 or all(not others.isdisjoint(s) for s in slots[1:])


def _result(
    g: Group, group_type: str, reason: str, trace: Trace, flags: tuple[str, ...], qc: tuple[QcFlag, ...]
) -> GroupResult:
    return GroupResult(g.code, group_type, g.name, g.score, reason, trace, flags, g, qc)


def _ungrouped(reason: str, trace: Trace, flags: tuple[str, ...], qc: tuple[QcFlag, ...]) -> GroupResult:
    return GroupResult(None, GroupType.UNGROUPED, "", None, reason, trace, flags, None, qc)


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
    flags: tuple[str, ...] = (),
    qc: tuple[QcFlag, ...] = (),
    screened: bool = False,
) -> GroupResult:
    """Group one case given its normalised principal diagnosis and procedures (first = principal).

    ``flags`` / ``qc``: what the caller already found about the case's codes, carried into the result;
    ``screened``: the caller already applied the policy's principal-diagnosis exclusions.
    """
    ymk = yamu.upper() if yamu else None
    lmk = leimu.upper() if leimu else None

    ignored: list[str] = []
    effective: list[str] = []  # match keys (upper case), in the coder's order
    shown: list[str] = []  # the same codes as given, for the trace
    seen: set[str] = set()
    ignored_set = policy.ignored_procedures
    simple = policy.simple_operations
    skipped_first: str | None = None
    for p in procedures:
        if not p:
            continue
        k = p.upper()
        if k in seen:
            continue
        seen.add(k)
        why = None
        if k in ignored_set:
            why = "按本地规则不参与入组"
        elif k in simple and (ymk, k) not in index.named:
            why = f"为简单操作（{simple[k]}），不参与入组" if simple[k] else "为简单操作，不参与入组"
        if why is not None:
            ignored.append(p)
            if not effective and skipped_first is None:
                skipped_first = f"首个手术操作 {p} {why}"
        else:
            effective.append(k)
            shown.append(p)
    principal = effective[0] if effective else None
    if skipped_first is not None:
        moved = f"，主要操作按 {shown[0]}" if shown else "，按无手术操作处理"
        notes = (*notes, skipped_first + moved)

    def trace(rule: str, candidates=(), partial=(), optype=None, later=()) -> Trace:
        return Trace(
            diagnosis, yamu, leimu, chapter, tuple(shown), tuple(ignored), shown[0] if shown else None,
            optype, tuple(candidates), tuple(partial), rule, notes, tuple(later),
        )  # fmt: skip

    if not diagnosis:
        return _ungrouped("未入组：缺少主要诊断", trace("ungrouped.no_diagnosis"), flags, qc)
    hit = None if screened else policy.exclusion(diagnosis.upper(), ymk, lmk)
    if hit:
        entry, rule = hit
        return _ungrouped(
            f"未入组：{diagnosis} 不可作为主要诊断（{rule or '本地规则'} {entry}）",
            trace("ungrouped.excluded_principal"), flags, qc,
        )  # fmt: skip

    # --- core groups (核心 / 基层): 主要诊断 + 主要操作 first ---------------------------------------
    partial: list[str] = []
    later: list[str] = []
    if ymk is not None:
        if principal is None:
            g = index.conservative.get(ymk)
            if g is not None:
                gt = _core_type(g, policy)
                return _result(
                    g, gt, f"{gt}病种：主要诊断亚目 {yamu}，无参与入组的手术操作，入保守治疗组",
                    trace("core.conservative", (g.code,)), flags, qc,
                )  # fmt: skip
        else:
            by_main = index.core_by_main
            others = frozenset(effective[1:])
            candidates: list[Group] = []
            for g in by_main.get((ymk, principal), ()):
                slots = g.slots
                if len(slots) == 1 or all(not others.isdisjoint(s) for s in slots[1:]):
                    candidates.append(g)
                else:
                    partial.append(g.code)
            if len(partial) > 1:
                partial.sort()
            for p in effective[1:]:  # what a later-listed procedure would reach as principal
                groups = by_main.get((ymk, p))
                if groups:
                    rest = frozenset(effective) - {p}
                    later.extend(g.code for g in groups if _complete(g, rest))
            if later:
                later = sorted(set(later) - {g.code for g in candidates})
            if candidates:
                criteria = policy.tie_break
                if len(candidates) == 1:
                    best, rule = candidates[0], "single_match"
                else:
                    keyed = sorted((_rank_key(g, others, criteria), i) for i, g in enumerate(candidates))
                    best = candidates[keyed[0][1]]
                    rule = _deciding_rule(keyed[0][0], keyed[1][0], criteria)
                    candidates = [candidates[i] for _, i in keyed]
                gt = _core_type(best, policy)
                return _result(
                    best, gt,
                    f"{gt}病种：亚目 {yamu}，主要操作 {shown[0]}，{_why(rule, best)}",
                    trace(f"core.{rule}", [g.code for g in candidates], partial, later=later), flags, qc,
                )  # fmt: skip

    # --- procedure type for comprehensive / chapter groups -----------------------------------
    if principal is None:
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
        flags = (*flags, FLAG_OPTYPE_DEFAULT)
    type_note = f"{OpType.NAMES.get(optype, optype)}（{optype}{'，按默认规则判定' if defaulted else ''}）"

    if principal is not None and ymk is not None and optype in policy.conservative_types:
        g = index.conservative.get(ymk)
        if g is not None:
            gt = _core_type(g, policy)
            return _result(
                g, gt, f"{gt}病种：亚目 {yamu}，仅有{type_note}，按本地规则入保守治疗组",
                trace("core.conservative_by_type", (g.code,), partial, optype, later), flags, qc,
            )  # fmt: skip

    if ymk is None or not index.core_count.get(ymk):
        missed = f"亚目 {yamu} 无核心病种"
    elif principal is None:
        missed = f"亚目 {yamu} 无保守治疗核心病种"
    elif partial:
        missed = f"亚目 {yamu} 以 {shown[0]} 为主要操作的核心病种缺少相关操作"
    else:
        missed = f"主要操作 {shown[0]} 不是亚目 {yamu} 任何核心病种的主要操作"
    if lmk is not None:
        g = index.comprehensive_for(lmk, optype)
        if g is not None:
            return _result(
                g, GroupType.COMPREHENSIVE, f"综合病种：{missed}，类目 {leimu} × {type_note}",
                trace("comprehensive", (g.code,), partial, optype, later), flags, qc,
            )  # fmt: skip

    if policy.chapter_fallback and chapter is not None:
        g = index.chapter.get((chapter, optype))
        if g is not None:
            return _result(
                g, GroupType.CHAPTER,
                f"章节兜底病种：{missed}，类目 {leimu} 无 {optype} 综合病种，按第 {chapter} 章 × {type_note}",
                trace("chapter", (g.code,), partial, optype, later), flags, qc,
            )  # fmt: skip

    return _ungrouped(
        f"未入组：{missed}，类目 {leimu} 无 {optype} 综合病种，且无第 {chapter} 章兜底病种",
        trace("ungrouped.no_group", (), partial, optype, later), flags, qc,
    )  # fmt: skip
