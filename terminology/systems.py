"""Canonical code-system URIs and the alternatives EMRs actually send.

One module so the FHIR API, the mapping layer, the demo data and the README agree. Matching of
alternatives is case-insensitive and ignores a trailing slash or ``|version`` suffix.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from rapidfuzz.distance import Levenshtein

__all__ = [
    "YB_ICD10",
    "YB_ICD9CM3",
    "GL_ICD10",
    "GL_ICD9CM3",
    "WHO_ICD10",
    "CONCEPTMAP_DX",
    "CONCEPTMAP_PX",
    "VALUESET_DX",
    "VALUESET_PX",
    "SystemInfo",
    "SYSTEMS",
    "identify_system",
    "near_miss_system",
    "canonical_for_kind",
]

YB_ICD10 = "http://www.nhsa.gov.cn/CodeSystem/icd10-yb2.0"
YB_ICD9CM3 = "http://www.nhsa.gov.cn/CodeSystem/icd9cm3-yb2.0"
GL_ICD10 = "http://www.nhc.gov.cn/CodeSystem/icd10-gl2.0"
GL_ICD9CM3 = "http://www.nhc.gov.cn/CodeSystem/icd9cm3-gl3.0"
WHO_ICD10 = "http://hl7.org/fhir/sid/icd-10"

CONCEPTMAP_DX = "http://www.nhsa.gov.cn/ConceptMap/icd10-gl2.0-to-yb2.0"
CONCEPTMAP_PX = "http://www.nhsa.gov.cn/ConceptMap/icd9cm3-gl3.0-to-yb2.0"
VALUESET_DX = "http://www.nhsa.gov.cn/ValueSet/icd10-yb2.0"
VALUESET_PX = "http://www.nhsa.gov.cn/ValueSet/icd9cm3-yb2.0"


@dataclass(frozen=True, slots=True)
class SystemInfo:
    """What a system URI means: ``family`` is 'yb' (医保版), 'gl' (国临版) or 'who'; kind 'dx'|'px'."""

    uri: str
    family: str
    kind: str
    title: str
    version: str
    aliases: tuple[str, ...] = ()


SYSTEMS: tuple[SystemInfo, ...] = (
    SystemInfo(
        YB_ICD10,
        "yb",
        "dx",
        "医疗保障疾病诊断分类与代码（ICD-10）医保版 2.0",
        "2.0",
        (
            "http://www.nhsa.gov.cn/CodeSystem/icd10",
            "http://www.nhsa.gov.cn/CodeSystem/icd-10-yb",
            "icd10-yb2.0",
            "icd10-yb",
            "yb-icd10",
            "医保版ICD-10",
        ),
    ),
    SystemInfo(
        YB_ICD9CM3,
        "yb",
        "px",
        "医疗保障手术操作分类与代码（ICD-9-CM-3）医保版 2.0",
        "2.0",
        (
            "http://www.nhsa.gov.cn/CodeSystem/icd9cm3",
            "http://www.nhsa.gov.cn/CodeSystem/icd-9-cm-3-yb",
            "icd9cm3-yb2.0",
            "icd9cm3-yb",
            "yb-icd9",
            "医保版ICD-9-CM-3",
        ),
    ),
    SystemInfo(
        GL_ICD10,
        "gl",
        "dx",
        "疾病分类代码国家临床版 2.0（ICD-10）",
        "2.0",
        (
            "http://hl7.org/fhir/sid/icd-10-cn",
            "https://hl7.org/fhir/sid/icd-10-cn",
            "urn:oid:2.16.156.10011.2.3.3.11",
            "http://www.nhc.gov.cn/CodeSystem/icd10",
            "icd10-gl2.0",
            "icd10-gl",
            "gl-icd10",
            "国临版ICD-10",
        ),
    ),
    SystemInfo(
        GL_ICD9CM3,
        "gl",
        "px",
        "手术操作分类代码国家临床版 3.0（ICD-9-CM-3）",
        "3.0",
        (
            "http://hl7.org/fhir/sid/icd-9-cm-3-cn",
            "urn:oid:2.16.156.10011.2.3.3.12",
            "http://www.nhc.gov.cn/CodeSystem/icd9cm3",
            "icd9cm3-gl3.0",
            "icd9cm3-gl",
            "gl-icd9",
            "国临版ICD-9-CM-3",
        ),
    ),
    SystemInfo(
        WHO_ICD10,
        "who",
        "dx",
        "WHO ICD-10",
        "2019",
        (
            "https://hl7.org/fhir/sid/icd-10",
            "http://id.who.int/icd/release/10",
            "http://id.who.int/icd10",
            "urn:oid:2.16.840.1.113883.6.3",
            "icd10",
            "icd-10",
        ),
    ),
)


def _key(uri: str) -> str:
    uri = uri.strip().split("|", 1)[0].rstrip("/").lower()
    return uri


_INDEX: dict[str, SystemInfo] = {}
for _info in SYSTEMS:
    for _alias in (_info.uri, *_info.aliases):
        _INDEX[_key(_alias)] = _info


def identify_system(uri: str | None) -> SystemInfo | None:
    """The known system a URI (canonical or alternative) stands for; None when unknown."""
    if not uri or not isinstance(uri, str) or len(uri) > 500:
        return None
    return _INDEX.get(_key(uri))


_SCHEME = re.compile(r"^(?:https?://|urn:)?(?:www\.)?")
_NOT_ALNUM = re.compile(r"[\W_]+")
_MIN_TAIL = 6  # 'icd10yb20': shorter tails ('icd10') name too little to trust without the host


def _squash(uri: str) -> str:
    """Case, scheme, www., separators and a |version suffix removed: what a person reading the URI
    would compare (icd-10-yb-2.0 = icd10-yb2.0)."""
    uri = unicodedata.normalize("NFKC", uri).strip().split("|", 1)[0].lower()
    return _NOT_ALNUM.sub("", _SCHEME.sub("", uri))


def _tail(uri: str) -> str:
    return _squash(uri.strip().split("|", 1)[0].rstrip("/").rsplit("/", 1)[-1])


_NEAR: list[tuple[str, str, SystemInfo]] = []  # (squashed URI, squashed last segment, system)
for _info in SYSTEMS:
    for _uri in (_info.uri, *_info.aliases):
        if "/" in _uri or ":" in _uri:
            _NEAR.append((_squash(_uri), _tail(_uri), _info))


def near_miss_system(uri: str | None) -> SystemInfo | None:
    """The known system an unknown URI was evidently meant to name, or None.

    A near miss is the same URI but for case, scheme, ``www.``, separators or a version suffix
    (``http://www.nhsa.gov.cn/CodeSystem/icd-10-yb-2.0``), a typo of at most two characters (not
    in an OID),
    or another base URL ending in a known system's own identifier (``…/CodeSystem/icd10-yb2.0``).
    Only a hint: the mapping layer still requires the code and its display to agree
    (:func:`mappings.resolve.resolve_coding`)."""
    if not uri or not isinstance(uri, str) or len(uri) > 500 or identify_system(uri) is not None:
        return None
    squashed, tail = _squash(uri), _tail(uri)
    if not squashed:
        return None
    typo_ok = not squashed.startswith("oid")  # OIDs one digit apart are different systems (…3.11/…3.12)
    best: tuple[int, SystemInfo] | None = None
    for known, known_tail, info in _NEAR:
        if squashed == known or (len(tail) >= _MIN_TAIL and tail == known_tail):
            return info
        distance = Levenshtein.distance(squashed, known, score_cutoff=2) if typo_ok else 3
        if distance <= 2 and (best is None or distance < best[0]):
            best = (distance, info)
    return best[1] if best else None


def canonical_for_kind(kind: str) -> str:
    """The canonical 医保版 URI for 'dx' or 'px'."""
    return YB_ICD10 if kind == "dx" else YB_ICD9CM3
