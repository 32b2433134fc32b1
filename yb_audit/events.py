"""The ``assessment`` event of 医保智能审核 (``kind = "audit"``), as plain JSON data, no patient names.

Shape: docs/architecture.md ("The assessment event"). Money as strings of Decimal yuan, times
ISO-8601 UTC.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from costing.fhir_input import codings, reference_id
from yb_audit.model import Finding


def finding_event(finding: Finding) -> dict[str, Any]:
    return {
        "rule_id": finding.rule_id,
        "rule_kind": finding.kind,
        "batch": finding.batch,
        "rule_name": finding.rule_name,
        "severity": finding.severity,
        "order_ref": finding.line_ref,
        "item_code": finding.item_code,
        "item_name": finding.item_name,
        "amount_at_risk": None if finding.amount_at_risk is None else f"{finding.amount_at_risk:.2f}",
        "message": finding.message,
    }


def department_of(encounter: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Encounter.serviceType, else serviceProvider, else the first location (code and name)."""
    if not encounter:
        return None
    service_type = encounter.get("serviceType")
    if isinstance(service_type, list):  # R5: CodeableReference[]
        service_type = (service_type[0] or {}).get("concept") if service_type else None
    for c in codings(service_type):
        return {"code": c.get("code"), "name": c.get("display") or (service_type or {}).get("text")}
    provider = encounter.get("serviceProvider")
    if isinstance(provider, Mapping) and (provider.get("display") or provider.get("reference")):
        return {"code": reference_id(provider, "Organization"), "name": provider.get("display")}
    for item in encounter.get("location") or []:
        location = item.get("location") if isinstance(item, Mapping) else None
        if isinstance(location, Mapping) and (location.get("display") or location.get("reference")):
            return {"code": reference_id(location, "Location"), "name": location.get("display")}
    return None


def attending_of(encounter: Mapping[str, Any] | None, user_id: str | None) -> dict[str, Any] | None:
    """The ATND participant of the encounter, else the user who signs."""
    for participant in (encounter or {}).get("participant") or []:
        if not isinstance(participant, Mapping):
            continue
        types = participant.get("type") or []
        if any(c.get("code") == "ATND" for t in types for c in codings(t)):
            who = participant.get("individual") or participant.get("actor") or {}
            if isinstance(who, Mapping):
                ref = who.get("reference")
                return {
                    "id": ref.rsplit("/", 1)[-1] if isinstance(ref, str) else None,
                    "name": who.get("display"),
                }
    if user_id:
        return {"id": user_id.rsplit("/", 1)[-1], "name": None}
    return None


def assessment(
    *,
    service: str,
    hook: str,
    hook_instance: str,
    channel: str,
    patient_id: str,
    encounter_id: str | None,
    encounter_status: str | None,
    department: Mapping[str, Any] | None,
    attending: Mapping[str, Any] | None,
    findings: Iterable[Finding],
    cards: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    return {
        "kind": "audit",
        "service": service,
        "hook": hook,
        "hook_instance": hook_instance,
        "channel": channel,
        "at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "patient_id": patient_id,
        "encounter_id": encounter_id,
        "encounter_status": encounter_status,
        "department": dict(department) if department else None,
        "attending": dict(attending) if attending else None,
        "dip": None,
        "findings": [finding_event(f) for f in findings],
        "cards": [
            {"uuid": c.get("uuid"), "summary": c.get("summary"), "indicator": c.get("indicator")}
            for c in cards
        ],
    }
