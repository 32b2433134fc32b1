"""The rule kinds of the 医保基金智能监管 rule library, as the evaluator knows them.

A kind names the *semantics* (what is compared with what); the rules themselves are data. Each
kind has a stable English key (used in rule files, the store, SQL and JSON), the bureau's Chinese
label (used on cards and reports), the subject it applies to and the severity its findings get
unless a rule says otherwise. The exact semantics of each kind are documented in README.md
("医保智能审核 / 规则语义") and implemented once in :mod:`yb_audit.evaluate` (orders) and once as set
SQL in :mod:`yb_audit.batch.sql` (事后 batch); tests hold the two to the same answers.
"""

from __future__ import annotations

from dataclasses import dataclass

VIOLATION = "违规"
SUSPICIOUS = "可疑"
SEVERITIES = (VIOLATION, SUSPICIOUS)


@dataclass(frozen=True, slots=True)
class Kind:
    key: str
    label: str  # the bureau's name of the rule type (限定类型)
    code: str  # short code used in rule ids of the national batches
    severity: str = VIOLATION


SEX = Kind("sex", "限定性别", "SEX")
AGE_GROUP = Kind("age_group", "限定年龄对象", "AGEG")
AGE = Kind("age", "限定年龄", "AGE")
INSURANCE = Kind("insurance", "限定保险类型", "INS")
CARE_SETTING = Kind("care_setting", "限定就医方式", "SET")
HOSPITAL_LEVEL = Kind("hospital_level", "限定机构等级", "LVL")
DRUG_COURSE = Kind("drug_course", "限定支付疗程", "DAYS")
DUPLICATE = Kind("duplicate", "重复收费", "DUP")
FREQUENCY = Kind("frequency", "限定频次", "FREQ")
CYCLE = Kind("cycle", "限定周期", "CYC")
COURSE = Kind("course", "限定疗程", "CRS", SUSPICIOUS)  # patient scope: disease episodes unknown
MAIN_SECONDARY = Kind("main_secondary", "限定主次操作", "OPS")

KINDS: dict[str, Kind] = {
    k.key: k
    for k in (
        SEX,
        AGE_GROUP,
        AGE,
        INSURANCE,
        CARE_SETTING,
        HOSPITAL_LEVEL,
        DRUG_COURSE,
        DUPLICATE,
        FREQUENCY,
        CYCLE,
        COURSE,
        MAIN_SECONDARY,
    )
}

#: 限定类型 texts found in the workbooks (and their obvious variants) → kind key.
LABELS: dict[str, str] = {
    "限定性别对象": SEX.key,
    "限定性别": SEX.key,
    "限性别": SEX.key,
    "限定年龄对象": AGE_GROUP.key,
    "限定对象": AGE_GROUP.key,
    "限定年龄": AGE.key,
    "限年龄": AGE.key,
    "限定保险类型": INSURANCE.key,
    "限定险种": INSURANCE.key,
    "限定就医方式": CARE_SETTING.key,
    "限定机构等级": HOSPITAL_LEVEL.key,
    "限定医疗机构等级": HOSPITAL_LEVEL.key,
    "限定支付疗程": DRUG_COURSE.key,
    "重复收费": DUPLICATE.key,
    "限定频次": FREQUENCY.key,
    "限定周期": CYCLE.key,
    "周期超频次": CYCLE.key,
    "限定疗程": COURSE.key,
    "限支付疗程": COURSE.key,
    "限定主次操作": MAIN_SECONDARY.key,
}

#: Kinds checked line by line against a fact of the patient or the stay.
FACT_KINDS = frozenset({SEX.key, AGE_GROUP.key, AGE.key, INSURANCE.key, CARE_SETTING.key, HOSPITAL_LEVEL.key})


def kind_of(text: str) -> str | None:
    """The kind key for a 限定类型 text or a kind key; None when unknown."""
    value = (text or "").strip()
    if value in KINDS:
        return value
    return LABELS.get(value)
