"""The cost of the draft orders being signed, from the hospital price list only.

Each order is priced by the first of its codings found on the price list; an order with no code, an
unknown code, no medication picked yet, or a type we cannot price is reported as NOT priced with the
reason — a price is never guessed. Quantity: ``ServiceRequest.quantityQuantity`` (default 1: one
procedure/examination), ``MedicationRequest.dispenseRequest.quantity`` (when absent, one unit is
assumed and the line is flagged, so the card can say it is an estimate).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from costing.fhir_input import as_decimal, codings, concept_text, iter_resources, resource_label, to_cents
from costing.prices import PriceItem, PriceList

_CENT = Decimal("0.01")
PRICEABLE_TYPES = ("ServiceRequest", "MedicationRequest")
NOT_ORDERED_STATUSES = ("revoked", "entered-in-error", "completed", "cancelled", "stopped")


@dataclass(frozen=True, slots=True)
class PricedLine:
    resource: str  # "ServiceRequest/sr-1"
    code: str
    name: str
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal
    category: str
    quantity_assumed: bool = False


@dataclass(frozen=True, slots=True)
class UnpricedLine:
    resource: str
    description: str
    reason: str


@dataclass(frozen=True)
class OrderCost:
    """Sum of the priced draft orders; ``unpriced`` lists what is NOT in the sum and why."""

    total: Decimal
    by_category: dict[str, Decimal]
    priced: tuple[PricedLine, ...]
    unpriced: tuple[UnpricedLine, ...]
    excluded: tuple[UnpricedLine, ...] = ()  # orders not counted at all (revoked, entered in error…)
    price_source: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def complete(self) -> bool:
        """Every order that counts was priced."""
        return not self.unpriced

    @property
    def estimated(self) -> bool:
        """Some line assumed a quantity or the price list is the sample one."""
        return any(line.quantity_assumed for line in self.priced) or bool(self.notes)


def _quantity(resource: dict[str, Any]) -> tuple[Decimal | None, bool, str | None]:
    """(quantity, assumed?, problem)."""
    if resource.get("resourceType") == "ServiceRequest":
        raw = resource.get("quantityQuantity")
        if raw is None:
            return Decimal(1), False, None
        value = as_decimal(raw.get("value")) if isinstance(raw, dict) else None
    else:
        dispense = resource.get("dispenseRequest")
        raw = dispense.get("quantity") if isinstance(dispense, dict) else None
        if raw is None:
            return Decimal(1), True, None
        value = as_decimal(raw.get("value")) if isinstance(raw, dict) else None
    if value is None or value <= 0:
        return None, False, "数量无效"
    return value, False, None


def _medication_concept(resource: dict[str, Any]) -> tuple[Any, str | None]:
    """The medication CodeableConcept (R4 medication[x], R5 medication.concept, contained Medication)."""
    concept = resource.get("medicationCodeableConcept")
    reference = resource.get("medicationReference")
    medication = resource.get("medication")  # R5 CodeableReference
    if isinstance(medication, dict):
        concept = concept or medication.get("concept")
        reference = reference or medication.get("reference")
    if concept:
        return concept, None
    if isinstance(reference, dict) and isinstance(reference.get("reference"), str):
        ref = reference["reference"]
        if ref.startswith("#"):
            for contained in resource.get("contained") or []:
                if isinstance(contained, dict) and contained.get("id") == ref[1:]:
                    return contained.get("code"), None
        if reference.get("display"):
            return {"text": reference["display"]}, f"药品为引用 {ref}，未提供药品编码"
        return None, f"药品为引用 {ref}，未提供药品编码"
    return None, "尚未选择药品"


def _find_price(concept: Any, prices: PriceList) -> tuple[PriceItem | None, str | None]:
    for coding in codings(concept):
        item = prices.get(coding["code"])
        if item is not None:
            return item, coding["code"]
    return None, None


def _describe(resource: dict[str, Any], concept: Any) -> str:
    text = concept_text(concept)
    return f"{text}（{resource_label(resource)}）" if text else resource_label(resource)


def cost_of_orders(draft_orders: Any, prices: PriceList) -> OrderCost:
    """Price the draft orders (a Bundle, a list of resources or of entries) from ``prices``."""
    priced: list[PricedLine] = []
    unpriced: list[UnpricedLine] = []
    excluded: list[UnpricedLine] = []
    by_category: dict[str, Decimal] = {}
    total = Decimal(0)
    resources: Iterable[dict[str, Any]] = iter_resources(draft_orders)
    for resource in resources:
        label = resource_label(resource)
        rtype = resource.get("resourceType")
        if rtype not in PRICEABLE_TYPES:
            unpriced.append(UnpricedLine(label, label, f"{rtype} 类医嘱不在定价范围内"))
            continue
        status = resource.get("status")
        if isinstance(status, str) and status in NOT_ORDERED_STATUSES:
            excluded.append(UnpricedLine(label, label, f"状态为 {status}，不计入"))
            continue
        if rtype == "ServiceRequest":
            concept, problem = resource.get("code"), None
            if not codings(concept):
                problem = "仅有文本，没有项目编码" if concept_text(concept) else "医嘱没有项目编码"
        else:
            concept, problem = _medication_concept(resource)
            if problem is None and not codings(concept):
                problem = "药品仅有文本，没有药品编码" if concept_text(concept) else "尚未选择药品"
        description = _describe(resource, concept)
        if problem:
            unpriced.append(UnpricedLine(label, description, problem))
            continue
        item, matched_code = _find_price(concept, prices)
        if item is None:
            codes = "、".join(c["code"] for c in codings(concept))
            unpriced.append(UnpricedLine(label, description, f"价目表中没有编码 {codes}"))
            continue
        quantity, assumed, quantity_problem = _quantity(resource)
        if quantity is None:
            unpriced.append(UnpricedLine(label, description, quantity_problem or "数量无效"))
            continue
        amount = to_cents(item.unit_price * quantity)
        if amount is None:
            unpriced.append(UnpricedLine(label, description, "金额超出合理范围"))
            continue
        priced.append(
            PricedLine(
                label,
                matched_code or item.code,
                item.name,
                quantity,
                item.unit_price,
                amount,
                item.category,
                assumed,
            )
        )
        total += amount
        by_category[item.category] = by_category.get(item.category, Decimal(0)) + amount
    notes = ("价格来自示例价目表",) if prices.is_sample and priced else ()
    return OrderCost(
        total=total.quantize(_CENT),
        by_category=dict(sorted(by_category.items())),
        priced=tuple(priced),
        unpriced=tuple(unpriced),
        excluded=tuple(excluded),
        price_source=prices.source,
        notes=notes,
    )
