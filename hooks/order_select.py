"""``dip-order-select``: as an order is picked, its cost against the stay's DIP budget.

The card is the order-sign card computed over every order in ``draftOrders`` (the selection is a
subset of them): the doctor sees the stay's position before anything is signed.
"""

from __future__ import annotations

from typing import Any

from cds_service.registry import HookRequest, cds_service
from hooks import ENCOUNTER_PREFETCH
from hooks.order_sign import order_cards


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
    return order_cards(req)
