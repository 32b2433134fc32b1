"""``yb-audit-order-sign`` / ``yb-audit-order-select``: 事前提醒 — the draft orders against the
医保智能监管 rules and the stay, before the cost is incurred.

Separate ids from the DIP services, so a hospital enables 智能审核 on its own. Required prefetch:
``patient`` (sex and age drive several rules); the others degrade with a note on the card. An
order-select call audits the selected orders (the other drafts count as orders of the stay).
Every call publishes the ``assessment`` event (``kind = "audit"``).
"""

from __future__ import annotations

from typing import Any

from cds_service.encounter_roles import attending, department
from cds_service.registry import HookRequest, cds_service
from costing.fhir_input import resource_label
from yb_audit.cards import build_cards
from yb_audit.evaluate import evaluate
from yb_audit.events import assessment
from yb_audit.fhir_input import build_case, now_local
from yb_audit.service import audit_context

PATIENT = "Patient/{{context.patientId}}"
PREFETCH = {
    "patient": PATIENT,
    "encounter": "Encounter/{{context.encounterId}}",
    "coverage": "Coverage?patient={{context.patientId}}&status=active",
    "chargeItems": "ChargeItem?patient={{context.patientId}}&context=Encounter/{{context.encounterId}}&_count=1000",
    "medicationRequests": "MedicationRequest?patient={{context.patientId}}&encounter=Encounter/{{context.encounterId}}&_count=500",
    "medicationAdministrations": (
        "MedicationAdministration?patient={{context.patientId}}&context=Encounter/{{context.encounterId}}&_count=1000"
    ),
}
MAX_ORDERS = 200  # drafts audited per call (a larger bundle is audited in part, and the card says so)


def audit_orders(req: HookRequest) -> list[dict[str, Any]]:
    drafts = [o for o in req.draft_orders()[:MAX_ORDERS] if isinstance(o, dict)]
    if not drafts:
        return []
    ctx = audit_context(req.app_data, req.settings, req.extension)
    encounter = req.resource("encounter")
    case, notes = build_case(
        patient=req.resource("patient"),
        encounter=encounter,
        encounter_id=req.encounter_id,
        coverages=req.resources("coverage"),
        charge_items=req.resources("chargeItems"),
        administrations=req.resources("medicationAdministrations"),
        medication_requests=req.resources("medicationRequests"),
        draft_orders=drafts,
        tables=ctx.tables,
        local_maps=ctx.local_maps,
        price_of=ctx.price_of,
        relevant=ctx.rules.knows,
        partners=ctx.rules.partners,
        hospital_level=ctx.hospital_level,
        default_insurance=ctx.settings.default_insurance,
        now=now_local(),
    )
    result = evaluate(ctx.rules, case, ctx.settings, drafts_only=True)
    findings = result.findings
    selections = req.context.get("selections") if req.hook == "order-select" else None
    if selections:
        chosen = set(selections)
        findings = [f for f in findings if f.line_ref in chosen or chosen & set(f.related)]
    by_ref = {resource_label(o): o for o in drafts}
    names = {line.ref: line.name or line.ref for line in case.lines if line.draft}
    notes = list(notes)
    if result.unknown_codes:
        listed = "、".join(names.get(r, r) for r in result.unknown_codes[:10])
        notes.append(
            f"{len(result.unknown_codes)} 条医嘱没有可识别的医保药品 / 医疗服务项目编码，未审核：{listed}"
        )
    notes += result.notes + req.notes
    if len(req.draft_orders()) > MAX_ORDERS:
        notes.append(f"本次共 {len(req.draft_orders())} 条医嘱，只审核了前 {MAX_ORDERS} 条")
    shown = findings if ctx.settings.show_suspicious else [f for f in findings if f.severity == "违规"]
    cards = build_cards(shown, notes, by_ref, ctx.source_label, ctx.settings.group_cards_above)
    req.publish(
        "assessment",
        assessment(
            service=req.service.id,
            hook=req.hook,
            hook_instance=req.hook_instance,
            channel=req.channel,
            patient_id=req.patient_id,
            encounter_id=req.encounter_id,
            encounter_status=(encounter or {}).get("status"),
            department=department(encounter),
            attending=attending(encounter, req.user_id),
            findings=findings,
            cards=cards,
        ),
    )
    return cards


@cds_service(
    id="yb-audit-order-sign",
    hook="order-sign",
    title="医保智能审核（签署医嘱）/ Medical-insurance rule check at order signing",
    description=(
        "签署医嘱时按国家医保基金智能监管规则库审核：限性别、限年龄、限险种、限就医方式、限机构等级、限支付疗程、"
        "重复收费、限定频次、限定周期、限定疗程、主次手术折价。"
        " Checks draft orders against the national medical-insurance supervision rule library."
    ),
    prefetch=PREFETCH,
    required_prefetch={"patient"},
)
def order_sign(req: HookRequest) -> list[dict[str, Any]]:
    return audit_orders(req)


@cds_service(
    id="yb-audit-order-select",
    hook="order-select",
    title="医保智能审核（选择医嘱）/ Medical-insurance rule check at order selection",
    description="选择医嘱时即提示医保不予支付的情形（规则同签署医嘱）。 Same checks, when an order is selected.",
    prefetch=PREFETCH,
    required_prefetch={"patient"},
)
def order_select(req: HookRequest) -> list[dict[str, Any]]:
    return audit_orders(req)
