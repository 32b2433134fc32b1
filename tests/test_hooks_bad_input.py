"""Bad input to the five DIP hook services: never a 500, and the card says what is wrong.

Unknown codes, a stay without diagnoses, diagnoses only as text, tied ranks, a huge order
bundle, an unreachable FHIR server, markup in the record and a region without a catalog — each
answered in process (the Flask test client) with the real app on a temp data home.
"""

from __future__ import annotations

import copy
import re
import time
from typing import Any

import pytest

from cds_service.fhir_client import PUBLIC_FAILURE
from tests.demo_fhir_helpers import demo_request
from tests.hooks_helpers import (
    GL_DX,
    YB_PX,
    bullets_after,
    condition,
    encounter,
    encounter_request,
    pin_today,
    plain,
    searchset,
    service_app,
    table_after,
)
from tests.service_helpers import free_port

SERVICES = (
    "dip-order-sign",
    "dip-order-select",
    "dip-encounter-start",
    "dip-encounter-discharge",
    "dip-patient-view",
)
INJECTION = "<img src=x onerror=alert(1)> **bold** | x"
APPENDICITIS_ORDERS = demo_request("order-sign-appendicitis")["context"]["draftOrders"]["entry"]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    app = service_app(tmp_path_factory.mktemp("home"))
    client = app.test_client()
    warm = demo_request("order-sign-appendicitis")
    assert client.post("/cds-services/dip-order-sign", json=warm).status_code == 200  # engine caches built
    return client


@pytest.fixture(autouse=True)
def pinned_today(monkeypatch):
    pin_today(monkeypatch)


def post(client, body: dict[str, Any]):
    return client.post(f"/cds-services/dip-{body['hook']}", json=body)


def cards(client, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = post(client, body)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["cards"]


def card(client, body: dict[str, Any]) -> dict[str, Any]:
    found = cards(client, body)
    assert len(found) == 1, found
    return found[0]


def as_hook(body: dict[str, Any], hook: str) -> dict[str, Any]:
    """The same stay asked through another hook (prefetch and context adapted)."""
    out = copy.deepcopy(body)
    out["hook"] = hook
    if hook not in ("order-sign", "order-select"):
        out["context"].pop("draftOrders", None)
        out["context"].pop("selections", None)
    elif hook == "order-select":
        first = out["context"]["draftOrders"]["entry"][0]["resource"]
        out["context"]["selections"] = [f"{first['resourceType']}/{first['id']}"]
    if hook == "patient-view":
        out["prefetch"]["openEncounters"] = searchset(out["prefetch"]["encounter"])
    return out


def order_sign(conditions, ranks, orders=None) -> dict[str, Any]:
    """order-sign for a stay admitted 2026-11-21 with these diagnoses and the appendicitis orders."""
    enc = encounter(diagnoses=ranks, start="2026-11-21T09:30:00+08:00")
    drafts = [e["resource"] for e in APPENDICITIS_ORDERS] if orders is None else orders
    return encounter_request("order-sign", enc, conditions, draft_orders=drafts)


# ----------------------------------------------------------------------------- unknown codes


def test_orders_with_unknown_codes_are_listed_unpriced_and_never_change_the_group(client):
    orders = [
        {"resourceType": "ServiceRequest", "id": "bad-px", "status": "draft", "intent": "order",
         "code": {"coding": [{"system": YB_PX, "code": "99.9999"}]}},
        {"resourceType": "ServiceRequest", "id": "odd-system", "status": "draft", "intent": "order",
         "code": {"coding": [{"system": "urn:oid:1.2.3.4", "code": "NOPE"}]}},
        {"resourceType": "MedicationRequest", "id": "bad-drug", "status": "draft", "intent": "order",
         "medicationCodeableConcept": {"coding": [{"system": "http://hospital.example.cn/CodeSystem/drug",
                                                   "code": "NOPE-1"}]}},
        {"resourceType": "ServiceRequest", "id": "no-code", "status": "draft", "intent": "order"},
    ]  # fmt: skip
    c = card(client, order_sign([condition("c1", "K35.300")], [("c1", 1)], orders))
    assert c["summary"].startswith("K35.3 急性阑尾炎伴局限性腹膜炎：支付标准 ¥5,880.00")
    assert "分组变化" not in c["detail"]
    unpriced = bullets_after(c["detail"], "未能定价")
    for order_id in ("bad-px", "odd-system", "bad-drug", "no-code"):
        assert any(order_id in line for line in unpriced), (order_id, unpriced)
    assert "| 本次医嘱（已定价 0 项） | ¥0.00 |" in plain(c["detail"])


def test_an_unknown_diagnosis_code_gives_no_group_and_the_coder_sees_it_unmapped(client):
    body = order_sign([condition("c1", "ZZZ.999")], [("c1", 1)])
    assert card(client, body)["summary"].startswith("未入组")
    assert cards(client, as_hook(body, "encounter-start")) == []  # nothing to forecast from
    discharge = card(client, as_hook(body, "encounter-discharge"))
    (row,) = table_after(discharge["detail"], "编码映射与缺失")
    assert row[0] == "ZZZ.999" and row[2] == "未映射" and row[-1] == "是"
    assert "错误：主要诊断“ZZZ.999”没有确认的医保版编码" in bullets_after(discharge["detail"], "结算清单检查")


@pytest.mark.parametrize("hook", ["order-sign", "patient-view", "encounter-discharge"])
def test_an_unmappable_principal_is_never_said_to_map_to_none(client, hook):
    body = as_hook(order_sign([condition("c1", "ZZZ.999")], [("c1", 1)]), hook)
    assert "None" not in card(client, body)["detail"]


# ----------------------------------------------------------------------------- no diagnoses


def test_a_stay_without_diagnoses_says_so_and_guesses_no_group(client):
    body = order_sign([], None)
    for hook in ("order-sign", "order-select", "patient-view"):
        c = card(client, as_hook(body, hook))
        assert "本次住院尚未记录诊断" in c["summary"], (hook, c["summary"])
        assert "支付标准" not in c["summary"] and not re.search(r"[A-Z]\d\d[.:]", c["summary"])
    assert cards(client, as_hook(body, "encounter-start")) == []
    discharge = card(client, as_hook(body, "encounter-discharge"))
    assert discharge["summary"].startswith("出院未入组：本次住院尚未记录诊断")
    assert discharge["indicator"] == "warning"
    assert "错误：缺少主要诊断：病例无法入组（质控规则 dx.missing）" in bullets_after(
        discharge["detail"], "结算清单检查"
    )


# ----------------------------------------------------------------------------- diagnoses only as text


def test_a_principal_known_only_as_text_gives_an_estimated_group(client):
    body = order_sign([condition("c1", text="阑尾炎")], [("c1", 1)])
    for hook in ("order-sign", "patient-view", "encounter-discharge"):
        c = card(client, as_hook(body, hook))
        assert "估算" in plain(c["detail"]).split("\n")[0], (hook, c["detail"])  # the group line itself
        assert "主要诊断“阑尾炎”没有确认的医保版编码，按最接近的 K35.800x001 估算" in plain(c["detail"])
    assert card(client, body)["summary"].endswith("（估算）")


@pytest.mark.parametrize("hook", ["order-sign", "patient-view", "encounter-discharge"])
def test_a_principal_known_only_as_text_is_an_estimate_even_when_the_name_matches(client, hook):
    body = as_hook(order_sign([condition("c1", text="急性阑尾炎伴局限性腹膜炎")], [("c1", 1)]), hook)
    first_line = plain(card(client, body)["detail"]).split("\n")[0]
    assert "估算" in first_line, first_line


# ----------------------------------------------------------------------------- tied ranks


def test_two_principal_diagnoses_are_flagged_for_the_coder_and_do_not_break_the_doctors_card(client):
    body = order_sign([condition("c1", "K35.300"), condition("c2", "I10.x00x002")], [("c1", 1), ("c2", 1)])
    assert card(client, body)["summary"].startswith(
        "本次手术后预计病种为 K35.3:47.0100"
    )  # first documented is used
    discharge = card(client, as_hook(body, "encounter-discharge"))
    checks = bullets_after(discharge["detail"], "结算清单检查")
    assert (
        "警告：多个诊断排序相同（K35.300、I10.x00x002），主要诊断不明确（质控规则 principal.rank_conflict）"
        in checks
    )


# ----------------------------------------------------------------------------- a huge order bundle


def _medication(i: int) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest", "id": f"m{i}", "status": "draft", "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": "http://hospital.example.cn/CodeSystem/drug",
                                                  "code": "XY0001"}]},
        "dispenseRequest": {"quantity": {"value": 1}},
    }  # fmt: skip


def test_500_orders_are_priced_within_two_seconds(client):
    orders = [e["resource"] for e in APPENDICITIS_ORDERS] + [_medication(i) for i in range(494)]
    body = order_sign([condition("c1", "K35.300")], [("c1", 1)], orders)
    started = time.perf_counter()
    response = post(client, body)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert elapsed < 2.0, f"{elapsed:.2f} s"
    (c,) = response.get_json()["cards"]
    assert "| 本次医嘱（已定价 500 项） | ¥8,366.00 |" in plain(c["detail"])  # ¥4,167 + 494 × ¥8.50


def test_orders_beyond_the_limit_are_not_priced_and_the_card_says_so(client):
    orders = [_medication(i) for i in range(1200)]
    c = card(client, order_sign([condition("c1", "K35.300")], [("c1", 1)], orders))
    assert "本次共 1200 条医嘱，只计算了前 1000 条的费用" in plain(c["detail"])


# ----------------------------------------------------------------------------- unreachable FHIR server


def unreachable() -> str:
    return f"http://127.0.0.1:{free_port()}/fhir"  # a port nothing listens on: connection refused


DEMO_FOR = {
    "dip-order-sign": "order-sign-appendicitis",
    "dip-order-select": "order-select-stroke",
    "dip-encounter-start": "encounter-start-appendicitis",
    "dip-encounter-discharge": "encounter-discharge-lungcancer",
    "dip-patient-view": "patient-view-newborn",
}


@pytest.mark.parametrize("service", SERVICES)
def test_without_prefetch_and_an_unreachable_fhir_server_the_answer_is_412_naming_what_is_missing(
    client, service
):
    body = demo_request(DEMO_FOR[service])
    del body["prefetch"]
    body["fhirServer"] = unreachable()
    response = client.post(f"/cds-services/{service}", json=body)
    assert response.status_code == 412
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    named = {issue["diagnostics"] for issue in outcome["issue"]}
    required = {"patient"} if service == "dip-patient-view" else {"patient", "encounter"}
    assert named == {f"prefetch {key!r} unavailable: {PUBLIC_FAILURE}" for key in required}
    assert {issue["code"] for issue in outcome["issue"]} == {"incomplete"}


@pytest.mark.parametrize("service", ["dip-order-sign", "dip-encounter-discharge", "dip-patient-view"])
def test_missing_diagnoses_from_an_unreachable_server_give_a_degraded_card_that_says_why(client, service):
    body = demo_request(DEMO_FOR[service])
    del body["prefetch"]["conditions"]
    body["fhirServer"] = unreachable()
    c = card(client, body)
    assert f"未能取得本次住院的诊断数据（conditions：{PUBLIC_FAILURE}），无法预测病种" in c["summary"]
    assert f"prefetch conditions unavailable ({PUBLIC_FAILURE})" in plain(c["detail"])


@pytest.mark.parametrize("name", ["patient-view-stroke", "order-sign-sandbox-shape"])
def test_an_unreachable_server_is_not_mistaken_for_no_open_stay(client, name):
    body = demo_request(name)
    body["prefetch"] = {"patient": body["prefetch"]["patient"]}
    body["fhirServer"] = unreachable()
    found = cards(client, body)
    assert len(found) == 1 and PUBLIC_FAILURE in plain(found[0]["detail"])


# ----------------------------------------------------------------------------- markup in the record


def _injected_discharge() -> dict[str, Any]:
    conditions = [
        condition("c1", "J18.800x003", system=GL_DX, display=INJECTION),  # a display, mapped by 国临版 code
        condition("c2", text=INJECTION),  # free text only
    ]
    enc = encounter(diagnoses=[("c1", 1), ("c2", 2)], end="2026-11-20T10:00:00+08:00", status="finished")
    return encounter_request("encounter-discharge", enc, conditions)


def test_markup_in_a_condition_text_and_display_comes_out_escaped(client):
    c = card(client, _injected_discharge())
    detail = c["detail"]
    assert "<img" not in detail and "**bold**" not in detail and "onerror=" not in detail
    assert "&lt;img src\\=x onerror\\=alert\\(1\\)&gt; \\*\\*bold\\*\\* \\| x" in detail
    for heading in ("主要诊断比较", "编码映射与缺失"):
        rows = table_after(detail, heading)
        assert rows and all(len(row) == 6 for row in rows), rows  # the "|" did not split a cell
    mappings = {row[1]: row for row in table_after(detail, "编码映射与缺失")}
    assert mappings["仅文本"][0] == "&lt;img src=x onerror=alert(1)&gt; **bold** | x"
    assert "&lt;img" in mappings["疾病分类代码国家临床版 2.0（ICD-10）"][0]
    for text in [c["summary"], *(s["label"] for s in c.get("suggestions", []))]:
        assert "<" not in text and ">" not in text, text
    (label,) = [s["label"] for s in c["suggestions"]]
    assert label.startswith("为“J18.800x003 ＜img src=x onerror=alert(1)＞")


def test_markup_in_the_principal_text_is_escaped_on_the_doctors_card(client):
    body = order_sign([condition("c1", text=f"急性阑尾炎{INJECTION}")], [("c1", 1)])
    for hook in ("order-sign", "patient-view"):
        c = card(client, as_hook(body, hook))
        assert "<img" not in c["detail"] and "**bold**" not in c["detail"]
        assert "<" not in c["summary"]


# ----------------------------------------------------------------------------- a region without catalog


@pytest.mark.parametrize("service", SERVICES)
def test_a_region_without_catalog_gives_one_warning_card_naming_it(client, service):
    body = demo_request(DEMO_FOR[service])
    body["extension"] = {"dip-cds-region": "000000"}
    response = client.post(f"/cds-services/{service}", json=body)
    assert response.status_code == 200
    (c,) = response.get_json()["cards"]
    assert c["indicator"] == "warning"
    assert c["summary"].startswith("DIP 提示不可用：") and "'000000'" in c["summary"]
    assert "available" in c["detail"] and "999999" in c["detail"]  # names what exists
    assert "请联系信息科导入该统筹区的 DIP 目录" in c["detail"]
