"""Data the evaluator works on: rules, the case being audited (patient, stay, lines) and findings.

Plain frozen dataclasses, no I/O: FHIR (hooks), the national 3101/3102 payload and fee files all
become these, so one evaluator answers every path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from yb_audit.kinds import FACT_KINDS

DRUG = "drug"
ITEM = "item"
SUBJECTS = (DRUG, ITEM)


@dataclass(frozen=True)
class Rule:
    """One rule of a rule set. ``codes`` are the subject codes (for 重复收费 the 主项); ``codes2`` the
    从项 of 重复收费. ``params`` hold the kind's parameters (see README); ``text`` is the bureau's own
    wording (药品说明 / 项目说明 / 备注), shown on every finding."""

    rule_id: str
    kind: str
    batch: str
    ruleset: str
    name: str
    subject: str
    codes: tuple[str, ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    text: str = ""
    severity: str = "违规"
    codes2: tuple[str, ...] = ()
    source: str = ""  # where it was read: "file.xlsx Sheet1 第 12 行"
    item_name: str = ""  # 药品通用名 / 项目名称 (for 重复收费: the 主项)
    item_name2: str = ""  # the 从项 of 重复收费

    @property
    def manual(self) -> bool:
        """A text rule whose numbers could not be read: findings are reminders to check by hand."""
        return bool(self.params.get("manual"))


@dataclass(frozen=True)
class RuleSetInfo:
    """One imported rule set (a workbook or a hospital file) as loaded: name, version, origin."""

    name: str
    batch: str
    version: int
    rules: int
    source: str
    imported_at: str = ""
    is_sample: bool = False
    note: str = ""


class RuleSet:
    """The active rules with the indexes the evaluator needs (code → rules, kind → rules)."""

    def __init__(self, rules: Iterable[Rule], sets: Iterable[RuleSetInfo] = ()) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        self.sets: tuple[RuleSetInfo, ...] = tuple(sets)
        self.by_id: dict[str, Rule] = {}
        self.by_code: dict[str, list[Rule]] = {}
        self.by_code2: dict[str, list[Rule]] = {}
        self._partners: dict[str, frozenset[str]] = {}
        for rule in self.rules:
            self.by_id.setdefault(rule.rule_id, rule)
            for code in rule.codes:
                self.by_code.setdefault(code, []).append(rule)
            for code in rule.codes2:
                self.by_code2.setdefault(code, []).append(rule)

    def __len__(self) -> int:
        return len(self.rules)

    @property
    def is_sample(self) -> bool:
        return bool(self.sets) and all(s.is_sample for s in self.sets)

    def knows(self, code: str) -> bool:
        return code in self.by_code or code in self.by_code2

    def codes(self) -> set[str]:
        return set(self.by_code) | set(self.by_code2)

    def partners(self, code: str) -> frozenset[str]:
        """Every code a line of ``code`` can be judged together with: the codes of the rules (other
        than one-line fact rules) that name it. Lines of other codes cannot change a finding on a
        line of ``code``. Remembered per code (the rules do not change)."""
        found = self._partners.get(code)
        if found is None:
            together: set[str] = set()
            for rule in (*self.by_code.get(code, ()), *self.by_code2.get(code, ())):
                if rule.kind not in FACT_KINDS:
                    together.update(rule.codes)
                    together.update(rule.codes2)
            found = frozenset(together)
            if len(self._partners) < 20_000:
                self._partners[code] = found
        return found

    def select(self, keep) -> RuleSet:
        """A rule set with the rules for which ``keep(rule)`` is true (same rule-set infos)."""
        return RuleSet([r for r in self.rules if keep(r)], self.sets)


@dataclass(frozen=True)
class Patient:
    sex: str | None = None  # 男 / 女
    birth_date: date | None = None


@dataclass(frozen=True)
class Stay:
    """The facts of the stay (就诊) the rules compare with. None = not known."""

    stay_id: str | None = None
    patient_id: str | None = None
    encounter_type: str | None = None  # 住院 / 门诊 / 急诊 / 其他
    insurance: str | None = None  # 职工 / 居民 / 基本医疗 / 工伤 / 生育 / 自费 / …
    hospital_level: int | None = None  # 1 / 2 / 3
    insurance_assumed: bool = False  # the insurance is the configured default, not the stay's own
    level_assumed: bool = False


@dataclass(frozen=True, slots=True)
class Line:
    """One order or charge line. ``draft`` lines are the orders being checked (order-sign, 3101);
    the others are what was already ordered, given or charged in the stay."""

    ref: str  # "MedicationRequest/mr-1", a fee line's feedetl_sn, a 3101 rx_id
    code: str | None  # national code (医保药品代码 20/23, 医疗服务项目 15 digits), None = unknown
    subject: str | None  # drug / item
    name: str
    at: datetime  # local (UTC+8) wall-clock time of the charge, or the order's start
    quantity: Decimal = Decimal(1)
    unit_price: Decimal | None = None
    amount: Decimal | None = None
    days: int = 1  # days the line covers (a drug order's planned days; a charge: 1)
    draft: bool = False
    stay_id: str | None = None
    reference_price: Decimal | None = None  # full (list) price, for 限定主次操作
    local_code: str | None = None
    department: str | None = None
    doctor: str | None = None
    seq: int = 0  # tie-break within the same time (input order)

    @property
    def day(self) -> date:
        return self.at.date()


@dataclass(frozen=True)
class Case:
    """Everything one audit call looks at: one patient, the stay being audited and the lines."""

    patient: Patient
    stay: Stay
    lines: tuple[Line, ...]
    stays: Mapping[str, Stay] = field(default_factory=dict)  # other stays of the patient (3101 history)

    def stay_of(self, line: Line) -> Stay:
        if line.stay_id is not None and line.stay_id in self.stays:
            return self.stays[line.stay_id]
        return self.stay


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule broken by one line. ``amount_at_risk`` (yuan) is what 医保 would not pay (None: the
    line has no price); ``evidence`` says why (earlier charges, patient facts); ``related`` lists the
    other lines involved (the 主项 of a 重复收费, the earlier days of a course)."""

    rule_id: str
    kind: str
    batch: str
    rule_name: str
    severity: str
    line_ref: str
    item_code: str
    item_name: str
    amount_at_risk: Decimal | None
    message: str
    rule_text: str
    evidence: tuple[str, ...] = ()
    related: tuple[str, ...] = ()
    stay_id: str | None = None
    check: str = ""  # the part of a rule that failed (限定疗程 rules have several)
    draft: bool = False  # the violating line is a draft order

    def key(self) -> tuple[str, str, str]:
        return (self.rule_id, self.check, self.line_ref)


@dataclass
class AuditResult:
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what could not be checked, and why
    unknown_codes: list[str] = field(default_factory=list)  # line refs without a recognised code
