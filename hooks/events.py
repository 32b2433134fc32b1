"""The ``assessment`` event a DIP hook publishes after answering (the console records it).

Built from the request's one :class:`~hooks.assessment.Assessment` and the cards it produced — the
same numbers the doctor saw: the stay's ids, department and attending doctor as the Encounter names
them, the predicted group and the cost position. Never a patient name. Money as strings of Decimal
yuan, the time in UTC (contract: docs/architecture.md, "the assessment event").
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from cds_service.encounter_roles import attending, department
from cds_service.registry import HookRequest
from hooks.assessment import Assessment
from hooks.card_views import KINDS, basis_view, cost_position


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value.quantize(Decimal("0.01")))


def assessment_event(req: HookRequest, assessment: Assessment, cards: list[dict[str, Any]]) -> dict[str, Any]:
    """The event for one DIP answer: the prediction the cards show, with the cost position the
    doctor saw (the draft orders included on order-sign / order-select)."""
    prediction = assessment.prediction
    result, pricing = prediction.result, prediction.pricing
    position = cost_position(assessment)
    ratio = position.ratio
    band = assessment.context.templates.band_for(ratio, basis_view(pricing, assessment.insurance))
    enc = assessment.data.encounter or {}
    status = enc.get("status")
    return {
        "kind": "dip",
        "service": req.service.id,
        "hook": req.hook,
        "hook_instance": req.hook_instance,
        "channel": req.channel,  # "cds-hooks", or "plugin" through the browser plugin API
        "at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "patient_id": req.patient_id,
        "encounter_id": assessment.data.encounter_id or req.encounter_id,
        "encounter_status": status if isinstance(status, str) else None,
        "department": department(enc),
        "attending": attending(enc, req.user_id),
        "dip": {
            "catalog": assessment.context.label,
            "group_code": result.dip_code if result.grouped else None,
            "group_name": result.group_name if result.grouped else None,
            "group_kind": KINDS.get(result.group_type, "core") if result.grouped else "ungrouped",
            "estimate": prediction.estimate,
            "standard": _money(pricing.payment_standard),
            "cost_so_far": _money(position.cost_so_far),
            "order_cost": _money(position.order_cost),
            "projected": _money(position.projected),
            "projected_ratio": None if ratio is None else str(ratio.quantize(Decimal("0.0001"))),
            "band": band.key if band is not None else None,
        },
        "findings": [],
        "cards": [
            {"uuid": c.get("uuid"), "summary": c.get("summary"), "indicator": c.get("indicator")}
            for c in cards
        ],
    }


def publish(req: HookRequest, assessment: Assessment, cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Publish the assessment behind ``cards`` to the plugins subscribed to ``assessment`` (through
    the app's event bus); returns ``cards``."""
    req.publish("assessment", assessment_event(req, assessment, cards))
    return cards
