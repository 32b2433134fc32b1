"""``dip-encounter-discharge``: at discharge, the final DIP group, settlement estimate and coding checks.

Handler contract: as in :mod:`hooks.order_sign` (no draft orders; encounterId always present).
"""

from __future__ import annotations

from typing import Any

from cds_service.registry import HookRequest, cds_service
from hooks import ENCOUNTER_PREFETCH


@cds_service(
    id="dip-encounter-discharge",
    hook="encounter-discharge",
    title="DIP 出院结算预估与编码校验 / DIP settlement estimate and coding check at discharge",
    description=(
        "出院时预估 DIP 病种、结算金额与偏差类型，并校验主诊断与手术编码。"
        " Estimates the DIP group, settlement amount and deviation band at discharge and checks the coding."
    ),
    prefetch=ENCOUNTER_PREFETCH,
    required_prefetch={"patient", "encounter"},
)
def handle(req: HookRequest) -> list[dict[str, Any]]:
    """No cards yet: the DIP cards are built by the hook-services issue."""
    return []
