"""Tolerant access to FHIR JSON given as plain dicts (R4, R4B or R5; Bundle, entries or resources).

CDS clients send sloppy shapes (the Sandbox's ``draftOrders`` Bundle has no ``type``; prefetch may
be a searchset Bundle, a single resource, ``null`` or an OperationOutcome); these helpers take all
of them and never raise on malformed input.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

# No bill, price or quantity reaches a trillion: larger values are input errors, and refusing them
# keeps every product and sum far inside Decimal's 28 digits (where quantize would raise).
MAX_MAGNITUDE = Decimal(10) ** 12
_CENT = Decimal("0.01")


def iter_resources(data: Any) -> Iterator[dict[str, Any]]:
    """Resources inside a Bundle / list of resources / list of entries / single resource.

    OperationOutcomes (search warnings or failed prefetch) and non-dict garbage are skipped."""
    if data is None:
        return
    if isinstance(data, dict):
        if data.get("resourceType") == "Bundle":
            entries = data.get("entry")
            for entry in entries if isinstance(entries, list) else []:
                if isinstance(entry, dict):
                    yield from iter_resources(
                        entry.get("resource", entry if "resourceType" in entry else None)
                    )
            return
        if "resourceType" in data:
            if data.get("resourceType") != "OperationOutcome":
                yield data
            return
        if "resource" in data:
            yield from iter_resources(data["resource"])
        return
    if isinstance(data, list | tuple):
        for item in data:
            yield from iter_resources(item)


def as_decimal(value: Any) -> Decimal | None:
    """A finite Decimal of at most :data:`MAX_MAGNITUDE` from a JSON number/string, else None."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() and abs(number) <= MAX_MAGNITUDE else None


def to_cents(amount: Decimal) -> Decimal | None:
    """``amount`` rounded half-up to cents; None when it is beyond :data:`MAX_MAGNITUDE` (a product
    of bounded factors can still be)."""
    if not amount.is_finite() or abs(amount) > MAX_MAGNITUDE:
        return None
    return amount.quantize(_CENT, rounding=ROUND_HALF_UP)


def codings(concept: Any) -> list[dict[str, Any]]:
    """The Codings of a CodeableConcept (R4) or CodeableReference.concept (R5)."""
    if not isinstance(concept, dict):
        return []
    if "concept" in concept and isinstance(concept["concept"], dict):
        concept = concept["concept"]
    found = concept.get("coding")
    if not isinstance(found, list):
        return []
    return [c for c in found if isinstance(c, dict) and isinstance(c.get("code"), str) and c["code"]]


def concept_text(concept: Any) -> str:
    """Human text of a concept: its text, else the first coding display, else the first code."""
    if not isinstance(concept, dict):
        return ""
    if "concept" in concept and isinstance(concept["concept"], dict):
        concept = concept["concept"]
    if isinstance(concept.get("text"), str) and concept["text"].strip():
        return concept["text"].strip()
    for coding in codings(concept):
        if coding.get("display"):
            return str(coding["display"])
    for coding in codings(concept):
        return str(coding["code"])
    return ""


def reference_id(reference: Any, resource_type: str) -> str | None:
    """'Encounter/e1', 'http://x/fhir/Encounter/e1/_history/2' or 'e1' → 'e1' (for resource_type)."""
    if isinstance(reference, dict):
        reference = reference.get("reference")
    if not isinstance(reference, str) or not reference.strip():
        return None
    parts = reference.strip().split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) >= 2 and parts[-2] == resource_type:
        return parts[-1]
    if len(parts) == 1:
        return parts[0]
    return None


def resource_label(resource: dict[str, Any]) -> str:
    rtype = resource.get("resourceType", "?")
    rid = resource.get("id")
    return f"{rtype}/{rid}" if rid else str(rtype)
