"""The crash sites a black-box audit found, one regression test each: client data that used to end
in an unhandled 500 now gets a clear 4xx or a labelled degraded answer."""

from __future__ import annotations

import copy
import io
import json
from decimal import Decimal

import pytest

from cds_service.registry import unpack
from costing import cost_of_orders, cost_so_far, load_prices
from tests.service_helpers import CHARGE_ITEM, ENCOUNTER, hook_request, make_app, searchset


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    return make_app(tmp_path_factory.mktemp("hostile"), logging={"level": "CRITICAL"}).test_client()


def post(client, service: str, body) -> object:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(f"/cds-services/{service}", data=raw, content_type="application/json")


def charge(**fields) -> dict:
    item = copy.deepcopy(CHARGE_ITEM)
    item.update(fields)
    return item


def test_a_huge_price_override_is_an_unvalued_item_not_a_decimal_overflow(client):
    huge = charge(priceOverride={"value": "9e999999", "currency": "CNY"})
    ok = charge(id="ch2", priceOverride={"value": 12.5, "currency": "CNY"})
    cost = cost_so_far(searchset(huge, ok))
    assert cost.total == Decimal("12.50") and cost.unvalued[0][0] == "ChargeItem/ch1"
    body = hook_request("order-sign")
    body["prefetch"]["chargeItems"] = searchset(huge, charge(id="ch3", priceOverride={"value": 1e308}))
    assert post(client, "dip-order-sign", body).status_code == 200


def test_a_huge_quantity_leaves_the_line_unpriced_or_unvalued(client):
    prices = load_prices(None)
    assert prices.get("47.0100") is not None  # the sample list prices this operation

    def order(quantity) -> dict:
        return {
            "resourceType": "ServiceRequest",
            "id": f"sr-{quantity}",
            "status": "draft",
            "code": {"coding": [{"code": "47.0100"}]},
            "quantityQuantity": {"value": quantity},
        }

    cost = cost_of_orders([order(1e30), order(1e11), order(2)], prices)
    assert [line.reason for line in cost.unpriced] == ["数量无效", "金额超出合理范围"]
    assert cost.total == 2 * prices.get("47.0100").unit_price
    product = charge(unitPriceComponent={"amount": {"value": 1e12}}, quantity={"value": 1e12})
    assert cost_so_far(searchset(product)) is None  # the only item cannot be valued: cost unknown
    body = hook_request("order-sign")
    body["context"]["draftOrders"]["entry"].append({"resource": order(1e30)})
    assert post(client, "dip-order-sign", body).status_code == 200


@pytest.mark.parametrize("status", [["in-progress"], {"code": "in-progress"}])
def test_a_list_or_object_encounter_status_is_not_an_open_stay(client, status):
    body = hook_request("patient-view")
    body["prefetch"]["encounter"] = dict(ENCOUNTER, status=status)
    body["prefetch"]["openEncounters"] = searchset(dict(ENCOUNTER, status=status))
    response = post(client, "dip-patient-view", body)
    assert response.status_code == 200 and response.get_json()["cards"] == []


@pytest.mark.parametrize(
    "klass", [[{"code": ["IMP"]}], {"code": ["IMP"]}, {"coding": [{"code": {"x": 1}}]}, {"coding": 7}]
)
def test_list_or_object_values_in_encounter_class_are_tolerated(client, klass):
    for hook, service in (
        ("order-sign", "dip-order-sign"),
        ("encounter-discharge", "dip-encounter-discharge"),
    ):
        body = hook_request(hook)
        body["prefetch"]["encounter"] = dict(ENCOUNTER, **{"class": klass})
        assert post(client, service, body).status_code == 200


@pytest.mark.parametrize("extension", [5, True, {"url": "fee-category", "valueCode": "06"}, "06"])
def test_a_charge_item_extension_that_is_not_an_array_is_ignored(client, extension):
    item = charge(priceOverride={"value": 30, "currency": "CNY"}, extension=extension)
    assert cost_so_far(searchset(item)).total == Decimal("30.00")
    body = hook_request("order-sign")
    body["prefetch"]["chargeItems"] = searchset(item)
    assert post(client, "dip-order-sign", body).status_code == 200


def test_a_lone_surrogate_in_a_code_is_a_clear_400(client):
    body = hook_request("order-sign")
    body["prefetch"]["conditions"]["entry"][0]["resource"]["code"]["coding"][0]["code"] = "K35\ud800"
    response = post(client, "dip-order-sign", json.dumps(body).encode())  # sent as the escape \\ud800
    assert response.status_code == 400
    assert "unpaired surrogate" in response.get_json()["issue"][0]["diagnostics"]
    emoji = hook_request("order-sign", extension={"note": "\U0001f600"})  # a proper pair is fine
    assert post(client, "dip-order-sign", json.dumps(emoji).encode()).status_code == 200


def test_a_lone_surrogate_in_feedback_is_a_clear_400(client):
    feedback = {
        "feedback": [{"card": "c\udfff", "outcome": "accepted", "outcomeTimestamp": "2026-12-03T08:00:00Z"}]
    }
    response = client.post(
        "/cds-services/dip-order-sign/feedback", data=json.dumps(feedback), content_type="application/json"
    )
    assert response.status_code == 400


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_a_timestamp_outside_utc_is_400_in_feedback_and_in_the_summary(client, stamp):
    feedback = {"feedback": [{"card": "c1", "outcome": "overridden", "outcomeTimestamp": stamp}]}
    response = client.post("/cds-services/dip-order-sign/feedback", json=feedback)
    assert response.status_code == 400 and "out of range" in response.get_data(as_text=True)
    summary = client.get("/cds-services/dip-order-sign/feedback/summary", query_string={"since": stamp})
    assert summary.status_code == 400 and "out of range" in summary.get_data(as_text=True)


@pytest.mark.parametrize("search", [["match"], "match", 3])
def test_unpack_does_not_assume_entry_search_is_an_object(search):
    bundle = {
        "resourceType": "Bundle",
        "entry": [{"resource": {"resourceType": "Condition"}, "search": search}],
    }
    assert unpack(bundle) == [{"resourceType": "Condition"}]
    assert unpack({"resourceType": "Bundle", "entry": 7}) == []


def test_a_prefetch_resource_of_the_wrong_type_is_not_silently_accepted(client):
    body = hook_request("order-sign")
    body["prefetch"]["patient"] = {"resourceType": "Observation", "id": "o1"}
    response = post(client, "dip-order-sign", body)
    assert response.status_code == 412  # required: named, not read as the patient
    assert "wrong resourceType 'Observation', expected Patient" in response.get_data(as_text=True)
    body = hook_request("order-sign")
    body["prefetch"]["conditions"] = {"resourceType": "Patient", "id": "p"}  # optional: degraded with a note
    response = post(client, "dip-order-sign", body)
    assert response.status_code == 200
    assert "wrong resourceType 'Patient', expected Condition or Bundle" in json.dumps(
        response.get_json(), ensure_ascii=False
    )


def test_a_chunked_body_over_the_limit_is_413(tmp_path):
    small = make_app(tmp_path, server={"max_body_bytes": 2048}, logging={"level": "CRITICAL"}).test_client()
    body = json.dumps(hook_request("order-sign", extension={"pad": "x" * 4096})).encode()
    response = small.post(
        "/cds-services/dip-order-sign",
        input_stream=io.BytesIO(body),
        headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
    )
    assert response.status_code == 413
    assert response.get_json()["resourceType"] == "OperationOutcome"
