"""Cost so far from FHIR ChargeItems: the documented mapping, unknown stays unknown."""

from __future__ import annotations

from decimal import Decimal

from costing import FEE_CATEGORY_EXTENSION, PriceItem, PriceList, cost_so_far
from hooks.demo_fhir import DEMO_DATA_DIR, FhirStore
from tests.demo_fhir_helpers import demo_request, entries


def charge(cid, amount=None, status="billed", encounter="e1", category=None, **extra):
    item = {
        "resourceType": "ChargeItem",
        "id": cid,
        "status": status,
        "context": {"reference": f"Encounter/{encounter}"},
    }
    if amount is not None:
        item["priceOverride"] = {"value": amount, "currency": "CNY"}
    if category:
        item["extension"] = [{"url": FEE_CATEGORY_EXTENSION, "valueCode": category}]
    item.update(extra)
    return item


def test_price_override_is_the_line_total_and_categories_come_from_the_extension():
    result = cost_so_far(
        [charge("a", 40, category="01"), charge("b", 1850.5, category="手术费"), charge("c", 20)]
    )
    assert result.total == Decimal("1910.50")
    assert result.by_category == {
        "01": Decimal("40.00"),
        "06": Decimal("1850.50"),
        "unclassified": Decimal("20.00"),
    }
    assert result.item_count == 3 and result.complete and result.source == "ChargeItem"


def test_r5_components_and_list_prices():
    prices = PriceList.from_items([PriceItem("250101001", "血常规", Decimal("20"), "04")], source="t")
    items = [
        charge(
            "total", totalPriceComponent={"type": "base", "amount": {"value": "60.00", "currency": "CNY"}}
        ),
        charge("unit", unitPriceComponent={"type": "base", "amount": {"value": 8}}, quantity={"value": 3}),
        charge("list", code={"coding": [{"code": "250101001"}]}, quantity={"value": 2}, factorOverride=0.5),
    ]
    result = cost_so_far(items, prices=prices)
    assert result.total == Decimal("60.00") + Decimal("24.00") + Decimal("20.00")
    assert result.by_category["04"] == Decimal("20.00")  # category from the price list


def test_only_billable_or_billed_items_of_the_encounter_count():
    items = [
        charge("ok", 100),
        charge("planned", 500, status="planned"),
        charge("aborted", 500, status="aborted"),
        charge("error", 500, status="entered-in-error"),
        charge("other-stay", 900, encounter="e2"),
        charge("refund", -30),
    ]
    result = cost_so_far(items, encounter_id="e1")
    assert result.total == Decimal("70.00") and result.item_count == 2 and result.excluded_count == 4


def test_items_without_an_amount_are_reported_not_zeroed():
    result = cost_so_far(
        [
            charge("a", 100),
            charge("b"),
            charge("c", {"bad": 1}),
            charge("usd", None, priceOverride={"value": 5, "currency": "USD"}),
        ]
    )
    assert result.total == Decimal("100.00") and not result.complete
    reasons = dict(result.unvalued)
    assert set(reasons) == {"ChargeItem/b", "ChargeItem/c", "ChargeItem/usd"}
    assert "USD" in reasons["ChargeItem/usd"]


def test_no_charge_items_means_unknown_never_zero():
    assert cost_so_far(None) is None
    assert cost_so_far([]) is None
    assert cost_so_far({"resourceType": "Bundle", "type": "searchset", "total": 0}) is None
    assert cost_so_far({"resourceType": "OperationOutcome", "issue": []}) is None
    assert cost_so_far([charge("only-unvalued")]) is None
    assert cost_so_far([charge("planned", 10, status="planned")]) is None


def test_the_prefetched_searchset_of_a_demo_stay():
    prefetch = demo_request("order-sign-stroke-high-cost")["prefetch"]
    result = cost_so_far(prefetch["chargeItems"], encounter_id="demo-enc-stroke")
    store = FhirStore.from_directory(DEMO_DATA_DIR)
    expected = sum(
        Decimal(str(item["priceOverride"]["value"]))
        for item in store.by_type["ChargeItem"].values()
        if item["context"]["reference"] == "Encounter/demo-enc-stroke"
    )
    assert result.total == expected == Decimal("7458.80")
    assert set(result.by_category) <= {f"{n:02d}" for n in range(1, 15)}


def test_the_pneumonia_stay_mixes_every_charge_item_shape():
    result = cost_so_far(demo_request("encounter-discharge-pneumonia")["prefetch"]["chargeItems"])
    assert not result.complete and len(result.unvalued) == 1  # one item carries no amount
    assert result.excluded_count == 2  # planned and aborted
    billed = [
        i
        for i in entries(demo_request("encounter-discharge-pneumonia")["prefetch"]["chargeItems"])
        if i["status"] == "billed"
    ]
    r4 = sum(Decimal(str(i["priceOverride"]["value"])) for i in billed if "priceOverride" in i)
    r5 = sum(
        Decimal(str(i["totalPriceComponent"]["amount"]["value"]))
        for i in billed
        if "totalPriceComponent" in i
    )
    assert r5 == Decimal("60") and any(
        Decimal(str(i["priceOverride"]["value"])) < 0 for i in billed if "priceOverride" in i
    )
    assert result.total == r4 + r5  # R4 items (incl. a refund) + one R5 item
