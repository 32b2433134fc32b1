"""The ``assessment`` event a DIP hook publishes after answering (the console records it).

Built from the request's one :class:`~hooks.assessment.Assessment` and the cards it produced — the
same numbers the doctor saw: the stay's ids, department and attending doctor as the Encounter names
them, the predicted group and the cost position. Never a patient name. Money as strings of Decimal
yuan, the time in UTC (contract: docs/architecture.md, "the assessment event").
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from cds_service.registry import HookRequest
from hooks.assessment import Assessment
from hooks.card_views import KINDS, basis_view, cost_position

ATTENDING = "ATND"


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value.quantize(Decimal("0.01")))


def _first_coding(concept: Any) -> tuple[str | None, str | None]:
    if isinstance(concept, list):  # R5: serviceType is a list of CodeableReferences
        concept = concept[0] if concept else None
    if isinstance(concept, Mapping) and isinstance(concept.get("concept"), Mapping):
        concept = concept["concept"]
    if not isinstance(concept, Mapping):
        return None, None
    for coding in concept.get("coding") or []:
        if isinstance(coding, Mapping) and (coding.get("code") or coding.get("display")):
            return coding.get("code"), coding.get("display") or concept.get("text")
    return None, concept.get("text") if isinstance(concept.get("text"), str) else None


def _reference(ref: Any) -> tuple[str | None, str | None]:
    """(id, display) of a Reference; the id is the last path segment, as the HIS sent it."""
    if not isinstance(ref, Mapping):
        return None, None
    target = ref.get("reference")
    ident = target.rsplit("/", 1)[-1] if isinstance(target, str) and target else None
    if ident is None and isinstance(ref.get("identifier"), Mapping):
        ident = ref["identifier"].get("value")
    display = ref.get("display")
    return ident, display if isinstance(display, str) else None


def department(encounter: Mapping[str, Any] | None) -> dict[str, str | None] | None:
    """Encounter.serviceType, else serviceProvider, else the first location."""
    enc = encounter or {}
    code, name = _first_coding(enc.get("serviceType"))
    if not (code or name):
        code, name = _reference(enc.get("serviceProvider"))
    if not (code or name):
        locations = [loc for loc in enc.get("location") or [] if isinstance(loc, Mapping)]
        code, name = _reference(locations[0].get("location")) if locations else (None, None)
    return {"code": code or name, "name": name or code} if (code or name) else None


def attending(encounter: Mapping[str, Any] | None, user_id: str | None) -> dict[str, str | None] | None:
    """The participant typed ATND, else the only untyped one, else the signed-in user."""
    people = [p for p in (encounter or {}).get("participant") or [] if isinstance(p, Mapping)]

    def typed(p: Mapping[str, Any]) -> set[str | None]:
        return {
            c.get("code")
            for t in p.get("type") or []
            if isinstance(t, Mapping)
            for c in t.get("coding") or []
            if isinstance(c, Mapping)
        }

    chosen = next((p for p in people if ATTENDING in typed(p)), None)
    if chosen is None:
        untyped = [p for p in people if not p.get("type")]
        chosen = untyped[0] if len(untyped) == 1 else None
    if chosen is not None:
        ident, name = _reference(chosen.get("individual") or chosen.get("actor"))
        if ident or name:
            return {"id": ident or name, "name": name}
    if user_id:
        return {"id": user_id.rsplit("/", 1)[-1], "name": None}
    return None


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
