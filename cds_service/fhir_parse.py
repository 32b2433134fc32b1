"""Tolerant FHIR parsing: R4B models first (they cover R4 payloads), then R5; never raise.

One malformed resource from a hospital FHIR server must not sink the whole request, so a
resource that fits neither model is dropped with a warning that names its type and the first
problem (never its content: it may identify a patient) and a note the handler can surface.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

log = logging.getLogger("dip_cds.fhir")


@lru_cache(maxsize=256)
def _model_classes(resource_type: str) -> tuple[type, ...]:
    classes: list[type] = []
    try:
        from fhir.resources.R4B import get_fhir_model_class as r4b
    except ImportError:  # pragma: no cover - fhir.resources always ships R4B in 7.x/8.x
        r4b = None
    from fhir.resources import get_fhir_model_class as r5

    for getter in (r4b, r5):
        if getter is None:
            continue
        try:
            classes.append(getter(resource_type))
        except (ValueError, KeyError, AttributeError, ImportError):
            continue
    return tuple(classes)


def _first_problem(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            first = errors()[0]
            loc = ".".join(str(p) for p in first.get("loc", ()))
            return f"{loc}: {first.get('type', 'invalid')}" if loc else str(first.get("type", "invalid"))
        except Exception:  # noqa: BLE001 - diagnostics only
            pass
    return type(exc).__name__


def unpack(resource: Any) -> list[dict[str, Any]]:
    """A searchset/collection Bundle → its entry resources; a single resource → ``[resource]``."""
    if not isinstance(resource, dict):
        return []
    if resource.get("resourceType") == "Bundle":
        out = []
        for entry in resource.get("entry") or []:
            res = entry.get("resource") if isinstance(entry, dict) else None
            # searchset "include"/"outcome" entries are not matches of the query
            mode = (entry.get("search") or {}).get("mode") if isinstance(entry, dict) else None
            if isinstance(res, dict) and isinstance(res.get("resourceType"), str) and mode in (None, "match"):
                out.append(res)
        return out
    return [resource] if isinstance(resource.get("resourceType"), str) else []


def parse_resource(data: dict[str, Any], notes: list[str] | None = None) -> Any | None:
    """Parse one resource with R4B, else R5 models; ``None`` (plus a note) when neither fits."""
    rtype = data.get("resourceType") if isinstance(data, dict) else None
    if not isinstance(rtype, str):
        _drop("unknown", "no resourceType", notes)
        return None
    classes = _model_classes(rtype)
    if not classes:
        _drop(rtype, "unknown resource type", notes)
        return None
    problem = "invalid"
    for cls in classes:
        try:
            return cls.model_validate(data)
        except Exception as exc:  # noqa: BLE001 - pydantic/fhir_core raise several types
            problem = _first_problem(exc)
    _drop(rtype, problem, notes)
    return None


def _drop(rtype: str, reason: str, notes: list[str] | None) -> None:
    log.warning("dropped unparsable FHIR resource", extra={"resource_type": rtype, "reason": reason})
    if notes is not None:
        notes.append(f"{rtype} 资源无法解析，已忽略 / unparsable {rtype} ignored ({reason})")


def parse_all(resources: list[dict[str, Any]], notes: list[str] | None = None) -> list[Any]:
    return [m for m in (parse_resource(r, notes) for r in resources) if m is not None]
