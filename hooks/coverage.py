"""The patient's insurance type (职工 / 居民) for DIP pricing, from FHIR ``Coverage``.

The region's point value depends on it, so it must be the patient's, not the hospital's: the
configured ``[dip] insurance_type`` is only the default when the EMR sends no usable Coverage, and
the card says which was used. Pure functions over raw FHIR JSON; the code list is configuration
(``hooks/coverage_types.toml``, extended by ``<data home>/coverage_types.toml``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

from costing.fhir_input import iter_resources, reference_id
from dip_engine.pricing import insurance_key
from hooks.stay import parse_datetime

BUILTIN_TYPES = Path(__file__).with_name("coverage_types.toml")
OVERRIDE_NAME = "coverage_types.toml"
INSURANCE_TYPES = ("职工", "居民")
NOT_IN_FORCE = frozenset({"cancelled", "draft", "entered-in-error"})


@dataclass(frozen=True, slots=True)
class Insurance:
    """Which insurance type priced the stay and where it came from: ``coverage`` (the patient's),
    ``default`` (the hospital's ``[dip] insurance_type``) or ``unknown``."""

    type: str | None
    source: str
    detail: str = ""  # the Coverage's own words, e.g. 城乡居民基本医疗保险
    note: str | None = None  # what the card should add (two coverages disagreeing…)


@dataclass(frozen=True, slots=True)
class CoverageTypes:
    systems: frozenset[str]
    codes: Mapping[str, str]  # code → 职工 | 居民
    words: Mapping[str, tuple[str, ...]]  # 职工 | 居民 → words that name it
    not_basic: tuple[str, ...]  # words of supplementary insurances

    def named(self, text: Any) -> str | None:
        """职工 / 居民 when ``text`` names exactly one basic medical insurance, else None."""
        if not isinstance(text, str) or not text.strip():
            return None
        key = insurance_key(text)
        if key in INSURANCE_TYPES:
            return key
        if any(word in text for word in self.not_basic):
            return None
        found = {kind for kind, words in self.words.items() if any(word in text for word in words)}
        return found.pop() if len(found) == 1 else None


@lru_cache(maxsize=8)
def _load(override: Path | None, stamp: int | None) -> CoverageTypes:
    with BUILTIN_TYPES.open("rb") as handle:
        raw = tomllib.load(handle)
    systems, codes = set(raw.get("systems", ())), dict(raw.get("types", {}))
    words = {k: tuple(v) for k, v in raw.get("words", {}).items() if k in INSURANCE_TYPES}
    not_basic = tuple(raw.get("not_basic", {}).get("words", ()))
    if override is not None:
        try:
            with override.open("rb") as handle:
                extra = tomllib.load(handle)
            systems.update(extra.get("systems", ()))
            codes.update(extra.get("types", {}))
            for kind, more in extra.get("words", {}).items():
                if kind in INSURANCE_TYPES:
                    words[kind] = (*words.get(kind, ()), *map(str, more))
            not_basic += tuple(map(str, extra.get("not_basic", {}).get("words", ())))
        except (OSError, tomllib.TOMLDecodeError, AttributeError, TypeError):
            pass  # a broken override keeps (the rest of) the built-in list
    valid = {str(k): v for k, v in codes.items() if v in INSURANCE_TYPES}
    return CoverageTypes(frozenset(str(s) for s in systems), valid, words, not_basic)


def load_coverage_types(home: Path | None = None) -> CoverageTypes:
    """The built-in list plus ``<home>/coverage_types.toml`` (re-read when the file changes)."""
    path = Path(home) / OVERRIDE_NAME if home is not None else None
    if path is not None and path.is_file():
        return _load(path, path.stat().st_mtime_ns)
    return _load(None, None)


def insurance_type_of(coverage: Mapping[str, Any], types: CoverageTypes) -> tuple[str | None, str]:
    """(职工 | 居民 | None, the Coverage's wording) of one Coverage's ``type``."""
    concept = coverage.get("type")
    if not isinstance(concept, Mapping):
        return None, ""
    raw_text, raw_codings = concept.get("text"), concept.get("coding")
    text = raw_text if isinstance(raw_text, str) else ""
    codings: list[Any] = raw_codings if isinstance(raw_codings, list) else []
    for coding in codings:
        if not isinstance(coding, Mapping):
            continue
        code, raw_display, raw_system = coding.get("code"), coding.get("display"), coding.get("system")
        display = raw_display if isinstance(raw_display, str) else ""
        system = raw_system if isinstance(raw_system, str) else ""
        if isinstance(code, str) and system in types.systems and code in types.codes:
            return types.codes[code], (display or text or code)[:60]
        found = types.named(display)
        if found:
            return found, display[:60]
    found = types.named(text)
    return (found, text[:60]) if found else (None, text[:60])


def _in_force(coverage: Mapping[str, Any], patient_id: str | None, on: date | None) -> bool:
    status = coverage.get("status")
    if coverage.get("resourceType") != "Coverage" or (isinstance(status, str) and status in NOT_IN_FORCE):
        return False
    beneficiary = reference_id(coverage.get("beneficiary"), "Patient")
    if patient_id and beneficiary and beneficiary != patient_id:
        return False
    period = coverage.get("period")
    if on is not None and isinstance(period, Mapping):
        start, end = parse_datetime(period.get("start")), parse_datetime(period.get("end"))
        if (start and start.date() > on) or (end and end.date() < on):
            return False
    return True


def insurance_of(
    coverage: Any,
    *,
    patient_id: str | None,
    on: date | None,
    default: str | None,
    types: CoverageTypes,
) -> Insurance:
    """The patient's basic medical insurance in force ``on`` (the admission day): the Coverage with
    the lowest ``order`` whose type names 职工 or 居民; else the hospital's default; else unknown."""
    found: list[tuple[int, int, str, str]] = []
    for position, resource in enumerate(iter_resources(coverage)):
        if not _in_force(resource, patient_id, on):
            continue
        kind, words = insurance_type_of(resource, types)
        if kind is not None:
            order = resource.get("order")
            rank = order if isinstance(order, int) and not isinstance(order, bool) else 10_000
            found.append((rank, position, kind, words))
    if found:
        found.sort()
        _, _, kind, words = found[0]
        others = {k for _, _, k, _ in found}
        note = None
        if len(others) > 1:
            note = f"患者有多条参保信息（{'、'.join(sorted(others))}），按排序最前的 {kind} 计算"
        return Insurance(kind, "coverage", words, note)
    default_key = insurance_key(default) if default else None
    if default_key in INSURANCE_TYPES:
        return Insurance(default_key, "default")
    return Insurance(None, "unknown")
