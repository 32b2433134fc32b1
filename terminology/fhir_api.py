"""FHIR terminology operations for integrators, mounted by the service under ``/fhir``.

``CodeSystem/$lookup``, ``CodeSystem/$validate-code``, ``ConceptMap/$translate`` and
``ValueSet/$expand`` — GET with query parameters or POST with a ``Parameters`` body, answering
FHIR R5 ``Parameters`` / ``ValueSet`` / ``OperationOutcome`` JSON. Errors are OperationOutcomes
with a 4xx status, never a stack trace.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any, Literal, overload

from flask import Blueprint, Response, request

from cds_service import __version__
from cds_service.appdata import get_app_data
from cds_service.errors import operation_outcome
from terminology.systems import (
    CONCEPTMAP_DX,
    CONCEPTMAP_PX,
    VALUESET_DX,
    VALUESET_PX,
    YB_ICD9CM3,
    YB_ICD10,
    canonical_for_kind,
    identify_system,
)

__all__ = ["blueprint"]

# mounted under /fhir by default; the service may pass its own url_prefix when registering
blueprint = Blueprint("terminology_fhir", __name__, url_prefix="/fhir")

FHIR_JSON = "application/fhir+json"
MAX_COUNT = 1000
_VALUE_KEYS = (
    "valueString",
    "valueCode",
    "valueUri",
    "valueCanonical",
    "valueUrl",
    "valueBoolean",
    "valueInteger",
)


class _BadRequest(Exception):
    def __init__(self, message: str, status: int = 400, code: str = "invalid") -> None:
        super().__init__(message)
        self.message, self.status, self.code = message, status, code


def _respond(resource: dict, status: int = 200) -> Response:
    return Response(json.dumps(resource, ensure_ascii=False), status=status, mimetype=FHIR_JSON)


def _outcome(message: str, status: int, code: str = "invalid", severity: str = "error") -> Response:
    return _respond(operation_outcome([(severity, code, message)]), status)


def _terminology() -> Any:
    return get_app_data().terminology


def _params() -> dict[str, Any]:
    """Operation parameters from the query string (GET) or a Parameters body (POST)."""
    if request.method == "GET":
        return {k: v for k, v in request.args.items()}
    raw = request.get_data(cache=False, as_text=False)
    if len(raw) > 1_000_000:
        raise _BadRequest("请求体过大", 413, "too-costly")
    try:
        body = json.loads(raw or b"{}")
    except ValueError as exc:
        raise _BadRequest(f"请求体不是合法的 JSON：{exc}") from exc
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise _BadRequest("POST 请求体必须是 FHIR Parameters 资源")
    out: dict[str, Any] = dict(request.args.items())
    for p in body.get("parameter") or []:
        if not isinstance(p, dict) or not isinstance(p.get("name"), str):
            raise _BadRequest("Parameters.parameter 的每一项都需要 name")
        name = p["name"]
        if isinstance(p.get("valueCoding"), dict):
            coding = p["valueCoding"]
            out.setdefault("code", coding.get("code"))
            out.setdefault("system", coding.get("system"))
            if coding.get("display"):
                out.setdefault("display", coding.get("display"))
            continue
        if isinstance(p.get("valueCodeableConcept"), dict):
            out["codeableConcept"] = p["valueCodeableConcept"]
            continue
        for key in _VALUE_KEYS:
            if key in p:
                out[name] = p[key]
                break
    return out


@overload
def _text(params: dict, name: str, required: Literal[True], max_len: int = 500) -> str: ...
@overload
def _text(params: dict, name: str, required: bool = False, max_len: int = 500) -> str | None: ...
def _text(params: dict, name: str, required: bool = False, max_len: int = 500) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise _BadRequest(f"缺少参数 {name}", code="required")
        return None
    if not isinstance(value, str):
        value = str(value)
    if len(value) > max_len:
        raise _BadRequest(f"参数 {name} 过长（{len(value)} 个字符）", code="too-long")
    return value


def _guess_kind(code: str) -> str:
    """Without a system: a code starting with a letter is a diagnosis, with digits a procedure."""
    from terminology.normalize import normalize_diagnosis

    return "dx" if normalize_diagnosis(code).ok else "px"


def _kind_from_system(system: str | None, code: str) -> tuple[str, str]:
    """(kind, family) for a system URI (医保版 guessed from the code when absent), or a clear 404."""
    if system is None:
        return _guess_kind(code), "yb"
    info = identify_system(system)
    if info is None:
        raise _BadRequest(f"未知的编码系统 {system}", 404, "not-found")
    return info.kind, info.family


def _operation(handler):
    def wrapper():
        try:
            return handler(_params())
        except _BadRequest as exc:
            return _outcome(exc.message, exc.status, exc.code)

    wrapper.__name__ = handler.__name__
    return wrapper


def _param(name: str, value: Any) -> dict:
    if isinstance(value, bool):
        return {"name": name, "valueBoolean": value}
    if isinstance(value, int):
        return {"name": name, "valueInteger": value}
    if isinstance(value, dict):
        return {"name": name, "valueCoding": value}
    return {"name": name, "valueString": str(value)}


# --- CodeSystem/$lookup -----------------------------------------------------------------------
@blueprint.route("/CodeSystem/$lookup", methods=["GET", "POST"])
@_operation
def lookup(params: dict) -> Response:
    code = _text(params, "code", required=True, max_len=64)
    system = _text(params, "system") or _text(params, "url")
    kind, family = _kind_from_system(system, code)
    term = _terminology()
    if family != "yb":
        entry = term.translate(kind, code) if family == "gl" else None
        if entry is None:
            return _outcome(f"编码 {code} 不在 {system} 中", 404, "not-found")
        return _respond(
            {
                "resourceType": "Parameters",
                "parameter": [
                    _param("name", "国临版 ICD-10 2.0" if kind == "dx" else "国临版 ICD-9-CM-3 3.0"),
                    _param("display", entry.source_name or entry.source_code),
                    {
                        "name": "property",
                        "part": [
                            {"name": "code", "valueCode": "yb-target"},
                            {"name": "value", "valueCode": entry.target_code},
                            {"name": "description", "valueString": "官方映射的医保版编码"},
                        ],
                    },
                ],
            }
        )
    concept = term.lookup(kind, code)
    if concept is None:
        validation = term.validate(kind, code)
        hint = "；".join(validation.reasons[-2:])
        if validation.suggestions:
            hint += "。建议：" + "、".join(f"{c.code} {c.display}" for c in validation.suggestions[:5])
        return _outcome(f"编码 {code} 不在医保版编码表中：{hint}", 404, "not-found")
    table = term.table(kind)
    out = [
        _param("name", "医保版 ICD-10" if kind == "dx" else "医保版 ICD-9-CM-3"),
        _param("version", table.version),
        _param("display", concept.display),
        {
            "name": "designation",
            "part": [
                {"name": "language", "valueCode": "zh-CN"},
                {"name": "value", "valueString": concept.display},
            ],
        },
    ]
    for prop, value in term.hierarchy(kind, concept.code).items():
        if value:
            out.append(
                {
                    "name": "property",
                    "part": [{"name": "code", "valueCode": prop}, {"name": "value", "valueString": value}],
                }
            )
    i = table.index[concept.code]
    out.append(
        {
            "name": "property",
            "part": [
                {"name": "code", "valueCode": "pinyin-initials"},
                {"name": "value", "valueString": table.initials[i]},
            ],
        }
    )
    if term.is_sample:
        out.append(_param("message", term.label))
    return _respond({"resourceType": "Parameters", "parameter": out})


# --- CodeSystem/$validate-code ------------------------------------------------------------------
@blueprint.route("/CodeSystem/$validate-code", methods=["GET", "POST"])
@_operation
def validate_code(params: dict) -> Response:
    code = _text(params, "code", required=True, max_len=10_000)
    system = _text(params, "url") or _text(params, "system")
    display = _text(params, "display", max_len=1000)
    info = identify_system(system) if system else None
    if system and info is None:
        return _respond(
            {
                "resourceType": "Parameters",
                "parameter": [
                    _param("result", False),
                    _param("message", f"未知的编码系统 {system}"),
                    _param("code", code[:64]),
                ],
            }
        )
    kind = info.kind if info else _guess_kind(code)
    term = _terminology()
    out: list[dict] = []
    if info is not None and info.family == "gl":
        entry = term.translate(kind, code)
        result = entry is not None
        message = (
            f"国临版编码有效，官方映射到医保版 {entry.target_code}（{entry.target_name}）"
            if entry
            else f"{code[:64]} 不在国临版映射表中"
        )
        out += [_param("result", result), _param("message", message)]
        if entry:
            out.append(_param("display", entry.source_name or entry.source_code))
    else:
        v = term.validate(kind, code)
        out.append(_param("result", v.valid))
        if v.display:
            out.append(_param("display", v.display))
        if v.code:
            out.append({"name": "code", "valueCode": v.code})
        out.append({"name": "status", "valueCode": v.status})
        if not v.valid:
            msg = "；".join(v.reasons) or f"{code[:64]} 不是有效编码"
            if v.suggestions:
                msg += "。建议：" + "、".join(f"{s.code} {s.display}" for s in v.suggestions[:5])
            out.append(_param("message", msg))
        elif v.normalized and v.normalized.changes:
            out.append(_param("message", "编码已规范化：" + "；".join(v.normalized.changes)))
        if v.valid and display and display.strip() != v.display:
            out.append(_param("message", f"display “{display[:60]}” 与医保版名称 “{v.display}” 不一致"))
    out.append({"name": "system", "valueUri": info.uri if info else canonical_for_kind(kind)})
    return _respond({"resourceType": "Parameters", "parameter": out})


# --- ConceptMap/$translate ----------------------------------------------------------------------
def _is_equivalent(path: str) -> bool:
    """Official and curated maps are equivalences; WHO 亚目 and text matches are only related."""
    return path.endswith(("-exact", "-official-map")) or path.startswith("local-map")


_MAP_URLS = {CONCEPTMAP_DX: "dx", CONCEPTMAP_PX: "px"}


@blueprint.route("/ConceptMap/$translate", methods=["GET", "POST"])
@_operation
def translate(params: dict) -> Response:
    from mappings.resolve import map_codeable_concept, resolve_code

    term = _terminology()
    url = _text(params, "url")
    code = _text(params, "sourceCode", max_len=10_000) or _text(params, "code", max_len=10_000)
    system = _text(params, "sourceSystem") or _text(params, "system")
    cc = params.get("codeableConcept") or params.get("sourceCodeableConcept")
    kind = _MAP_URLS.get(url or "")
    if url and kind is None:
        raise _BadRequest(f"未知的 ConceptMap {url}", 404, "not-found")
    if kind is None and system:
        info = identify_system(system)
        kind = info.kind if info else None
    if kind is None:
        target = _text(params, "targetSystem") or _text(params, "targetsystem")
        kind = {YB_ICD9CM3: "px", YB_ICD10: "dx"}.get(target or "", "dx")
    if isinstance(cc, dict):
        res = map_codeable_concept(term, kind, cc)
    elif code is not None:
        res = resolve_code(term, kind, code, system)
    else:
        raise _BadRequest("缺少参数 sourceCode（或 code / codeableConcept）", code="required")
    out = [_param("result", res.code is not None and not res.needs_confirmation)]
    out.append(_param("message", "；".join(res.reasons) or ("已映射" if res.code else "未映射")))
    target_system = canonical_for_kind(kind)
    if res.code:
        out.append(
            {
                "name": "match",
                "part": [
                    {
                        "name": "relationship",
                        "valueCode": "equivalent" if _is_equivalent(res.path) else "related-to",
                    },
                    {
                        "name": "concept",
                        "valueCoding": {"system": target_system, "code": res.code, "display": res.display},
                    },
                    {"name": "originMap", "valueCanonical": CONCEPTMAP_DX if kind == "dx" else CONCEPTMAP_PX},
                    {
                        "name": "property",
                        "part": [
                            {"name": "code", "valueCode": "path"},
                            {"name": "value", "valueString": res.path},
                        ],
                    },
                    {
                        "name": "property",
                        "part": [
                            {"name": "code", "valueCode": "confidence"},
                            {"name": "value", "valueDecimal": res.confidence},
                        ],
                    },
                ],
            }
        )
    for cand in res.candidates:
        if cand.code == res.code:
            continue
        out.append(
            {
                "name": "match",
                "part": [
                    {"name": "relationship", "valueCode": "related-to"},
                    {
                        "name": "concept",
                        "valueCoding": {"system": target_system, "code": cand.code, "display": cand.display},
                    },
                    {
                        "name": "property",
                        "part": [
                            {"name": "code", "valueCode": "score"},
                            {"name": "value", "valueDecimal": cand.score},
                        ],
                    },
                    {"name": "message", "valueString": "候选编码，需要编码员确认"},
                ],
            }
        )
    return _respond({"resourceType": "Parameters", "parameter": out})


# --- ValueSet/$expand ---------------------------------------------------------------------------
_VALUESETS = {
    VALUESET_DX: "dx",
    VALUESET_PX: "px",
    YB_ICD10: "dx",
    YB_ICD9CM3: "px",
}


def _int_param(params: dict, name: str, default: int, lo: int, hi: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError) as exc:
        raise _BadRequest(f"参数 {name} 必须是整数") from exc
    return max(lo, min(value, hi))


@blueprint.route("/ValueSet/$expand", methods=["GET", "POST"])
@_operation
def expand(params: dict) -> Response:
    term = _terminology()
    url = _text(params, "url")
    kind: str | None = None
    if url:
        kind = _VALUESETS.get(url)
        if kind is None:
            raise _BadRequest(f"未知的 ValueSet {url}", 404, "not-found")
    text_filter = _text(params, "filter", max_len=10_000)
    count = _int_param(params, "count", 20, 0, MAX_COUNT)
    offset = _int_param(params, "offset", 0, 0, 10_000_000)
    contains: list[dict] = []
    if text_filter:
        hits = term.search(text_filter, kind=kind, limit=min(offset + count, MAX_COUNT))
        total = len(hits)
        for k, hit in hits[offset : offset + count]:
            contains.append({"system": canonical_for_kind(k), "code": hit.code, "display": hit.display})
    else:
        kinds = (kind,) if kind else ("dx", "px")
        tables = [term.table(k) for k in kinds]
        total = sum(len(t) for t in tables)
        pos = offset
        for t in tables:
            if pos >= len(t):
                pos -= len(t)
                continue
            for i in range(pos, min(len(t), pos + count - len(contains))):
                contains.append({"system": t.system, "code": t.codes[i], "display": t.names[i]})
            pos = 0
            if len(contains) >= count:
                break
    expansion: dict[str, Any] = {
        "identifier": f"urn:uuid:{uuid.uuid4()}",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "total": total,
        "offset": offset,
        "parameter": [{"name": "count", "valueInteger": count}],
    }
    if text_filter:
        expansion["parameter"].append({"name": "filter", "valueString": text_filter[:200]})
    if contains:
        expansion["contains"] = contains
    resource = {
        "resourceType": "ValueSet",
        "status": "active",
        "name": "YB_ICD10" if kind == "dx" else "YB_ICD9CM3" if kind == "px" else "YB_ALL",
        "title": term.label,
        "expansion": expansion,
    }
    if kind:
        resource["url"] = VALUESET_DX if kind == "dx" else VALUESET_PX
    return _respond(resource)


# --- metadata -----------------------------------------------------------------------------------
_OPERATIONS = {  # resource type → (operation name, its standard OperationDefinition)
    "CodeSystem": (
        ("lookup", "http://hl7.org/fhir/OperationDefinition/CodeSystem-lookup"),
        ("validate-code", "http://hl7.org/fhir/OperationDefinition/CodeSystem-validate-code"),
    ),
    "ConceptMap": (("translate", "http://hl7.org/fhir/OperationDefinition/ConceptMap-translate"),),
    "ValueSet": (("expand", "http://hl7.org/fhir/OperationDefinition/ValueSet-expand"),),
}


@blueprint.route("/metadata", methods=["GET"])
def metadata() -> Response:
    """``GET /fhir/metadata``: a FHIR R5 CapabilityStatement naming the terminology operations, so a
    FHIR client (or the FHIR validator) can discover them; ``?mode=terminology`` answers the
    TerminologyCapabilities with the code systems and versions actually loaded."""
    mode = request.args.get("mode", "full")
    if mode not in ("full", "normative", "terminology"):
        return _outcome(f"不支持的 mode {mode[:40]}（可用：full、terminology）", 400, "not-supported")
    settings = get_app_data().settings
    public = settings.server.public_base_url if settings is not None else None  # behind a reverse proxy
    base = (public or request.url_root).rstrip("/") + (blueprint.url_prefix or "")
    common: dict[str, Any] = {
        "status": "active",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "kind": "instance",
        "software": {"name": "dip-cds", "version": __version__},
        "implementation": {"description": "dip-cds 医保版 ICD-10 / ICD-9-CM-3 术语服务", "url": base},
    }
    if mode == "terminology":
        return _respond({"resourceType": "TerminologyCapabilities", **common, **_terminology_capabilities()})
    resources = [
        {"type": rtype, "operation": [{"name": name, "definition": url} for name, url in operations]}
        for rtype, operations in _OPERATIONS.items()
    ]
    return _respond(
        {
            "resourceType": "CapabilityStatement",
            **common,
            "fhirVersion": "5.0.0",
            "format": ["json"],
            "rest": [{"mode": "server", "resource": resources}],
        }
    )


def _terminology_capabilities() -> dict[str, Any]:
    term = _terminology()
    content = "example" if term.is_sample else "complete"  # the built-in sample holds a few hundred codes
    code_systems = [
        {"uri": system, "version": [{"code": table.version, "isDefault": True}], "content": content}
        for system, table in ((YB_ICD10, term.dx), (YB_ICD9CM3, term.px))
    ]
    return {
        "codeSystem": code_systems,
        "expansion": {"hierarchical": False, "paging": True, "textFilter": "代码、名称、拼音首字母、同义词"},
        "validateCode": {"translations": True},
        "translation": {"needsMap": False},
    }
