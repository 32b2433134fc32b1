"""What a hospital configures changes the cards: the HIS cost endpoint (billing that is not FHIR),
its insurance type (the point value) and the region whose catalog is used."""

from __future__ import annotations

import json

import pytest
from werkzeug.wrappers import Request, Response

from cds_service.app import create_app, preload
from cds_service.config import settings_from_mapping
from tests.demo_fhir_helpers import demo_request, serving
from tests.hooks_helpers import pin_today

EMPTY_SEARCHSET = {"resourceType": "Bundle", "type": "searchset", "total": 0}


@Request.application
def his_app(request: Request) -> Response:
    """A hospital billing system: the cost so far of one stay as the documented JSON."""
    his_app.seen.append((request.path, request.headers.get("X-Api-Key")))
    if request.path == "/cost/demo-enc-stroke":
        body = {"total": "6000.00", "currency": "CNY", "by_category": {"01": "1000.00", "06": "5000.00"}}
        return Response(json.dumps(body), content_type="application/json")
    return Response("{}", status=500, content_type="application/json")


his_app.seen = []


def client_for(tmp_path, **sections):
    app = create_app(
        settings=settings_from_mapping({"logging": {"level": "WARNING"}, **sections}), home=tmp_path
    )
    assert preload(app) == []
    return app.test_client()


@pytest.fixture(autouse=True)
def pinned_today(monkeypatch):
    pin_today(monkeypatch)


def stroke_without_charge_items() -> dict:
    body = demo_request("order-sign-stroke-high-cost")
    body["prefetch"]["chargeItems"] = EMPTY_SEARCHSET  # billing is not on the FHIR server
    return body


def test_without_charge_items_the_cost_so_far_comes_from_the_his_endpoint(tmp_path):
    with serving(his_app) as his:
        his_app.seen.clear()
        client = client_for(
            tmp_path,
            costing={"his": {"url_template": f"{his}/cost/{{encounter_id}}", "headers": {"X-Api-Key": "k1"}}},
        )
        (card,) = client.post("/cds-services/dip-order-sign", json=stroke_without_charge_items()).get_json()[
            "cards"
        ]
    assert his_app.seen == [("/cost/demo-enc-stroke", "k1")]
    assert "| 目前费用 | ¥6,000.00 |" in card["detail"]


def test_an_unreachable_his_endpoint_leaves_the_cost_unknown_and_says_why(tmp_path):
    client = client_for(tmp_path, costing={"his": {"url_template": "http://127.0.0.1:9/cost/{encounter_id}"}})
    (card,) = client.post("/cds-services/dip-order-sign", json=stroke_without_charge_items()).get_json()[
        "cards"
    ]
    assert "费用未知" in card["summary"] and "¥6,000.00" not in card["detail"]
    assert "HIS 费用接口不可用" in card["detail"]


def stroke_without_coverage() -> dict:
    body = demo_request("order-sign-stroke-high-cost")  # full prefetch: no FHIR server needed
    body["prefetch"]["coverage"] = EMPTY_SEARCHSET  # the EMR knows nothing of the patient's insurance
    return body


def test_the_configured_insurance_type_is_the_default_when_the_patient_has_no_coverage(tmp_path):
    # Sample region 999999: 居民 budget point value 5.40; I63.9 scores 1280; the patient is 71 on
    # admission → auxiliary coefficient 1.05 (65 岁及以上); default hospital coefficient 1.
    # Standard = 1280 × 1.05 × 5.40 = 7,257.60.
    client = client_for(tmp_path, dip={"insurance_type": "居民"})
    (card,) = client.post("/cds-services/dip-order-sign", json=stroke_without_coverage()).get_json()["cards"]
    assert "支付标准 ¥7,257.60" in card["summary"]
    assert "参保类型 居民（本院默认设置，未取得患者参保信息）" in card["detail"]


def test_the_patients_coverage_wins_over_the_configured_default(tmp_path):
    # The stroke patient's Coverage says 职工 (310): 1280 × 1.05 × 5.80 = 7,795.20, whatever the default.
    client = client_for(tmp_path, dip={"insurance_type": "居民"})
    body = demo_request("order-sign-stroke-high-cost")
    (card,) = client.post("/cds-services/dip-order-sign", json=body).get_json()["cards"]
    assert "支付标准 ¥7,795.20" in card["summary"]
    assert "参保类型 职工（据患者参保信息：职工基本医疗保险）" in card["detail"]


def test_without_coverage_or_default_the_point_value_is_the_catalogs_estimate_and_says_so(tmp_path):
    client = client_for(tmp_path)
    (card,) = client.post("/cds-services/dip-order-sign", json=stroke_without_coverage()).get_json()["cards"]
    assert "支付标准 ¥8,064.00" in card["summary"]  # 1280 × 1.05 × 6.00 (区域次均费用 6000 / 1000)
    detail = card["detail"]
    assert "参保类型 未知（未取得患者参保信息，本院也未设置默认参保类型）" in detail
    assert "点值 6.00 元/分（按本地区次均费用估算）" in detail
    assert "REGION_AVE_VAL" not in detail and "REGION\\_AVE\\_VAL" not in detail


def test_the_hospital_level_sets_the_hospital_coefficient(tmp_path):
    # Level 3 → 1.05: 1280 × 1.05 (hospital) × 1.05 (age) × 5.80 = 8,184.96.
    client = client_for(tmp_path, dip={"hospital_level": "3"})
    body = demo_request("order-sign-stroke-high-cost")  # full prefetch: no FHIR server needed
    (card,) = client.post("/cds-services/dip-order-sign", json=body).get_json()["cards"]
    assert "支付标准 ¥8,184.96" in card["summary"]
    assert "医院系数 1.05（3 级医院系数）" in card["detail"]


def test_a_request_may_name_the_region_and_the_label_names_the_catalog(tmp_path):
    client = client_for(tmp_path)
    body = demo_request("order-sign-appendicitis")
    body["extension"] = {"dip-cds-region": "999999"}
    (card,) = client.post("/cds-services/dip-order-sign", json=body).get_json()["cards"]
    assert card["source"]["label"] == "示例市 DIP 2.0 (样例数据)"


def test_a_hostile_region_name_comes_back_escaped_in_the_warning_card(tmp_path):
    client = client_for(tmp_path)
    body = demo_request("order-sign-appendicitis")
    body["extension"] = {"dip-cds-region": "<img src=x>"}
    (card,) = client.post("/cds-services/dip-order-sign", json=body).get_json()["cards"]
    assert card["indicator"] == "warning" and "DIP 目录" in card["detail"]
    assert "<img" not in card["detail"] and "<img" not in card["summary"]
