"""The draft orders of order-sign / order-select: their cost, and the operations among them that can
move the stay's group (a draft ServiceRequest coded as a procedure).

Diagnostic examinations (an MRI, a CT) are left out: they are rarely coded on the settlement list
and must not read as "this order moves the stay". Charge-item codes and free text never count.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from costing import OrderCost, cost_of_orders
from grouper import OpType
from hooks.context import DipContext
from hooks.procedure_types import canonical_type
from mappings import resolve_coding

MAX_ORDERS = 1000  # a bundle larger than this is priced in part, and the card says so
ORDER_STATUSES_IGNORED = frozenset({"revoked", "entered-in-error", "completed", "cancelled"})
GROUP_MOVING_TYPES = frozenset({OpType.SS, OpType.ZLXCZ})  # operations/interventions, therapeutic procedures


@dataclass(frozen=True, slots=True)
class DraftProcedure:
    """A draft operation or therapeutic procedure: 医保版 code, name, type (SS / ZLXCZ)."""

    code: str
    name: str
    type: str


@dataclass(frozen=True)
class DraftOrders:
    count: int  # orders in the bundle
    cost: OrderCost  # of the first MAX_ORDERS
    procedures: tuple[DraftProcedure, ...]

    @property
    def truncated(self) -> bool:
        return self.count > MAX_ORDERS


def _concept(order: Mapping[str, Any]) -> Mapping[str, Any] | None:
    concept = order.get("code")
    if isinstance(concept, Mapping) and isinstance(concept.get("concept"), Mapping):
        concept = concept["concept"]  # R5 CodeableReference
    return concept if isinstance(concept, Mapping) else None


def draft_procedures(orders: list[dict[str, Any]], ctx: DipContext, terminology: Any) -> list[DraftProcedure]:
    """Draft ServiceRequests whose coding the mapping layer resolves to a procedure code (国临版 and
    hospital codes mapped; a misspelt or unknown system URI only when the display confirms the code)
    of a group-moving type, each code once, in order."""
    found: list[DraftProcedure] = []
    seen: set[str] = set()
    for order in orders[:MAX_ORDERS]:
        status = order.get("status")
        if order.get("resourceType") != "ServiceRequest" or (
            isinstance(status, str) and status in ORDER_STATUSES_IGNORED
        ):
            continue
        concept = _concept(order)
        codings = concept.get("coding") if concept is not None else None
        for coding in codings if isinstance(codings, list) else []:
            res = resolve_coding(terminology, "px", coding, ctx.local_maps, trust_systemless=False)
            if not (res.mapped and res.code) or res.code in seen:
                continue
            kind = canonical_type(ctx.engine.optypes.classify(res.code)[0])
            if kind in GROUP_MOVING_TYPES:
                seen.add(res.code)
                found.append(DraftProcedure(res.code, res.display or str(coding.get("display") or ""), kind))
                break
    return found


def read_draft_orders(orders: list[dict[str, Any]], ctx: DipContext, terminology: Any) -> DraftOrders:
    return DraftOrders(
        count=len(orders),
        cost=cost_of_orders(orders[:MAX_ORDERS], ctx.prices),
        procedures=tuple(draft_procedures(orders, ctx, terminology)),
    )
