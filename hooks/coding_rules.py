"""Principal-diagnosis admissibility and settlement-list checks for the coder (DIP-RULES.md §7).

The settlement-list checks themselves are the DIP engine's quality gate (``dip_engine.quality``),
shared with ``dip-cds group`` and ``dip-cds settle``; this module adds what only a FHIR record can
get wrong.

Compliance comes first: each documented diagnosis is judged admissible or not *with the reason*
before any group or money is attached to it, and only documented diagnoses of this encounter are
ever considered — the card must never help 高套 (upcoding) or 低套. Pure functions over a
:class:`~hooks.stay.Stay`; the rule lists are configuration (``hooks/coding_rules.toml``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from cards import CheckView
from dip_engine.quality import RULE_NAMES
from grouper import GroupResult, Severity
from hooks.stay import Stay, StayDiagnosis
from terminology.normalize import normalize_diagnosis

BUILTIN_RULES = Path(__file__).with_name("coding_rules.toml")
OVERRIDE_NAME = "coding_rules.toml"


@dataclass(frozen=True, slots=True)
class Admissibility:
    admissible: bool
    reasons: tuple[str, ...]


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = (
            _merge(out[key], value)
            if isinstance(value, Mapping) and isinstance(out.get(key), dict)
            else value
        )
    return out


@lru_cache(maxsize=8)
def _load(override: Path | None, stamp: int | None) -> dict[str, Any]:
    with BUILTIN_RULES.open("rb") as handle:
        rules = tomllib.load(handle)
    if override is not None:
        try:
            with override.open("rb") as handle:
                rules = _merge(rules, tomllib.load(handle))
        except (OSError, tomllib.TOMLDecodeError):
            pass  # a broken override keeps the built-in rules; `dip-cds` start-up checks report it
    return rules


def load_coding_rules(home: Path | None = None) -> dict[str, Any]:
    """Built-in rules merged with ``<home>/coding_rules.toml`` (re-read when the file changes)."""
    path = Path(home) / OVERRIDE_NAME if home is not None else None
    if path is not None and path.is_file():
        return _load(path, path.stat().st_mtime_ns)
    return _load(None, None)


def _starts(code: str | None, prefixes: Any) -> str | None:
    if not code:
        return None
    upper = code.upper()
    for prefix in prefixes or ():
        if upper.startswith(str(prefix).upper()):
            return str(prefix)
    return None


def _is_asterisk(code: str) -> bool:
    n = normalize_diagnosis(code)
    return bool(n.ok and n.asterisk and not n.dagger)


def treated_by_operation(
    stay: Stay, is_operation: Callable[[str], bool], catalog_pairs: Callable[[str, str], bool]
) -> tuple[StayDiagnosis, ...] | None:
    """The diagnoses the stay's operations treat; None when the stay had no operation or it cannot
    be told. By ``Procedure.reasonReference`` when the record says so, else by the catalog: a
    diagnosis is treated by an operation when a group of its 亚目/类目 contains that operation
    (``catalog_pairs(diagnosis, operation)``)."""
    from costing.fhir_input import reference_id

    operations = [p for p in stay.procedures if p.code and is_operation(p.code)]
    if not operations:
        return None
    named: set[str] = set()
    for p in operations:
        proc = p.procedure or {}
        reason_refs, reasons = proc.get("reasonReference"), proc.get("reason")
        refs = (reason_refs if isinstance(reason_refs, list) else []) + [
            r.get("reference")
            for r in (reasons if isinstance(reasons, list) else [])
            if isinstance(r, Mapping)  # R5
        ]
        named.update(cid for cid in (reference_id(r, "Condition") for r in refs) if cid)
    if named:
        found = tuple(d for d in stay.diagnoses if d.condition_id in named)
    else:
        found = tuple(
            d
            for d in stay.diagnoses
            if d.code and any(catalog_pairs(d.code, p.code) for p in operations if p.code)
        )
    return found or None


def admissibility(
    stay: Stay,
    diagnosis: StayDiagnosis,
    rules: Mapping[str, Any],
    excluded: Callable[[str], str | None],
    treated: tuple[StayDiagnosis, ...] | None = None,
) -> Admissibility:
    """May ``diagnosis`` be the principal diagnosis of this stay? Always with the reasons.

    ``excluded(code)`` is the region's own list (the DIP rules' ``excluded_principal``);
    ``treated``: the diagnoses the stay's operations treat (:func:`treated_by_operation`)."""
    p = rules.get("principal", {})
    no: list[str] = []
    yes: list[str] = []
    code = diagnosis.code
    if not diagnosis.in_encounter:
        no.append("不是本次住院记录的诊断")
    if diagnosis.verification in set(p.get("unconfirmed_statuses", ())):
        no.append(f"诊断尚未确认（{diagnosis.verification}）")
    if code is None:
        if diagnosis.resolution.code or diagnosis.resolution.candidates:
            no.append("编码需编码员确认后才能判断")
        else:
            no.append("未能映射到医保版编码")
        return Admissibility(False, tuple(no))
    if _is_asterisk(code):
        no.append("星号编码表示临床表现，不能作为主要诊断")
    hit = _starts(code, p.get("never"))
    if hit:
        no.append("损伤中毒的外部原因编码（V/W/X/Y）不能作为主要诊断")
    hit = _starts(code, p.get("status_codes"))
    if hit:
        no.append(f"{hit} 是状态/病史类编码，不能作为主要诊断")
    region = excluded(code)
    if region and not hit:
        no.append(f"本统筹区规定 {region} 不能作为主要诊断")
    others = [
        d for d in stay.diagnoses
        if d is not diagnosis and d.code and d.in_encounter and not _starts(d.code, p.get("symptom_prefixes"))
        and not _starts(d.code, [*p.get("never", ()), *p.get("status_codes", ())])
        and d.verification not in set(p.get("unconfirmed_statuses", ()))
    ]  # fmt: skip
    if _starts(code, p.get("symptom_prefixes")):
        if others:
            no.append(f"症状体征编码，已有明确诊断（{others[0].code}）时不能作为主要诊断")
        else:
            yes.append("症状体征编码，仅在无明确诊断时可作为主要诊断")
    treated_here = any(diagnosis is t for t in treated or ())
    if _starts(code, p.get("complication_prefixes")) and not treated_here:  # treated here: admitted for it
        if stay.procedures:
            no.append("本次住院手术后发生的并发症，不能作为主要诊断（应以手术所治疗的疾病为主要诊断）")
        else:
            yes.append("本次为治疗该并发症而入院")
    if treated and not treated_here:
        no.append(
            f"外科住院应以手术所治疗的疾病为主要诊断，本次手术治疗的是 {treated[0].code or treated[0].documented}"
        )
    elif treated:
        yes.append("本次手术所治疗的疾病")
    if no:
        return Admissibility(False, tuple(no))
    if diagnosis.in_encounter and not yes:
        yes.append("本次住院记录的已确诊诊断")
    if diagnosis.resolution.needs_confirmation or diagnosis.mapped_from_other_system:
        yes.append("编码由映射得到，请核对")
    return Admissibility(True, tuple(yes))


# ----------------------------------------------------------------------------- settlement-list checks

_LEVELS = {
    Severity.REJECT: "error",
    Severity.ERROR: "error",
    Severity.WARNING: "warning",
    Severity.INFO: "info",
}


def settlement_checks(stay: Stay, result: GroupResult, newborn_days: int = 28) -> list[CheckView]:
    """Problems on the 结算清单: the shared quality gate's findings on the stay's case (the same
    ones ``dip-cds group`` and ``dip-cds settle`` report for it), plus what only a FHIR record can
    get wrong (uncoded principal, procedure dates outside the stay, missing admission time)."""
    out: list[CheckView] = []
    principal = stay.principal
    if principal is not None and principal.code is None:
        out.append(CheckView("error", f"主要诊断“{principal.documented}”没有确认的医保版编码", "主要诊断"))
    for finding in result.qc:
        out.append(
            CheckView(
                _LEVELS.get(finding.severity, "warning"),
                f"{finding.message}（质控规则 {finding.rule}）",
                RULE_NAMES.get(finding.rule, ""),
            )
        )
    if stay.birth_weight_g is not None and stay.age_days is not None and stay.age_days < newborn_days:
        out.append(CheckView("info", f"新生儿出生体重 {stay.birth_weight_g} 克", "新生儿出生体重"))
    for p in stay.procedures_outside:
        when = p.performed.strftime("%Y-%m-%d") if p.performed else "?"
        out.append(
            CheckView(
                "warning", f"手术操作“{p.documented}”日期 {when} 不在本次住院期间，未计入分组", "手术日期"
            )
        )
    for p in stay.procedures:
        if p.performed is None:
            out.append(CheckView("info", f"手术操作“{p.documented}”没有施行日期", "手术日期"))
    if stay.admitted is None:
        out.append(CheckView("warning", "入院时间缺失：无法计算住院天数", "住院天数"))
    elif stay.discharged is None:
        out.append(CheckView("info", "出院时间尚未填写", "住院天数"))
    return out
