"""``dip-order-select``: as an order is picked, its cost against the stay's DIP budget.

Handler contract: as in :mod:`hooks.order_sign`; ``req.context["selections"]`` names the newly
selected orders (validated to exist in ``draftOrders``).
"""

from __future__ import annotations

from typing import Any

from cds_service.registry import HookRequest, cds_service
from hooks import ENCOUNTER_PREFETCH


@cds_service(
    id="dip-order-select",
    hook="order-select",
    title="DIP 医嘱费用提示（选择医嘱）/ DIP cost hint at order selection",
    description=(
        "选择医嘱时提示该医嘱对本次住院 DIP 支付标准剩余额度的影响。"
        " Shows how a selected order affects the remaining DIP budget of the stay."
    ),
    prefetch=ENCOUNTER_PREFETCH,
    required_prefetch={"patient", "encounter"},
)
def handle(req: HookRequest) -> list[dict[str, Any]]:
    """No cards yet: the DIP cards are built by the hook-services issue."""
    return []
