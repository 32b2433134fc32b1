"""A hospital's own rules (and the packaged sample rule set) in TOML.

```toml
[ruleset]
name = "本院补充规则"        # the versioned unit (default: the file name)
batch = "本院"              # shown as the batch on findings (default: the name)
note = "医保办 2026-11 制定"

[[rule]]
id = "H-FREQ-0001"          # unique; stable (feedback and statistics use it)
batch = "本院"               # optional: overrides [ruleset] batch for this rule
kind = "frequency"          # a kind key or its Chinese label (限定频次)
codes = ["001102000050000"] # national codes (医保药品代码 / 15 位医疗服务项目代码)
item_name = "住院诊查费"
text = "住院诊查费每日限收 1 次"   # the rule in words (shown on every finding)
severity = "违规"            # optional: 违规 / 可疑 (default per kind)
params = { limit = 1, unit = "日" }
```

``params`` per kind are listed in README ("医保智能审核 / 规则语义"); a kind that the workbooks
state as a 限定值 (sex, age group, insurance, care setting, level, drug course, operation group)
may give ``target = "女"`` instead, read exactly as the workbook column. 重复收费 gives the 主项 in
``codes``, the 从项 in ``codes2`` and ``params = { frequency = "单日" }``. Bad rules are rejected
one by one with the reason; a file that is not valid TOML or has no valid rule is rejected whole.
"""

from __future__ import annotations

import tomllib
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from yb_audit import kinds
from yb_audit.codes import normalize_code, subject_of_code
from yb_audit.model import DRUG, ITEM, SUBJECTS, Rule
from yb_audit.textrules import course_checks, duplicate_window
from yb_audit.workbooks import LayoutError, ParsedRuleSet, Reject, _target_params, _text_params, split_name

_RULE_KEYS = {
    "id",
    "batch",
    "kind",
    "codes",
    "codes2",
    "item_name",
    "item_name2",
    "name",
    "text",
    "severity",
    "params",
    "target",
    "subject",
}


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() and number >= 0 else None


def _params(
    kind: str, raw: dict[str, Any], target: str | None, text: str
) -> tuple[dict[str, Any] | None, str | None]:
    """Validated parameters of a rule of ``kind`` (see README)."""
    if target is not None:
        return _target_params(kind, str(target), text)
    if kind in (kinds.AGE.key, kinds.COURSE.key) and raw.get("manual") is True:
        return {"manual": True}, None
    if kind == kinds.FREQUENCY.key:
        limit, unit = _positive_int(raw.get("limit")), raw.get("unit", "日")
        if limit is None or unit not in ("日", "天", "小时"):
            return None, "params 需要 limit（正整数）和 unit（日 / 小时）"
        return {"limit": limit, "unit": "小时" if unit == "小时" else "日"}, None
    if kind == kinds.CYCLE.key:
        limit, days = _positive_int(raw.get("limit")), _positive_int(raw.get("days"))
        if limit is None or days is None:
            return None, "params 需要 limit 和 days（正整数）"
        return {"limit": limit, "days": days}, None
    if kind == kinds.DUPLICATE.key:
        window = duplicate_window(str(raw.get("frequency", "")))
        if window is None:
            return None, "params.frequency（频度）应为 单日 / 同一小时 / N小时 / 单次就诊"
        return {"window": window[0], "hours": window[1], "frequency": raw["frequency"]}, None
    if kind == kinds.AGE.key:
        if not raw:
            return _text_params(kind, text), None
        low, high = _decimal(raw.get("min_age")), _decimal(raw.get("max_age"))
        if low is None and high is None:
            return None, "params 需要 min_age 或 max_age（岁）"
        return {
            "min_age": None if low is None else str(low),
            "max_age": None if high is None else str(high),
            "max_inclusive": bool(raw.get("max_inclusive", True)),
        }, None
    if kind == kinds.COURSE.key:
        if not raw:
            return _text_params(kind, text), None
        checks = course_checks(text) if raw.get("from_text") else raw.get("checks")
        if not isinstance(checks, list) or not checks:
            return None, "params.checks 应为限定疗程的检查列表（见 README）"
        for check in checks:
            if not isinstance(check, dict) or check.get("check") not in ("paid_days", "span_days", "cycle"):
                return None, f"无效的疗程检查 {check!r}"
            if _positive_int(check.get("days")) is None or (
                check["check"] == "cycle" and _positive_int(check.get("limit")) is None
            ):
                return None, f"疗程检查 {check!r} 需要正整数 days（cycle 还需 limit）"
        return {"checks": [dict(c) for c in checks]}, None
    if kind == kinds.MAIN_SECONDARY.key and raw.get("group"):
        return {"group": str(raw["group"])}, None
    for key in ("sex", "group", "insurance", "settings", "min_level", "max_days"):
        if key in raw:
            value = raw[key]
            as_target = {"min_level": f"{value}级", "max_days": f"{value}天"}.get(key)
            if key == "settings" and isinstance(value, list):
                as_target = "、".join(map(str, value))
            return _target_params(kind, as_target or str(value), text)
    return None, f"缺少 {kinds.KINDS[kind].label} 的参数（params 或 target）"


def parse_local_rules(text: str, stem: str, source: str) -> ParsedRuleSet:
    """Rules of a hospital TOML file. Raises :class:`LayoutError` when nothing usable is in it."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LayoutError(f"不是有效的 TOML：{exc}") from None
    head = data.get("ruleset", {})
    if not isinstance(head, dict):
        raise LayoutError("[ruleset] 应为表")
    name, batch, title = split_name(str(head.get("name") or stem))
    parsed = ParsedRuleSet(name, str(head.get("batch") or batch), title, "toml")
    if head.get("note"):
        parsed.notes.append(str(head["note"]))
    rules = data.get("rule", [])
    if not isinstance(rules, list) or not rules:
        raise LayoutError("文件中没有 [[rule]]")
    seen: set[str] = set()
    for index, raw in enumerate(rules, start=1):
        where = f"rule[{index}]"
        parsed.rows += 1
        problem, rule = _rule(raw, parsed, source, where)
        if rule is not None and rule.rule_id in seen:
            problem, rule = f"规则编号 {rule.rule_id} 重复", None
        if rule is None:
            label = raw.get("id") if isinstance(raw, dict) and raw.get("id") else "无 id"
            parsed.rejects.append(Reject(f"第 {index} 条规则（{label}）", 0, problem or "无效规则"))
            continue
        seen.add(rule.rule_id)
        parsed.rules.append(rule)
    if not parsed.rules:
        raise LayoutError("没有任何有效规则：" + "；".join(str(r) for r in parsed.rejects[:5]))
    return parsed


def _rule(raw: Any, parsed: ParsedRuleSet, source: str, where: str) -> tuple[str | None, Rule | None]:
    if not isinstance(raw, dict):
        return "应为表", None
    unknown = set(raw) - _RULE_KEYS
    if unknown:
        return f"未知的键 {sorted(unknown)}", None
    rule_id, kind = str(raw.get("id") or "").strip(), kinds.kind_of(str(raw.get("kind") or ""))
    if not rule_id:
        return "缺少 id", None
    if kind is None:
        return f"规则类型「{raw.get('kind')}」不支持（可用：{'、'.join(kinds.KINDS)}）", None
    codes = [normalize_code(c) for c in raw.get("codes") or [] if str(c).strip()]
    codes2 = [normalize_code(c) for c in raw.get("codes2") or [] if str(c).strip()]
    subject = raw.get("subject") or (subject_of_code(codes[0]) if codes else None)
    if not codes or subject not in SUBJECTS:
        return "codes 应列出至少一个国家编码", None
    bad = [c for c in (*codes, *codes2) if subject_of_code(c) != subject]
    if bad:
        expected = "医保药品代码" if subject == DRUG else "15 位医疗服务项目代码"
        return f"编码 {'、'.join(bad[:5])} 不是{expected}", None
    if kind == kinds.DUPLICATE.key and (not codes2 or subject != ITEM):
        return "重复收费需要项目编码 codes（主项）与 codes2（从项）", None
    text = str(raw.get("text") or "").strip()
    if not text:
        return "缺少 text（规则说明，显示在每条提示上）", None
    params_raw = raw.get("params") or {}
    if not isinstance(params_raw, dict):
        return "params 应为表", None
    params, problem = _params(kind, params_raw, raw.get("target"), text)
    if params is None:
        return problem, None
    severity = raw.get("severity") or (
        kinds.SUSPICIOUS if params.get("manual") else kinds.KINDS[kind].severity
    )
    if severity not in kinds.SEVERITIES:
        return f"严重程度「{severity}」无效（违规 / 可疑）", None
    item_name = str(raw.get("item_name") or "")
    name = str(raw.get("name") or f"{kinds.KINDS[kind].label}：{item_name or codes[0]}")
    return None, Rule(
        rule_id=rule_id,
        kind=kind,
        batch=str(raw.get("batch") or parsed.batch),
        ruleset=parsed.name,
        name=name[:200],
        subject=subject,
        codes=tuple(dict.fromkeys(codes)),
        params=params,
        text=text,
        severity=severity,
        codes2=tuple(dict.fromkeys(codes2)),
        source=f"{source} {where}",
        item_name=item_name,
        item_name2=str(raw.get("item_name2") or ""),
    )


def read_local_rules(path: Path) -> ParsedRuleSet:
    from cds_service.tables import decode_table_text

    raw = path.read_bytes()
    text = decode_table_text(raw)
    if text is None:
        raise LayoutError("无法识别文件编码（既不是 UTF-8 也不是 GB18030）")
    return parse_local_rules(text, path.stem, path.name)
