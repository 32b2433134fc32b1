"""National drug and service-item codes: formats, FHIR code systems, local codes, value tables.

* 医保药品代码 (医保药品分类与代码): 20 characters (中成药 ``Z…``) or 23 (西药 ``X…``), upper case.
* 医疗服务项目代码 (医疗服务项目分类与代码): 15 digits.

Canonical FHIR code-system URIs (defined by this product; alternatives accepted, matched
case-insensitively without a trailing slash or ``|version``) are :data:`DRUG_SYSTEM` and
:data:`ITEM_SYSTEM`. A hospital's own drug / item codes reach the national ones through its local
maps (``<home>/local_maps/drugs/*.csv`` and ``<home>/local_maps/items/*.csv``, the format of
:mod:`mappings.local_maps`). The value tables (sex, 险种, 就诊类型, 医院等级) live in
``codes.toml`` so a hospital can extend them (``<home>/yb_audit_codes.toml``).
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from yb_audit.model import DRUG, ITEM

DRUG_SYSTEM = "http://www.nhsa.gov.cn/CodeSystem/medical-insurance-drug"
ITEM_SYSTEM = "http://www.nhsa.gov.cn/CodeSystem/medical-service-item"
#: ``extension`` on a draft order the card's "keep as 自费" suggestion sets (see README).
SELF_PAY_EXTENSION = "http://dip-cds.example.cn/fhir/StructureDefinition/yb-self-pay"

SYSTEM_ALIASES: dict[str, tuple[str, ...]] = {
    DRUG: (
        DRUG_SYSTEM,
        "http://www.nhsa.gov.cn/CodeSystem/drug",
        "http://www.nhsa.gov.cn/CodeSystem/yb-drug",
        "http://www.nhsa.gov.cn/CodeSystem/hilist-drug",
        "urn:nhsa:drug",
        "yb-drug",
        "ybyp",
        "nhsa-drug",
        "医保药品代码",
        "医保药品分类与代码",
    ),
    ITEM: (
        ITEM_SYSTEM,
        "http://www.nhsa.gov.cn/CodeSystem/service-item",
        "http://www.nhsa.gov.cn/CodeSystem/yb-item",
        "http://www.nhsa.gov.cn/CodeSystem/hilist-item",
        "urn:nhsa:service-item",
        "yb-item",
        "ylfwxm",
        "nhsa-item",
        "医疗服务项目代码",
        "医疗服务项目分类与代码",
    ),
}
#: Systems that may carry either kind (the 医保目录 as a whole): the code's format decides.
EITHER_SYSTEMS = ("http://www.nhsa.gov.cn/CodeSystem/hilist", "hilist", "医保目录编码", "医保目录代码")

_DRUG_CODE = re.compile(r"^[A-Z][A-Z0-9]{19}(?:[A-Z0-9]{3})?$")
_ITEM_CODE = re.compile(r"^\d{15}$")
LOCAL_MAP_SUBDIRS = {DRUG: "drugs", ITEM: "items"}
CODES_FILE = Path(__file__).with_name("codes.toml")
OVERRIDE_FILE = "yb_audit_codes.toml"


def _system_key(uri: str) -> str:
    return uri.strip().split("|", 1)[0].rstrip("/").lower()


_SYSTEMS: dict[str, str | None] = {
    _system_key(alias): subject for subject, aliases in SYSTEM_ALIASES.items() for alias in aliases
}
_SYSTEMS.update({_system_key(alias): None for alias in EITHER_SYSTEMS})


def normalize_code(raw: Any) -> str:
    """NFKC, no spaces, upper case (drug codes are published in upper case)."""
    text = str(raw)
    if text.isascii() and text.isalnum():  # the usual case, fast
        return text.upper()
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text)).upper()


def subject_of_code(code: str | None) -> str | None:
    """DRUG or ITEM when ``code`` has the national format of one, else None."""
    if not code:
        return None
    if _ITEM_CODE.match(code):
        return ITEM
    if _DRUG_CODE.match(code):
        return DRUG
    return None


def is_national_code(code: str | None, subject: str | None = None) -> bool:
    found = subject_of_code(code)
    return found is not None and (subject is None or found == subject)


def system_subject(system: Any) -> tuple[bool, str | None]:
    """(is a national drug/item system, its subject or None for the either-kind 医保目录 systems)."""
    if not isinstance(system, str) or not system or len(system) > 500:
        return False, None  # checked before the cache: a list or dict sent as a system is unhashable
    return _system_subject(system)


@lru_cache(maxsize=1024)
def _system_subject(system: str) -> tuple[bool, str | None]:
    key = _system_key(system)
    if key not in _SYSTEMS:
        return False, None
    return True, _SYSTEMS[key]


# ----------------------------------------------------------------------------- a coded line


@dataclass(frozen=True, slots=True)
class Resolved:
    """The national code of an order / charge, how it was found, and the local code it came from."""

    code: str | None
    subject: str | None
    how: str  # "system" | "local-map:<name>" | "format" | "unknown"
    local_code: str | None = None
    display: str = ""


def resolve_coding(
    codings: Sequence[Mapping[str, Any]],
    local_maps: Mapping[str, Any] | None = None,
    expect: str | None = None,
) -> Resolved:
    """The national code among ``codings`` (FHIR Codings): a national system first, then the
    hospital's local maps (``local_maps``: subject → :class:`mappings.local_maps.LocalMaps`), then a
    system-less code of the exact national format. ``expect`` narrows the subject (a
    MedicationRequest carries drugs)."""
    display = next((str(c["display"]) for c in codings if c.get("display")), "")
    for coding in codings:
        national, subject = system_subject(coding.get("system"))
        if not national:
            continue
        code = normalize_code(coding.get("code", ""))
        found = subject_of_code(code)
        if found is not None and (subject in (None, found)) and expect in (None, found):
            return Resolved(code, found, "system", display=display)
    for coding in codings:
        system, raw = coding.get("system"), coding.get("code")
        if not isinstance(system, str) or not isinstance(raw, str):
            continue
        for subject, maps in (local_maps or {}).items():
            if expect not in (None, subject):
                continue
            entry = maps.get(system, raw)
            if entry is None:
                continue
            code = normalize_code(entry.target_code)
            if subject_of_code(code) == subject:
                return Resolved(code, subject, f"local-map:{entry.map_name}", raw.strip(), display)
    for coding in codings:
        if coding.get("system"):
            continue
        code = normalize_code(coding.get("code", ""))
        found = subject_of_code(code)
        if found is not None and expect in (None, found):
            return Resolved(code, found, "format", display=display)
    local = next((str(c["code"]) for c in codings if isinstance(c.get("code"), str)), None)
    return Resolved(None, None, "unknown", local, display)


def local_maps_for(home: Path | str | None) -> dict[str, Any]:
    """subject → the hospital's local maps for drugs / items (re-read when a file changes)."""
    from mappings.local_maps import local_maps_for_home

    if home is None:
        return {}
    return {subject: local_maps_for_home(home, sub) for subject, sub in LOCAL_MAP_SUBDIRS.items()}


# ----------------------------------------------------------------------------- value tables


def _key(value: Any) -> str:
    return unicodedata.normalize("NFKC", str(value)).strip().lower()


@dataclass(frozen=True)
class ValueTables:
    """The tables of ``codes.toml`` (plus a hospital's overrides), keyed by normalised value."""

    sex: Mapping[str, str]
    insurance: Mapping[str, str]
    encounter_type: Mapping[str, Mapping[str, str]]
    hospital_level: Mapping[str, int]

    def sex_of(self, value: Any) -> str | None:
        return self.sex.get(_key(value)) if value not in (None, "") else None

    def insurance_of(self, value: Any) -> str | None:
        return self.insurance.get(_key(value)) if value not in (None, "") else None

    def level_of(self, value: Any) -> int | None:
        if value in (None, ""):
            return None
        if isinstance(value, int) and value in (1, 2, 3):
            return value
        key = _key(value)
        if key in self.hospital_level:
            return self.hospital_level[key]
        match = re.match(r"^([一二三123])级", key)
        return {"一": 1, "二": 2, "三": 3, "1": 1, "2": 2, "3": 3}[match.group(1)] if match else None

    def encounter_type_of(self, value: Any, source: str = "text") -> str | None:
        """``source``: text | fhir_class | med_mdtrt_type | med_type."""
        if value in (None, ""):
            return None
        key = _key(value)
        found = self.encounter_type.get(source, {}).get(key)
        if found is None and source == "med_type" and key[:1] in ("1", "2"):
            return "门诊" if key[0] == "1" else "住院"
        if found is None and source != "text":
            return self.encounter_type.get("text", {}).get(key)
        return found


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out.get(key, {}), value) if isinstance(value, Mapping) else value
    return out


def _normalised(table: Mapping[str, Any]) -> dict[str, Any]:
    return {_key(k): (_normalised(v) if isinstance(v, Mapping) else v) for k, v in table.items()}


@lru_cache(maxsize=8)
def _tables(override: str | None, stamp: float | None) -> ValueTables:
    data = tomllib.loads(CODES_FILE.read_text(encoding="utf-8"))
    if override:
        data = _merge(data, tomllib.loads(Path(override).read_text(encoding="utf-8")))
    return ValueTables(
        sex=_normalised(data.get("sex", {})),
        insurance=_normalised(data.get("insurance", {})),
        encounter_type={k: _normalised(v) for k, v in data.get("encounter_type", {}).items()},
        hospital_level=_normalised(data.get("hospital_level", {})),
    )


def value_tables(home: Path | str | None = None) -> ValueTables:
    """The packaged tables merged with ``<home>/yb_audit_codes.toml`` when present (a broken
    override raises ``ValueError`` naming the file, so the service refuses to start on it)."""
    path = Path(home) / OVERRIDE_FILE if home is not None else None
    if path is None or not path.is_file():
        return _tables(None, None)
    try:
        return _tables(str(path), path.stat().st_mtime)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from None
