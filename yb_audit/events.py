"""The ``assessment`` event of 医保智能审核 (``kind = "audit"``), as plain JSON data, no patient names.

Shape: docs/architecture.md ("The assessment event"). Money as strings of Decimal yuan, times
ISO-8601 UTC.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

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
