"""The evaluator: one case (a patient, the stay, its lines) against the rules → findings.

Pure and deterministic: the same case gives the same findings in the same order. Used by the CDS
Hooks services (事前), the national 3101/3102 interface and, on one case at a time, by the tests that
hold the batch SQL (:mod:`yb_audit.batch.sql`, 事后) to the same answers. README ("规则语义") states
each kind's semantics; the code below is their single Python statement.

Order of lines: by day; within a day existing lines before drafts (a draft is what would be added),
then by time, then input order (``seq``).
``drafts_only`` (hooks, 3101) keeps the findings that involve a draft order — as the violating line
or as the line that makes another one violate (a draft 主项 makes a charged 从项 a 重复收费).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from yb_audit import kinds
from yb_audit.model import AuditResult, Case, Finding, Line, Rule, RuleSet, Stay
from yb_audit.settings import AuditSettings

_CENT = Decimal("0.01")
LEVEL_NAMES = {1: "一级", 2: "二级", 3: "三级"}
MAX_RELATED = 20


def cents(value: Decimal) -> Decimal:
    return value.quantize(_CENT, rounding=ROUND_HALF_UP)


def _order_key(line: Line) -> tuple:
    return (line.day, line.draft, line.at, line.seq)


def _share(line: Line, part: Decimal, whole: Decimal, by_quantity: bool) -> Decimal | None:
    """The amount of ``part`` of the line's ``whole`` (its quantity, or its days): the unit price
    times the part when it is a quantity and the price is known, else the pro-rata amount."""
    if part >= whole:
        return cents(line.amount) if line.amount is not None else None
    if by_quantity and line.unit_price is not None:
        return cents(line.unit_price * part)
    if line.amount is not None and whole:
        return cents(line.amount * part / whole)
    return None


def age_on(birth: date, on: date) -> tuple[int, int]:
    """(completed years, days since birth) on ``on``."""
    years = on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
    return years, (on - birth).days


def age_text(birth: date, on: date) -> str:
    years, days = age_on(birth, on)
    if years >= 1:
        return f"{years} 岁"
    return f"出生 {days} 天" if days < 60 else f"{days // 30} 个月"


def age_limit(params: dict, s: AuditSettings) -> tuple[str, Callable[[int, int], bool]]:
    """(description, allowed(years, days)) of an age group (儿童 / 婴幼儿 / 婴儿 / 新生儿, limits from
    the settings) or of the bounds a rule states."""
    group = params.get("group")
    if params.get("min_age") is None and params.get("max_age") is None:
        if group == "新生儿":
            return f"新生儿（出生后未满 {s.newborn_age_days} 天）", lambda y, d: d < s.newborn_age_days
        if group == "婴儿":
            return f"婴儿（未满 {s.baby_age_limit} 周岁）", lambda y, d: y < s.baby_age_limit
        if group == "婴幼儿":
            return f"婴幼儿（未满 {s.infant_age_limit} 周岁）", lambda y, d: y < s.infant_age_limit
        return f"儿童（未满 {s.child_age_limit} 周岁）", lambda y, d: y < s.child_age_limit
    low = Decimal(params["min_age"]) if params.get("min_age") is not None else None
    high = Decimal(params["max_age"]) if params.get("max_age") is not None else None
    inclusive = params.get("max_inclusive", True)
    parts = []
    if low is not None:
        parts.append(f"{low} 周岁及以上")
    if high is not None:
        parts.append(f"{high} 周岁及以下" if inclusive else f"未满 {high} 周岁")
    return "、".join(
        parts
    ), lambda y, d: (low is None or y >= low) and (high is None or (y <= high if inclusive else y < high))


class _Run:
    """One evaluation: the case, the settings, and the findings and notes collected."""

    def __init__(
        self, rules: RuleSet, case: Case, settings: AuditSettings, drafts_only: bool = False
    ) -> None:
        self.rules = rules
        self.case = case
        self.settings = settings
        self.drafts_only = drafts_only
        self.findings: list[Finding] = []
        self.unchecked: dict[str, set[str]] = defaultdict(set)  # reason → line refs

    def finding(
        self,
        rule: Rule,
        line: Line,
        amount: Decimal | None,
        message: str,
        evidence: Iterable[str] = (),
        related: Iterable[Line] = (),
        severity: str | None = None,
        check: str = "",
    ) -> None:
        related = list(related)
        draft = line.draft or any(r.draft for r in related)
        if self.drafts_only and not draft:
            return  # not asked for: do not build it
        refs = dict.fromkeys(r.ref for r in related[: 2 * MAX_RELATED] if r.ref != line.ref)
        self.findings.append(
            Finding(
                rule_id=rule.rule_id,
                kind=rule.kind,
                batch=rule.batch,
                rule_name=rule.name,
                severity=severity or rule.severity,
                line_ref=line.ref,
                item_code=line.code or "",
                item_name=line.name or rule.item_name,
                amount_at_risk=amount,
                message=message,
                rule_text=rule.text,
                evidence=tuple(evidence),
                related=tuple(refs)[:MAX_RELATED],
                stay_id=line.stay_id,
                check=check,
                draft=draft,
            )
        )

    # -- facts of the patient and the stay ---------------------------------------------------

    def fact_rule(self, rule: Rule, line: Line) -> None:
        stay = self.case.stay_of(line)
        check = _FACT_CHECKS[rule.kind]
        outcome = check(self, rule, line, stay)
        if outcome is None:
            return
        if isinstance(outcome, str):  # the fact is unknown
            self.unchecked[f"未检查「{kinds.KINDS[rule.kind].label}」：{outcome}"].add(line.ref)
            return
        message, evidence = outcome
        self.finding(rule, line, cents(line.amount) if line.amount is not None else None, message, evidence)

    def _sex(self, rule: Rule, line: Line, stay: Stay):
        sex = self.case.patient.sex
        if sex is None:
            return "缺少患者性别"
        wanted = rule.params["sex"]
        if sex == wanted:
            return None
        return f"{line.name or rule.item_name}限{wanted}性使用，患者为{sex}性", [f"患者性别：{sex}"]

    def _age(self, rule: Rule, line: Line, stay: Stay):
        birth = self.case.patient.birth_date
        if rule.manual:
            evidence = [f"患者年龄：{age_text(birth, line.day)}"] if birth else []
            return f"需人工核对：{rule.text}", evidence
        if birth is None or birth > line.day:
            return "缺少患者出生日期"
        years, days = age_on(birth, line.day)
        label, allowed = age_limit(dict(rule.params), self.settings)
        if allowed(years, days):
            return None
        now = age_text(birth, line.day)
        return f"{line.name or rule.item_name}限{label}使用，患者 {now}", [f"患者年龄：{now}"]

    def _insurance(self, rule: Rule, line: Line, stay: Stay):
        insurance = stay.insurance
        if insurance is None:
            return "缺少参保类型"
        wanted = rule.params["insurance"]
        if insurance == wanted:
            return None
        note = "（未提供参保信息，按默认设置）" if stay.insurance_assumed else ""
        return (
            f"{line.name or rule.item_name}仅限{wanted}保险支付，本次就诊参保类型为{insurance}{note}",
            [f"参保类型：{insurance}{note}"],
        )

    def _care_setting(self, rule: Rule, line: Line, stay: Stay):
        setting = stay.encounter_type
        if setting is None:
            return "缺少就诊类型（住院 / 门诊）"
        allowed = rule.params["settings"]
        if setting in allowed:
            return None
        return (
            f"{line.name or rule.item_name}限{'或'.join(allowed)}患者使用，本次就诊为{setting}",
            [f"就医方式：{setting}"],
        )

    def _hospital_level(self, rule: Rule, line: Line, stay: Stay):
        level = stay.hospital_level
        if level is None:
            return "未配置本院等级（[audit] hospital_level）"
        wanted = rule.params["min_level"]
        if level >= wanted:
            return None
        return (
            f"{line.name or rule.item_name}限{LEVEL_NAMES[wanted]}及以上医疗机构使用，本院为{LEVEL_NAMES[level]}",
            [f"医疗机构等级：{LEVEL_NAMES[level]}"],
        )

    # -- counts over the lines --------------------------------------------------------------

    def paid_days(self, rule: Rule, lines: list[Line], limit: int, by_stay: bool, check: str = "") -> None:
        """At most ``limit`` distinct days with the rule's codes (per stay, or per patient)."""
        groups: dict[str | None, list[Line]] = defaultdict(list)
        for line in lines:
            groups[line.stay_id if by_stay else None].append(line)
        for group in groups.values():
            covered: dict[date, list[Line]] = defaultdict(list)
            for line in group:
                for offset in range(max(line.days, 1)):
                    covered[line.day + timedelta(days=offset)].append(line)
            days = sorted(covered)
            if len(days) <= limit:
                continue
            allowed = set(days[:limit])
            earlier = [x for d in days[:limit] for x in covered[d]]
            for line in sorted(group, key=_order_key):
                span = [line.day + timedelta(days=o) for o in range(max(line.days, 1))]
                over = [d for d in span if d not in allowed]
                if not over:
                    continue
                amount = _share(line, Decimal(len(over)), Decimal(len(span)), by_quantity=False)
                scope = "本次住院" if by_stay else "该患者"
                self.finding(
                    rule,
                    line,
                    amount,
                    f"{scope}已满 {limit} 天（{days[0]} 至 {days[limit - 1]}），"
                    f"{over[0]}{'起' if len(over) > 1 else ''}共 {len(over)} 天超出支付疗程",
                    [f"支付限 {limit} 天；{scope}第 1 天 {days[0]}，第 {limit} 天 {days[limit - 1]}"],
                    earlier,
                    check=check,
                )

    def span_days(self, rule: Rule, lines: list[Line], limit: int, check: str) -> None:
        """No charge on or after day ``limit`` + 1 counted from the first (per patient)."""
        first = min(line.day for line in lines)
        last_allowed = first + timedelta(days=limit - 1)
        starters = [x for x in lines if x.day == first]
        for line in sorted(lines, key=_order_key):
            if line.day > last_allowed:
                self.finding(
                    rule,
                    line,
                    cents(line.amount) if line.amount is not None else None,
                    f"首次收费 {first}，总时间限 {limit} 天（至 {last_allowed}），{line.day} 已超出",
                    [f"首次收费：{first}"],
                    starters,
                    check=check,
                )

    def window_count(self, rule: Rule, lines: list[Line], limit: int, days: int, check: str = "") -> None:
        """At most ``limit`` (quantity) in any ``days`` consecutive days, counting earlier lines."""
        ordered = sorted(lines, key=_order_key)
        first = 0  # the window is ordered[first : index + 1]: lines are in day order
        total = Decimal(0)
        for index, line in enumerate(ordered):
            start = line.day - timedelta(days=days - 1)
            total += line.quantity
            while ordered[first].day < start:
                total -= ordered[first].quantity
                first += 1
            window = ordered[first : index + 1]
            excess = min(line.quantity, total - limit)
            if excess <= 0:
                continue
            earlier = window[:-1]
            self.finding(
                rule,
                line,
                _share(line, excess, line.quantity, by_quantity=True),
                f"{days} 天内（{start} 至 {line.day}）限 {limit} 次，已计 {total - line.quantity:g} 次，本条超出 {excess:g} 次",
                [f"{x.day} {x.name or rule.item_name}" for x in earlier[:5]],
                earlier,
                check=check,
            )

    def frequency(self, rule: Rule, lines: list[Line]) -> None:
        limit, unit = rule.params["limit"], rule.params["unit"]
        by_day: dict[date, list[Line]] = defaultdict(list)
        for line in lines:
            by_day[line.day].append(line)
        for day, group in sorted(by_day.items()):
            total = Decimal(0)
            ordered = sorted(group, key=_order_key)
            for index, line in enumerate(ordered):
                before, total = total, total + line.quantity
                excess = min(line.quantity, total - limit)
                if excess <= 0:
                    continue
                self.finding(
                    rule,
                    line,
                    _share(line, excess, line.quantity, by_quantity=True),
                    f"{day} 每日限 {limit} {'次' if unit == '日' else unit}，已计 {before:g}，本条 {line.quantity:g}，超出 {excess:g}",
                    [f"{day} 已收取 {before:g} {'次' if unit == '日' else unit}"],
                    ordered[:index],
                )

    def duplicates(self, rule: Rule, mains: list[Line], subs: list[Line]) -> None:
        window, hours = rule.params["window"], rule.params.get("hours", 0)
        label = rule.params.get("frequency") or window
        for sub in sorted(subs, key=_order_key):
            if window == "stay":
                hits = [m for m in mains if m.stay_id == sub.stay_id]
            elif window == "day":
                hits = [m for m in mains if m.day == sub.day]
            else:
                hits = [m for m in mains if abs((m.at - sub.at).total_seconds()) <= hours * 3600]
            if not hits:
                continue
            main = sorted(hits, key=_order_key)[0]
            self.finding(
                rule,
                sub,
                cents(sub.amount) if sub.amount is not None else None,
                f"{label}内已收取主项「{main.name or rule.item_name}」，其中已包含「{sub.name or rule.item_name2}」，从项不得另收",
                [f"主项 {main.name or rule.item_name} {main.at:%Y-%m-%d %H:%M}"],
                sorted(hits, key=_order_key),
            )

    def main_secondary(self, rule: Rule, lines: list[Line]) -> None:
        rate = self.settings.secondary_operation_rate
        groups: dict[tuple, list[Line]] = defaultdict(list)
        for line in lines:
            groups[(line.stay_id, line.day)].append(line)
        for (_, day), group in sorted(groups.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
            by_code: dict[str, list[Line]] = defaultdict(list)
            for line in group:
                by_code[line.code or ""].append(line)
            if len(by_code) < 2:
                continue

            def rank(code: str, lines: dict[str, list[Line]] = by_code) -> tuple:
                prices = [
                    x.reference_price if x.reference_price is not None else (x.unit_price or Decimal(0))
                    for x in lines[code]
                ]
                return (-max(prices), _order_key(min(lines[code], key=_order_key)), code)

            codes = sorted(by_code, key=rank)
            main = min(by_code[codes[0]], key=_order_key)
            for code in codes[1:]:
                for line in sorted(by_code[code], key=_order_key):
                    severity = None
                    if line.unit_price is None:
                        amount, severity = None, kinds.SUSPICIOUS
                        detail = "价格未知，请核实是否已按规定折价"
                    elif line.reference_price is None:
                        amount, severity = (
                            cents(line.unit_price * line.quantity * (1 - rate)),
                            kinds.SUSPICIOUS,
                        )
                        detail = f"无法确认是否已折价（缺少标准价），按 {rate:g} 折估算"
                    else:
                        expected = cents(line.reference_price * rate)  # the discounted price, in fen
                        if line.unit_price <= expected:
                            continue
                        amount = cents((line.unit_price - expected) * line.quantity)
                        detail = f"单价 {line.unit_price:.2f} 元，应按标准价 {line.reference_price:.2f} 元的 {rate:g} 收取"
                    self.finding(
                        rule,
                        line,
                        amount,
                        f"{day} 同组（{rule.params['group']}）已有主手术「{main.name}」，第二及以后的手术应折价收费：{detail}",
                        [f"主手术 {main.name}（{main.code}）"],
                        [main],
                        severity=severity,
                    )


_FACT_CHECKS: dict[str, Callable] = {
    kinds.SEX.key: _Run._sex,
    kinds.AGE_GROUP.key: _Run._age,
    kinds.AGE.key: _Run._age,
    kinds.INSURANCE.key: _Run._insurance,
    kinds.CARE_SETTING.key: _Run._care_setting,
    kinds.HOSPITAL_LEVEL.key: _Run._hospital_level,
}


def evaluate(
    rules: RuleSet, case: Case, settings: AuditSettings, *, drafts_only: bool = False
) -> AuditResult:
    """Findings of ``case`` under ``rules`` (see module docstring)."""
    result = AuditResult()
    if case.stay.insurance == "自费":
        result.notes.append("本次就诊为自费，医保支付规则不适用")
        return result
    run = _Run(rules, case, settings, drafts_only)
    by_rule: dict[str, list[Line]] = defaultdict(list)
    subs: dict[str, list[Line]] = defaultdict(list)
    for line in case.lines:
        if line.code is None:
            if line.draft:
                result.unknown_codes.append(line.ref)
            continue
        if case.stay_of(line).insurance == "自费":
            continue
        for rule in rules.by_code.get(line.code, ()):
            if rule.kind in kinds.FACT_KINDS:
                if line.draft or not drafts_only:  # a fact rule concerns its own line only
                    run.fact_rule(rule, line)
            else:
                by_rule[rule.rule_id].append(line)
        for rule in rules.by_code2.get(line.code, ()):
            subs[rule.rule_id].append(line)
    for rule_id in sorted(set(by_rule) | set(subs)):
        rule = rules.by_id[rule_id]
        lines = by_rule.get(rule_id, [])
        if rule.kind == kinds.DUPLICATE.key:
            if lines and subs.get(rule_id):
                run.duplicates(rule, lines, subs[rule_id])
        elif rule.kind == kinds.FREQUENCY.key:
            run.frequency(rule, lines)
        elif rule.kind == kinds.CYCLE.key:
            run.window_count(rule, lines, rule.params["limit"], rule.params["days"])
        elif rule.kind == kinds.DRUG_COURSE.key:
            run.paid_days(rule, lines, rule.params["max_days"], by_stay=True)
        elif rule.kind == kinds.MAIN_SECONDARY.key:
            run.main_secondary(rule, lines)
        elif rule.kind == kinds.COURSE.key:
            if rule.manual:
                for line in sorted(lines, key=_order_key):
                    amount = cents(line.amount) if line.amount is not None else None
                    run.finding(rule, line, amount, f"需人工核对：{rule.text}")
                continue
            for check in rule.params["checks"]:
                name = check["check"]
                if name == "paid_days":
                    run.paid_days(rule, lines, check["days"], by_stay=False, check=name)
                elif name == "span_days":
                    run.span_days(rule, lines, check["days"], name)
                else:
                    run.window_count(rule, lines, check["limit"], check["days"], f"cycle{check['days']}")
    findings = run.findings
    if drafts_only:
        findings = [f for f in findings if f.draft]
    result.findings = sorted(findings, key=lambda f: (f.line_ref, f.rule_id, f.check))
    for reason, refs in sorted(run.unchecked.items()):
        result.notes.append(f"{reason}（涉及 {len(refs)} 条）")
    return result
