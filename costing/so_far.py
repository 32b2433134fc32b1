"""Cost so far of a stay from its FHIR ChargeItems (mapping documented in README "Hook services and cards").

Amount of one ChargeItem, first that applies:
1. R5 ``totalPriceComponent.amount`` — the total of the line;
2. R4 ``priceOverride`` — "total price of the charge overriding the list price";
3. R5 ``unitPriceComponent.amount`` × ``quantity.value`` (quantity 1 when absent);
4. the price list's unit price for a ``code`` coding × ``quantity.value`` × ``factorOverride``
   (only when a price list is passed);
otherwise the item is counted as *unvalued* and the result says it is incomplete.

Status ``billable``/``billed`` (or missing / ``unknown``) count; ``planned``, ``not-billable``,
``aborted`` and ``entered-in-error`` do not. Negative amounts (refunds, 冲销) count.
费用类别: an extension whose url ends in ``fee-category`` (valueCode / valueCoding / valueString /
valueCodeableConcept), else a ``code`` coding in :data:`FEE_CATEGORY_SYSTEM`, else the price list's
category of the item code, else ``unclassified``.
No ChargeItems, or none that could be valued → ``None`` (unknown), never zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from costing.categories import UNCLASSIFIED, normalize_category
from costing.fhir_input import as_decimal, codings, iter_resources, reference_id, resource_label, to_cents
from costing.prices import PriceList

_CENT = Decimal("0.01")
FEE_CATEGORY_EXTENSION = "http://dip-cds.example.cn/fhir/StructureDefinition/fee-category"
FEE_CATEGORY_SYSTEM = "http://www.nhsa.gov.cn/CodeSystem/fee-category"
COUNTED_STATUSES = ("billable", "billed", "unknown", None)
CURRENCY = "CNY"


@dataclass(frozen=True)
class CostSoFar:
    total: Decimal  # yuan, 2 places
    by_category: dict[str, Decimal]  # '01'…'14' (+ 'unclassified')
    item_count: int  # items counted
    source: str = "ChargeItem"  # or "HIS"
    excluded_count: int = 0  # planned / aborted / other encounters…
    unvalued: tuple[tuple[str, str], ...] = ()  # (ChargeItem/id, reason) not in the total
    as_of: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def complete(self) -> bool:
        return not self.unvalued


def _money(value: Any) -> tuple[Decimal | None, str | None]:
    if not isinstance(value, dict):
        return None, "金额格式无效"
    currency = value.get("currency")
    if currency not in (None, CURRENCY):
        return None, f"币种 {currency} 不是人民币"
    amount = as_decimal(value.get("value"))
    return (amount, None) if amount is not None else (None, "金额无效")


def _quantity(item: dict[str, Any]) -> Decimal:
    quantity = item.get("quantity")
    value = as_decimal(quantity.get("value")) if isinstance(quantity, dict) else None
    return value if value is not None else Decimal(1)


def _amount(item: dict[str, Any], prices: PriceList | None) -> tuple[Decimal | None, str | None]:
    total = item.get("totalPriceComponent")
    if isinstance(total, list):  # some servers send the component as an array
        total = total[0] if total else None
    if isinstance(total, dict) and "amount" in total:
        return _money(total["amount"])
    if "priceOverride" in item:
        return _money(item["priceOverride"])
    unit = item.get("unitPriceComponent")
    if isinstance(unit, list):
        unit = unit[0] if unit else None
    if isinstance(unit, dict) and "amount" in unit:
        amount, problem = _money(unit["amount"])
        return (amount * _quantity(item), None) if amount is not None else (None, problem)
    if prices is not None:
        for coding in codings(item.get("code")):
            price = prices.get(coding["code"])
            if price is not None:
                factor = as_decimal(item.get("factorOverride"))
                return price.unit_price * _quantity(item) * (
                    factor if factor is not None else Decimal(1)
                ), None
        return None, "无金额，且价目表中没有该收费项目"
    return None, "无金额（priceOverride / totalPriceComponent 均未给出）"


def charge_item_amount(
    item: dict[str, Any], prices: PriceList | None = None
) -> tuple[Decimal | None, str | None]:
    """(amount of one ChargeItem in yuan, or None with the reason), by the rules of this module."""
    return _amount(item, prices)


def _category(item: dict[str, Any], prices: PriceList | None) -> str:
    extensions = item.get("extension")
    for extension in extensions if isinstance(extensions, list) else []:
        if not isinstance(extension, dict) or not str(extension.get("url", "")).endswith("fee-category"):
            continue
        candidates = [extension.get("valueCode"), extension.get("valueString")]
        coding = extension.get("valueCoding")
        if isinstance(coding, dict):
            candidates.append(coding.get("code"))
        candidates.extend(c.get("code") for c in codings(extension.get("valueCodeableConcept")))
        for candidate in candidates:
            category = normalize_category(candidate)
            if category:
                return category
    item_codings = codings(item.get("code"))
    for coding in item_codings:
        category = normalize_category(coding["code"]) if coding.get("system") == FEE_CATEGORY_SYSTEM else None
        if category:
            return category
    if prices is not None:
        for coding in item_codings:
            price = prices.get(coding["code"])
            if price is not None:
                return price.category
    return UNCLASSIFIED


def _belongs_to(item: dict[str, Any], encounter_id: str | None) -> bool:
    if encounter_id is None:
        return True
    context = item.get("context") or item.get("encounter")  # R4 context, R5 encounter
    if not context:
        return True  # no context: cannot tell, keep it (the search already scoped it)
    return reference_id(context, "Encounter") == encounter_id


def cost_so_far(
    charge_items: Any, *, encounter_id: str | None = None, prices: PriceList | None = None
) -> CostSoFar | None:
    """Total and 费用类别 split of a stay's ChargeItems; None when the cost is unknown."""
    total = Decimal(0)
    by_category: dict[str, Decimal] = {}
    counted = excluded = 0
    unvalued: list[tuple[str, str]] = []
    seen_any = False
    for item in iter_resources(charge_items):
        if item.get("resourceType") != "ChargeItem":
            continue
        seen_any = True
        if not _belongs_to(item, encounter_id) or item.get("status") not in COUNTED_STATUSES:
            excluded += 1
            continue
        amount, problem = _amount(item, prices)
        if amount is None:
            unvalued.append((resource_label(item), problem or "金额无效"))
            continue
        amount = to_cents(amount)
        if amount is None:
            unvalued.append((resource_label(item), "金额超出合理范围"))
            continue
        category = _category(item, prices)
        total += amount
        by_category[category] = by_category.get(category, Decimal(0)) + amount
        counted += 1
    if not seen_any or counted == 0:
        return None
    return CostSoFar(
        total=total.quantize(_CENT),
        by_category=dict(sorted(by_category.items())),
        item_count=counted,
        excluded_count=excluded,
        unvalued=tuple(unvalued),
    )
