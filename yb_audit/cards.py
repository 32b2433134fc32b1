"""Findings → CDS Hooks cards (Chinese, every value escaped).

One card per finding, or — when there are more than ``[audit] group_cards_above`` — one grouped card
per severity. ``warning`` for 违规, ``info`` for 可疑. A finding on a draft order offers two
suggestions: delete the order, or keep it as 自费 (the order updated with the extension
:data:`~yb_audit.codes.SELF_PAY_EXTENSION`: ``selfPay`` = true, ``ruleId``, ``reason``). Override
reasons: 临床必需，已告知患者自费 / 规则不适用本例 / 数据有误. Notes (orders without a national code,
facts missing) go on the last card, or on an info card of their own when nothing was found.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from decimal import Decimal
from functools import lru_cache
from typing import Any

from cards import (
    card,
    coding,
    delete_action,
    escape_markdown,
    format_money,
    override_reason,
    source,
    suggestion,
    update_action,
)
from yb_audit import kinds
from yb_audit.codes import SELF_PAY_EXTENSION
from yb_audit.model import Finding

INDICATOR = {kinds.VIOLATION: "warning", kinds.SUSPICIOUS: "info"}
TOPIC_SYSTEM = "http://dip-cds.example.cn/CodeSystem/yb-audit-rule-kind"
OVERRIDE_REASONS = (
    ("self-pay-informed", "临床必需，已告知患者自费"),
    ("rule-not-applicable", "规则不适用本例"),
    ("data-wrong", "数据有误"),
)
MAX_GROUPED_SUGGESTIONS = 10


def _overrides() -> list[dict[str, str]]:
    return [override_reason(code, display) for code, display in OVERRIDE_REASONS]


def _money(amount: Decimal | None) -> str:
    return format_money(amount) if amount is not None else "金额未知（价目表中没有该项目）"


def self_pay_order(order: Mapping[str, Any], finding: Finding) -> dict[str, Any]:
    """A copy of the draft order marked 自费 for ``finding``'s rule (the input is not changed)."""
    updated = copy.deepcopy(dict(order))
    present = updated.get("extension")
    extensions = [
        e
        for e in (present if isinstance(present, list) else [])
        if not (isinstance(e, dict) and e.get("url") == SELF_PAY_EXTENSION)
    ]
    extensions.append(
        {
            "url": SELF_PAY_EXTENSION,
            "extension": [
                {"url": "selfPay", "valueBoolean": True},
                {"url": "ruleId", "valueString": finding.rule_id},
                {
                    "url": "reason",
                    "valueString": f"{kinds.KINDS[finding.kind].label}：{finding.message}"[:500],
                },
            ],
        }
    )
    updated["extension"] = extensions
    return updated


def _draft_of(finding: Finding, drafts: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The draft order a finding is about: its own line, else the draft that triggered it."""
    if finding.line_ref in drafts:
        return finding.line_ref
    return next((r for r in finding.related if r in drafts), None)


def _suggestions(finding: Finding, drafts: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    target = _draft_of(finding, drafts)
    if target is None:
        return []
    name = finding.item_name or target
    out = [suggestion(f"删除医嘱：{name}", [delete_action(f"删除医嘱 {name}", target)])]
    if target == finding.line_ref and drafts[target].get("id"):
        out.append(
            suggestion(
                f"保留医嘱，改为自费：{name}",
                [
                    update_action(
                        f"将医嘱 {name} 标记为自费（医保不予支付）", self_pay_order(drafts[target], finding)
                    )
                ],
            )
        )
    return out


@lru_cache(maxsize=8192)
def _rule_text(text: str) -> str:
    """escape_markdown of a rule's own words (names, ids, bureau text), remembered: they repeat."""
    return escape_markdown(text)


def _finding_text(finding: Finding) -> list[str]:
    lines = [
        f"**{_rule_text(finding.rule_name)}**（{_rule_text(finding.batch)}，规则编号 {_rule_text(finding.rule_id)}）",
        "",
        str(escape_markdown(finding.message)),
        "",
        f"> 规则原文：{_rule_text(finding.rule_text)}",
        "",
    ]
    lines += [f"- 依据：{escape_markdown(e)}" for e in finding.evidence]
    lines.append(f"- 涉及金额：{escape_markdown(_money(finding.amount_at_risk))}（医保不予支付的部分）")
    return lines


def _notes_text(notes: Sequence[str]) -> list[str]:
    if not notes:
        return []
    return ["", "**其他说明**", ""] + [f"- {escape_markdown(n)}" for n in notes]


def build_cards(
    findings: Sequence[Finding],
    notes: Sequence[str],
    drafts: Mapping[str, Mapping[str, Any]],
    source_label: str,
    group_above: int,
) -> list[dict[str, Any]]:
    """The cards of one call (see module docstring)."""
    if not findings:
        if not notes:
            return []
        return [
            card(
                f"医保智能审核：未发现违规，{len(notes)} 项未能审核",
                "info",
                source(source_label),
                detail="\n".join(
                    ["以下内容未能审核，请人工核对：", ""] + [f"- {escape_markdown(n)}" for n in notes]
                ),
            )
        ]
    cards: list[dict[str, Any]] = []
    if len(findings) <= group_above:
        for finding in findings:
            kind = kinds.KINDS[finding.kind]
            amount = (
                f"，{format_money(finding.amount_at_risk)} 不予支付"
                if finding.amount_at_risk is not None
                else ""
            )
            cards.append(
                card(
                    f"医保{finding.severity}：{finding.item_name}（{kind.label}）{amount}",
                    INDICATOR[finding.severity],
                    source(source_label, topic=coding(kind.key, kind.label, TOPIC_SYSTEM)),
                    detail="\n".join(_finding_text(finding)),
                    suggestions=_suggestions(finding, drafts),
                    override_reasons=_overrides(),
                )
            )
    else:
        for severity in kinds.SEVERITIES:
            group = [f for f in findings if f.severity == severity]
            if not group:
                continue
            total = sum((f.amount_at_risk for f in group if f.amount_at_risk is not None), Decimal(0))
            rows = ["| 医嘱 | 规则 | 问题 | 涉及金额 |", "| --- | --- | --- | --- |"]
            rows += [
                f"| {escape_markdown(f.item_name)} | {_rule_text(f.rule_name)}（{_rule_text(f.rule_id)}） "
                f"| {escape_markdown(f.message)} | {escape_markdown(_money(f.amount_at_risk))} |"
                for f in group
            ]
            texts = sorted({f"{_rule_text(f.rule_id)}：{_rule_text(f.rule_text)}" for f in group})
            detail = rows + ["", "**规则原文**", ""] + [f"- {t}" for t in texts]
            seen: set[str] = set()
            actions: list[dict[str, Any]] = []
            for finding in group:
                target = _draft_of(finding, drafts)
                if target is not None and target not in seen and len(actions) < MAX_GROUPED_SUGGESTIONS:
                    seen.add(target)
                    name = finding.item_name or target
                    actions.append(
                        suggestion(f"删除医嘱：{name}", [delete_action(f"删除医嘱 {name}", target)])
                    )
            cards.append(
                card(
                    f"医保审核：{len(group)} 条{severity}，涉及 {format_money(total)}",
                    INDICATOR[severity],
                    source(source_label),
                    detail="\n".join(detail),
                    suggestions=actions,
                    selection_behavior="any" if actions else None,
                    override_reasons=_overrides(),
                )
            )
    if notes:
        last = cards[-1]
        last["detail"] = (last.get("detail", "") + "\n" + "\n".join(_notes_text(notes))).strip()
    return cards
