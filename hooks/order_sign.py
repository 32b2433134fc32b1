"""``dip-order-sign``: when orders are signed, the DIP group and remaining budget of the stay.

Handler contract (for the cards issue): ``handle(req: HookRequest) -> list[card dict]`` — use
``req.draft_orders()`` (raw, lenient) for the orders being signed, ``req.resource("patient")``,
``req.resources("conditions" | "procedures" | "chargeItems")`` or ``req.models(key)`` for parsed
models, ``req.notes`` / ``req.unavailable_prefetch()`` to label degraded answers, ``req.fhir`` for
further reads and ``req.app_data.terminology`` / ``.catalogs`` for reference data.
"""

from __future__ import annotations

from typing import Any

from cds_service.registry import HookRequest, cds_service
from hooks import ENCOUNTER_PREFETCH


@cds_service(
    id="dip-order-sign",
    hook="order-sign",
    title="DIP 病种分值与结余预测（签署医嘱）/ DIP group and budget at order signing",
    description=(
        "签署医嘱时预测本次住院的 DIP 病种、支付标准与剩余额度，提示医嘱费用对结余的影响。"
        " Predicts the stay's DIP group, payment standard and remaining budget when orders are signed."
    ),
    prefetch=ENCOUNTER_PREFETCH,
    required_prefetch={"patient", "encounter"},
)
def handle(req: HookRequest) -> list[dict[str, Any]]:
    """No cards yet: the DIP cards are built by the hook-services issue."""
    return []
