"""``dip-encounter-start``: at admission, the likely DIP group and its payment standard.

Handler contract: as in :mod:`hooks.order_sign` (no draft orders; encounterId always present).
"""

from __future__ import annotations

from typing import Any

from cds_service.registry import HookRequest, cds_service
from hooks import ENCOUNTER_PREFETCH


@cds_service(
    id="dip-encounter-start",
    hook="encounter-start",
    title="DIP 入院病种预测 / DIP group forecast at admission",
    description=(
        "入院时根据入院诊断预测 DIP 病种与支付标准，并提示编码问题。"
        " Forecasts the DIP group and payment standard from the admission diagnoses and flags coding issues."
    ),
    prefetch=ENCOUNTER_PREFETCH,
    required_prefetch={"patient", "encounter"},
)
def handle(req: HookRequest) -> list[dict[str, Any]]:
    """No cards yet: the DIP cards are built by the hook-services issue."""
    return []
