"""结算清单质控: the settlement-list quality gate shared by the hook services, ``dip-cds group`` and
``dip-cds settle`` — the same stay gets the same findings on every path.

Pure functions over a :class:`~grouper.Case` and facts about its codes that the engine resolves once
per distinct code (:class:`CodeFacts`). The lists and severities are region data (``[quality]`` in the
region rules TOML, defaults in ``config/rules/default.toml``). Every finding names its rule and the
code it is about; principal-diagnosis findings (``dx.*``) always reject: such a case is 未入组 with
the reason, never grouped or paid "at cost" silently.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from grouper import Case
from grouper.result import QcFlag, Severity

#: Rules on the principal diagnosis: they decide whether the case can be grouped at all.
PRINCIPAL_RULES = {
    "dx.missing": "缺少主要诊断：病例无法入组",
    "dx.invalid": "主要诊断编码格式无效",
    "dx.not_in_table": "主要诊断编码不在医保版编码表中",
    "dx.asterisk": "星号（表现）编码不能作为主要诊断",
    "dx.never_principal": "国家规定不能作为主要诊断",
    "dx.region_excluded": "本统筹区规定不能作为主要诊断",
}
#: The other rules, with their default severity (a region changes them in ``[quality.severity]``).
RULES = {
    "dx.secondary_invalid": Severity.WARNING,
    "px.invalid": Severity.WARNING,
    "px.not_in_table": Severity.WARNING,
    "code.collision": Severity.WARNING,
    "code.gl_mapped": Severity.INFO,
    "sex.mismatch": Severity.ERROR,
    "age.pregnancy": Severity.WARNING,
    "age.perinatal": Severity.WARNING,
    "newborn.birth_weight_missing": Severity.ERROR,
    "newborn.birth_weight_band": Severity.ERROR,
    "los.implausible": Severity.ERROR,
    "los.long": Severity.INFO,
    "principal.rank_conflict": Severity.WARNING,
    "principal.unranked": Severity.WARNING,
}
#: What each rule checks, in words (reports list findings by rule).
RULE_NAMES = {
    **PRINCIPAL_RULES,
    "dx.secondary_invalid": "其他诊断编码无效或不在医保版编码表中（未计入）",
    "px.invalid": "手术操作编码格式无效（不参与分组）",
    "px.not_in_table": "手术操作编码不在医保版编码表中（不参与分组）",
    "code.collision": "国临版/医保版同码异义，未注明编码体系（按医保版读取）",
    "code.gl_mapped": "国临版编码按官方映射表读作医保版",
    "sex.mismatch": "诊断与性别不符",
    "age.pregnancy": "妊娠编码与年龄不符",
    "age.perinatal": "围生期编码与年龄不符",
    "newborn.birth_weight_missing": "新生儿缺少出生体重",
    "newborn.birth_weight_band": "低出生体重编码与出生体重不符",
    "los.implausible": "住院天数不合理",
    "los.long": "长期住院",
    "principal.rank_conflict": "多个诊断排序相同，主要诊断不明确",
    "principal.unranked": "未标明主要诊断",
}
OFF = "off"
_RANK = {s: i for i, s in enumerate(Severity.ORDER)}


class QualityConfigError(ValueError):
    """A ``[quality]`` section the gate cannot use; the message names the key."""


def _prefixes(value: Any, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise QualityConfigError(f"[quality] {key} must be a list of code prefixes")
    return tuple(v.upper() for v in value)


def _int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise QualityConfigError(f"[quality] {key} must be a non-negative integer, not {value!r}")
    return value


@dataclass(frozen=True)
class QualityRules:
    """The gate's region data: which rule weighs how much, and the code lists the checks use."""

    severity: Mapping[str, str] = field(default_factory=lambda: dict(RULES))
    female_only: tuple[str, ...] = ()
    male_only: tuple[str, ...] = ()
    pregnancy_prefixes: tuple[str, ...] = ()
    pregnancy_age: tuple[int, int] = (10, 60)
    perinatal_prefixes: tuple[str, ...] = ()
    perinatal_max_age: int = 1
    newborn_days: int = 28
    birth_weight_codes: tuple[tuple[str, int, int], ...] = ()
    long_stay_days: int = 60
    max_los_days: int = 366

    @classmethod
    def from_config(cls, data: Mapping[str, Any]) -> QualityRules:
        severity = dict(RULES)
        for rule, level in (data.get("severity") or {}).items():
            if rule in PRINCIPAL_RULES:
                raise QualityConfigError(
                    f"[quality.severity] {rule}: principal-diagnosis rules always reject"
                )
            if rule not in RULES:
                raise QualityConfigError(
                    f"[quality.severity] unknown rule {rule!r}; known: {', '.join(RULES)}"
                )
            if level not in (*Severity.ORDER, OFF):
                raise QualityConfigError(
                    f"[quality.severity] {rule} = {level!r}: use {', '.join(Severity.ORDER)} or {OFF}"
                )
            severity[rule] = level
        bands = []
        for i, band in enumerate(data.get("birth_weight_codes", [])):
            if not isinstance(band, Mapping) or not isinstance(band.get("prefix"), str):
                raise QualityConfigError(f"[quality] birth_weight_codes[{i}] needs prefix, min and max")
            low, high = (
                _int(band.get("min", 0), "birth_weight_codes.min"),
                _int(band.get("max", 10**6), "max"),
            )
            bands.append((band["prefix"].upper(), low, high))
        age = data.get("pregnancy_age", [10, 60])
        if not (isinstance(age, list) and len(age) == 2):
            raise QualityConfigError("[quality] pregnancy_age must be [lowest, highest] years")
        return cls(
            severity=severity,
            female_only=_prefixes(data.get("female_only", []), "female_only"),
            male_only=_prefixes(data.get("male_only", []), "male_only"),
            pregnancy_prefixes=_prefixes(data.get("pregnancy_prefixes", []), "pregnancy_prefixes"),
            pregnancy_age=(_int(age[0], "pregnancy_age"), _int(age[1], "pregnancy_age")),
            perinatal_prefixes=_prefixes(data.get("perinatal_prefixes", []), "perinatal_prefixes"),
            perinatal_max_age=_int(data.get("perinatal_max_age", 1), "perinatal_max_age"),
            newborn_days=_int(data.get("newborn_days", 28), "newborn_days"),
            birth_weight_codes=tuple(bands),
            long_stay_days=_int(data.get("long_stay_days", 60), "long_stay_days"),
            max_los_days=_int(data.get("max_los_days", 366), "max_los_days"),
        )

    @cached_property
    def quiet_los(self) -> int:
        """A length of stay up to this needs no check."""
        return min(self.long_stay_days, self.max_los_days)

    def flag(self, rule: str, message: str, code: str = "") -> QcFlag | None:
        """A finding of ``rule`` at its configured severity (None when the region turned it off)."""
        level = Severity.REJECT if rule in PRINCIPAL_RULES else self.severity.get(rule, Severity.WARNING)
        return None if level == OFF else QcFlag(rule, level, message, code)


def _starts(code: str, prefixes: Sequence[str]) -> bool:
    return any(code.startswith(p) for p in prefixes)


@dataclass(frozen=True, slots=True)
class CodeFacts:
    """What the case-level checks need to know about one 医保版 diagnosis code."""

    code: str
    name: str = ""  # the 医保版 name, when a terminology is loaded (messages show it)
    sex: str | None = None  # "F" / "M": the only sex the diagnosis fits
    pregnancy: bool = False
    perinatal: bool = False
    weight_band: tuple[int, int] | None = None  # grams, for low-birth-weight codes

    @property
    def restricted(self) -> bool:
        return bool(self.sex or self.pregnancy or self.perinatal or self.weight_band)


def code_facts(code: str, rules: QualityRules, name: str = "") -> CodeFacts:
    upper = code.upper()
    sex = "F" if _starts(upper, rules.female_only) else "M" if _starts(upper, rules.male_only) else None
    band = next(((lo, hi) for p, lo, hi in rules.birth_weight_codes if upper.startswith(p)), None)
    return CodeFacts(
        code,
        name,
        sex,
        _starts(upper, rules.pregnancy_prefixes),
        _starts(upper, rules.perinatal_prefixes),
        band,
    )


_SEX_WORD = {"F": "女性", "M": "男性"}
_PATIENT_SEX = {"M": "M", "F": "F", "1": "M", "2": "F", "男": "M", "女": "F", "MALE": "M", "FEMALE": "F"}


def patient_sex(value: str | None) -> str | None:
    """The 结算清单 sex (1 男 / 2 女, M/F, 男/女, male/female) as M or F; None when unknown."""
    return _PATIENT_SEX.get((value or "").strip().upper()) if value else None


def case_checks(case: Case, diagnoses: Sequence[CodeFacts], rules: QualityRules) -> list[QcFlag]:
    """Checks of the patient's data against the (restricted) diagnoses: sex, age, newborn weight,
    LOS and the principal diagnosis's rank. Fast when there is nothing to check (a million cases)."""
    los, days = case.los_days, case.age_days
    if (
        not diagnoses
        and (los is None or los <= rules.quiet_los)
        and (days is None or days >= rules.newborn_days or case.birth_weight_g is not None)
        and not case.principal_conflict
        and not case.principal_unranked
    ):
        return []
    out: list[QcFlag | None] = []
    sex = patient_sex(case.sex)
    age = case.age
    weight = case.birth_weight_g
    for d in diagnoses:
        if not d.restricted:
            continue
        named = f"{d.code} {d.name}" if d.name else d.code
        if d.sex and sex and d.sex != sex:
            out.append(
                rules.flag(
                    "sex.mismatch",
                    f"{named} 只适用于{_SEX_WORD[d.sex]}，患者性别为{_SEX_WORD[sex][0]}",
                    d.code,
                )
            )
        if d.pregnancy and age is not None:
            low, high = rules.pregnancy_age
            if not low <= age <= high:
                out.append(rules.flag("age.pregnancy", f"{named} 为妊娠相关编码，患者年龄 {age} 岁", d.code))
        if d.perinatal and age is not None and age > rules.perinatal_max_age:
            out.append(rules.flag("age.perinatal", f"{named} 为围生期编码，患者已 {age} 岁", d.code))
        if d.weight_band and weight is not None and not d.weight_band[0] <= weight <= d.weight_band[1]:
            lo, hi = d.weight_band
            out.append(
                rules.flag(
                    "newborn.birth_weight_band",
                    f"{named} 与出生体重 {weight} 克不符（该编码为 {lo}–{hi} 克）",
                    d.code,
                )
            )
    days = case.age_days
    if days is not None and days < rules.newborn_days and weight is None:
        out.append(
            rules.flag(
                "newborn.birth_weight_missing",
                "新生儿病例缺少出生体重（结算清单必填，影响分组）",
            )
        )
    if los is not None:
        if los > rules.max_los_days:
            out.append(
                rules.flag(
                    "los.implausible",
                    f"住院天数 {los} 天超过 {rules.max_los_days} 天，不合理，请核对",
                    str(los),
                )
            )
        elif los > rules.long_stay_days:
            out.append(
                rules.flag(
                    "los.long",
                    f"住院 {los} 天，超过 {rules.long_stay_days} 天的长期住院按当地规定处理",
                    str(los),
                )
            )
    if case.principal_conflict:
        names = "、".join(case.principal_conflict)
        out.append(rules.flag("principal.rank_conflict", f"多个诊断排序相同（{names}），主要诊断不明确"))
    elif case.principal_unranked:
        out.append(rules.flag("principal.unranked", "未标明主要诊断（rank 1），按诊断记录顺序取第一个"))
    return [f for f in out if f is not None]


def ordered(flags: Iterable[QcFlag]) -> tuple[QcFlag, ...]:
    """Worst first, then in the order found; a repeated finding is kept once."""
    unique = dict.fromkeys(flags)
    return tuple(sorted(unique, key=lambda f: _RANK.get(f.severity, len(_RANK))))


__all__ = [
    "PRINCIPAL_RULES",
    "RULES",
    "RULE_NAMES",
    "CodeFacts",
    "QcFlag",
    "QualityConfigError",
    "QualityRules",
    "Severity",
    "case_checks",
    "code_facts",
    "ordered",
    "patient_sex",
]
