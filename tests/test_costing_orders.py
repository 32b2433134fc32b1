"""Cost of the draft orders: priced from the price list only, never guessed."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from costing import PriceItem, PriceList, cost_of_orders, load_prices
from tests.demo_fhir_helpers import demo_request

PRICES = PriceList.from_items(
    [
        PriceItem("47.0100", "腹腔镜下阑尾切除术", Decimal("1850.00"), "06", "次"),
        PriceItem("250101001", "血常规", Decimal("20.00"), "04", "次"),
        PriceItem("XY0001", "注射用头孢曲松钠", Decimal("8.50"), "09", "支"),
    ],
    source="测试价目表",
)


def service_request(rid, *codings, text=None, quantity=None, status="draft"):
    code = {"coding": [{"system": s, "code": c} for s, c in codings]}
    if text:
        code["text"] = text
    resource = {
        "resourceType": "ServiceRequest",
        "id": rid,
        "status": status,
        "intent": "order",
        "code": code,
    }
    if quantity is not None:
        resource["quantityQuantity"] = {"value": quantity}
    return resource


def medication_request(rid, code=None, quantity=None, **extra):
    resource = {"resourceType": "MedicationRequest", "id": rid, "status": "draft", **extra}
    if code:
        resource["medicationCodeableConcept"] = {
            "coding": [{"system": "http://hospital.example.cn/drug", "code": code}]
        }
    if quantity is not None:
        resource["dispenseRequest"] = {"quantity": {"value": quantity}}
    return resource


def test_operation_lab_and_drug_are_priced_and_split_by_fee_category():
    orders = [
        service_request("op", ("http://www.nhsa.gov.cn/CodeSystem/icd9cm3-yb2.0", "47.0100")),
        service_request("lab", ("http://hospital.example.cn/charge", "250101001"), quantity=2),
        medication_request("drug", "XY0001", quantity=4, intent="order"),
    ]
    cost = cost_of_orders(
        {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": o} for o in orders]}, PRICES
    )
    assert cost.total == Decimal("1924.00")
    assert cost.by_category == {"04": Decimal("40.00"), "06": Decimal("1850.00"), "09": Decimal("34.00")}
    assert cost.complete and not cost.estimated
    assert [line.resource for line in cost.priced] == [
        "ServiceRequest/op",
        "ServiceRequest/lab",
        "MedicationRequest/drug",
    ]


def test_the_first_coding_on_the_price_list_prices_the_order():
    order = service_request(
        "ct", ("http://www.nhsa.gov.cn/CodeSystem/icd9cm3-yb2.0", "88.0100x001"), ("local", "250101001")
    )
    (line,) = cost_of_orders([order], PRICES).priced
    assert line.code == "250101001" and line.amount == Decimal("20.00")


def test_nothing_is_guessed_each_unpriced_order_says_why():
    orders = [
        service_request("unknown", ("local", "999999")),
        service_request("text", text="腹部CT平扫"),
        service_request("empty"),
        medication_request("sandbox"),  # the Sandbox before a drug is picked: no intent, no medication
        medication_request("ref", medicationReference={"reference": "Medication/m9"}),
        {"resourceType": "NutritionOrder", "id": "n1", "status": "draft"},
        service_request("zero", ("local", "250101001"), quantity=0),
    ]
    cost = cost_of_orders(orders, PRICES)
    assert cost.total == Decimal("0.00") and cost.priced == () and not cost.complete
    reasons = {line.resource: line.reason for line in cost.unpriced}
    assert "999999" in reasons["ServiceRequest/unknown"]
    assert "仅有文本" in reasons["ServiceRequest/text"]
    assert "没有项目编码" in reasons["ServiceRequest/empty"]
    assert "尚未选择药品" in reasons["MedicationRequest/sandbox"]
    assert "Medication/m9" in reasons["MedicationRequest/ref"]
    assert "NutritionOrder" in reasons["NutritionOrder/n1"]
    assert "数量" in reasons["ServiceRequest/zero"]


def test_a_drug_without_a_dispense_quantity_is_one_unit_and_flagged_as_an_estimate():
    cost = cost_of_orders([medication_request("m", "XY0001")], PRICES)
    assert cost.total == Decimal("8.50") and cost.priced[0].quantity_assumed and cost.estimated


def test_contained_and_r5_medications_are_understood():
    contained = medication_request(
        "c", medicationReference={"reference": "#med"}, dispenseRequest={"quantity": {"value": 2}}
    )
    contained["contained"] = [
        {"resourceType": "Medication", "id": "med", "code": {"coding": [{"code": "XY0001"}]}}
    ]
    r5 = medication_request("r5", medication={"concept": {"coding": [{"code": "xy0001"}]}})
    cost = cost_of_orders([contained, r5], PRICES)
    assert [line.amount for line in cost.priced] == [Decimal("17.00"), Decimal("8.50")]


def test_revoked_orders_are_not_counted():
    cost = cost_of_orders([service_request("x", ("c", "47.0100"), status="revoked")], PRICES)
    assert cost.total == 0 and cost.unpriced == () and cost.excluded[0].resource == "ServiceRequest/x"


def test_garbage_entries_do_not_crash():
    cost = cost_of_orders([None, 3, "x", {"resource": None}, {"resourceType": "OperationOutcome"}], PRICES)
    assert cost.total == 0 and cost.priced == () and cost.unpriced == ()
    assert cost_of_orders(None, PRICES).total == 0


def test_demo_appendicitis_orders_with_the_sample_price_list():
    draft = demo_request("order-sign-appendicitis")["context"]["draftOrders"]
    cost = cost_of_orders(draft, load_prices(None))
    assert cost.complete
    assert cost.total == Decimal("1850") + Decimal("1200") + Decimal("360") + Decimal("680") + Decimal(
        "60"
    ) + Decimal("17")
    assert cost.estimated  # sample prices are labelled
    sandbox = cost_of_orders(
        demo_request("order-sign-sandbox-shape")["context"]["draftOrders"], load_prices(None)
    )
    assert [line.code for line in sandbox.priced] == ["47.0100"] and len(sandbox.unpriced) == 2


@pytest.mark.parametrize("count", [500])
def test_five_hundred_orders_are_priced_quickly(count):
    orders = [service_request(f"o{i}", ("local", "250101001")) for i in range(count)]
    started = time.perf_counter()
    cost = cost_of_orders({"resourceType": "Bundle", "entry": [{"resource": o} for o in orders]}, PRICES)
    assert time.perf_counter() - started < 0.5
    assert cost.total == Decimal("20.00") * count
