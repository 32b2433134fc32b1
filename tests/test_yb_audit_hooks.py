"""yb-audit-order-sign / yb-audit-order-select over real HTTP: the service (every plugin, as served)
and the demo FHIR server on loopback ports; every rule kind broken and kept, the cards' actions,
the assessment event, and bad input."""

from __future__ import annotations

import copy
import json

import pytest
import requests

from console.ingest import to_record
from hooks.demo_fhir import create_app as create_fhir_app
from tests.demo_fhir_helpers import DEMO_REQUESTS, demo_request, serving
from tests.yb_audit_helpers import EVENTS, served
from yb_audit.codes import SELF_PAY_EXTENSION

# demo request → (rule broken, indicator, amount at risk in the summary)
DEMOS = {
    "yb-audit-order-sign-sex": ("B01-DSEX-0001", "warning", "¥79.90"),
    "yb-audit-order-sign-child-drug": ("B01-DAGEG-0001", "warning", "¥65.00"),
    "yb-audit-order-sign-insurance": ("B03-DINS-0001", "warning", "¥56.00"),
    "yb-audit-order-sign-outpatient": ("B04-DSET-0002", "warning", "¥504.00"),
    "yb-audit-order-sign-hospital-level": ("B05-DLVL-0061", "warning", "¥3,950.00"),
    "yb-audit-order-sign-drug-course": ("B06-DDAYS-0002", "warning", "¥73.60"),
    "yb-audit-order-sign-drug-course-no-prefetch": ("B06-DDAYS-0002", "warning", "¥73.60"),
    "yb-audit-order-sign-duplicate": ("B07-IDUP-0033", "warning", "¥8.00"),
    "yb-audit-order-sign-frequency": ("B08-1-IFREQ-0002", "warning", "¥20.00"),
    "yb-audit-order-sign-cycle": ("B08-4-ICYC-0002", "warning", "¥60.00"),
    "yb-audit-order-sign-course": ("B08-3-ICRS-0004", "info", "¥45.00"),
    "yb-audit-order-sign-main-secondary": ("B02-IOPS-0001", "warning", "¥360.00"),
    "yb-audit-order-sign-age-text": ("B08-2-IAGE-0001", "info", "¥38.00"),
    "yb-audit-order-select-newborn": ("B01-IAGEG-0014", "warning", "¥30.00"),
}


@pytest.fixture(scope="module")
def urls(tmp_path_factory):
    with served(tmp_path_factory.mktemp("home")) as service, serving(create_fhir_app()) as fhir:
        yield service, fhir


def call(urls, request: dict, service: str | None = None) -> requests.Response:
    service_url, fhir = urls
    body = copy.deepcopy(request)
    body["fhirServer"] = fhir
    return requests.post(
        f"{service_url}/cds-services/{service or 'yb-audit-' + body['hook']}", json=body, timeout=10
    )


def cards_of(urls, request: dict) -> list[dict]:
    response = call(urls, request)
    assert response.status_code == 200, response.text
    return response.json()["cards"]


def test_every_audit_demo_request_is_in_the_table():
    assert {p.stem for p in DEMO_REQUESTS.glob("yb-audit-*.json")} == set(DEMOS)


@pytest.mark.parametrize("name", sorted(DEMOS))
def test_each_demo_breaks_its_rule_with_the_bureau_text_on_the_card(urls, name):
    rule_id, indicator, amount = DEMOS[name]
    cards = cards_of(urls, demo_request(name))
    [card] = [c for c in cards if rule_id.replace("-", "\\-") in c["detail"]]
    assert card["indicator"] == indicator and amount in card["summary"]
    assert "规则原文" in card["detail"] and card["source"]["label"] == "医保智能审核（内置示例规则）"
    assert [r["display"] for r in card["overrideReasons"]] == [
        "临床必需，已告知患者自费",
        "规则不适用本例",
        "数据有误",
    ]


def _prefetch(request: dict, key: str) -> dict:
    return request["prefetch"][key]


def _entries(request: dict, key: str) -> list[dict]:
    return [e["resource"] for e in _prefetch(request, key)["entry"]]


def _set_coverage(request: dict, code: str, display: str) -> None:
    coverage = _entries(request, "coverage")[0]
    coverage["type"]["coding"][0].update(code=code, display=display)


# each: demo request, and how to make it compliant (the same order, the rule kept)
COMPLIANT = {
    "yb-audit-order-sign-sex": lambda r: _prefetch(r, "patient").update(gender="male"),
    "yb-audit-order-sign-child-drug": lambda r: _prefetch(r, "patient").update(birthDate="2016-06-01"),
    "yb-audit-order-sign-insurance": lambda r: _set_coverage(r, "工伤", "工伤保险"),
    "yb-audit-order-sign-outpatient": lambda r: _prefetch(r, "encounter")["class"].update(code="IMP"),
    "yb-audit-order-sign-hospital-level": lambda r: r.update(extension={"yb-audit-hospital-level": "三级"}),
    "yb-audit-order-sign-drug-course": lambda r: _prefetch(r, "medicationAdministrations")["entry"].pop(0),
    "yb-audit-order-sign-duplicate": lambda r: _entries(r, "chargeItems")[0].update(
        occurrenceDateTime="2026-11-21T00:30:00+08:00"
    ),
    "yb-audit-order-sign-frequency": lambda r: _entries(r, "chargeItems")[0].update(
        occurrenceDateTime="2026-11-21T08:00:00+08:00"
    ),
    "yb-audit-order-sign-cycle": lambda r: _entries(r, "chargeItems")[0].update(
        occurrenceDateTime="2026-11-07T07:30:00+08:00"
    ),
    "yb-audit-order-sign-course": lambda r: _prefetch(r, "chargeItems")["entry"].pop(0),
    "yb-audit-order-sign-main-secondary": lambda r: r["context"]["draftOrders"]["entry"].pop(1),
    "yb-audit-order-select-newborn": lambda r: _prefetch(r, "patient").update(birthDate="2026-11-12"),
}


@pytest.mark.parametrize("name", sorted(COMPLIANT))
def test_the_same_order_within_the_rule_gets_no_warning(urls, name):
    request = demo_request(name)
    COMPLIANT[name](request)
    cards = cards_of(urls, request)
    rule_id = DEMOS[name][0].replace("-", "\\-")
    assert not [c for c in cards if rule_id in c.get("detail", "")], cards


def test_suggestions_delete_the_draft_or_keep_it_as_self_pay_with_the_documented_extension(urls):
    [card] = cards_of(urls, demo_request("yb-audit-order-sign-sex"))
    delete, keep = card["suggestions"]
    assert delete["actions"] == [
        {
            "type": "delete",
            "description": "删除医嘱 阿帕他胺片",
            "resourceId": "MedicationRequest/demo-mr-audit-sex",
        }
    ]
    [update] = keep["actions"]
    assert update["type"] == "update" and update["resource"]["id"] == "demo-mr-audit-sex"
    [extension] = [e for e in update["resource"]["extension"] if e["url"] == SELF_PAY_EXTENSION]
    parts = {p["url"]: p.get("valueBoolean", p.get("valueString")) for p in extension["extension"]}
    assert (
        parts["selfPay"] is True
        and parts["ruleId"] == "B01-DSEX-0001"
        and parts["reason"].startswith("限定性别")
    )
    # the order sent back marked 自费 is not audited again
    request = demo_request("yb-audit-order-sign-sex")
    request["context"]["draftOrders"]["entry"][0]["resource"] = update["resource"]
    [note] = cards_of(urls, request)
    assert note["indicator"] == "info" and "已标记为自费，未审核" in note["detail"]


def test_an_order_without_a_national_code_is_a_note_not_a_finding(urls):
    cards = cards_of(urls, demo_request("yb-audit-order-sign-main-secondary"))
    assert len(cards) == 1 and "术后换药（院内编码，未对照）" in cards[0]["detail"]
    request = demo_request("yb-audit-order-sign-main-secondary")
    del request["context"]["draftOrders"]["entry"][:2]
    [only_note] = cards_of(urls, request)
    assert (
        only_note["indicator"] == "info" and only_note["summary"] == "医保智能审核：未发现违规，1 项未能审核"
    )


def test_many_findings_are_grouped_into_one_card_per_severity(urls):
    request = demo_request("yb-audit-order-sign-sex")
    order = request["context"]["draftOrders"]["entry"][0]["resource"]
    for n, code in enumerate(["ZA04CAE0023010100166", "ZH01AAB0066010100716", "XS01LAL328B002010104021"]):
        extra = copy.deepcopy(order)
        extra["id"] = f"extra-{n}"
        extra["medicationCodeableConcept"] = {"coding": [{"system": "医保药品代码", "code": code}]}
        request["context"]["draftOrders"]["entry"].append({"resource": extra})
    request["extension"] = {"yb-audit-hospital-level": "二级"}
    [card] = cards_of(urls, request)
    assert card["summary"].startswith("医保审核：4 条违规") and card["selectionBehavior"] == "any"
    assert len(card["suggestions"]) == 4 and card["detail"].count("\n| ") == 5  # header + 4 rows


def test_order_select_audits_the_selected_orders_only(urls):
    request = demo_request("yb-audit-order-select-newborn")
    other = copy.deepcopy(request["context"]["draftOrders"]["entry"][0]["resource"])
    other.update(id="demo-sr-other", code={"coding": [{"system": "yb-item", "code": "001102000050000"}]})
    request["context"]["draftOrders"]["entry"].append({"resource": other})
    request["context"]["selections"] = ["ServiceRequest/demo-sr-other"]
    assert cards_of(urls, request) == []  # the newborn-care order is not the one being selected


def test_every_call_publishes_the_assessment_event_without_patient_names(urls):
    EVENTS.clear()
    request = demo_request("yb-audit-order-sign-frequency")
    [card] = cards_of(urls, request)
    [event] = [e for e in EVENTS if e["hook_instance"] == request["hookInstance"]]
    assert (event["kind"], event["service"], event["channel"], event["dip"]) == (
        "audit",
        "yb-audit-order-sign",
        "cds-hooks",
        None,
    )
    assert event["patient_id"] == "demo-audit-ward" and event["encounter_id"] == "demo-enc-audit-ward"
    assert event["department"] == {"code": "0301", "name": "心血管内科"}
    assert event["attending"] == {"id": "demo-dr-zhang", "name": "张医生（演示）"}
    [finding] = event["findings"]
    assert finding["rule_id"] == "B08-1-IFREQ-0002" and finding["amount_at_risk"] == "20.00"
    assert event["cards"] == [{"uuid": card["uuid"], "summary": card["summary"], "indicator": "warning"}]
    assert "冯演示" not in json.dumps(event, ensure_ascii=False)
    record = to_record({**event, "event_id": "e1"})  # the console takes it as it is
    assert record.kind == "audit" and record.risk_cents == 2000 and record.findings[0]["severity"] == "违规"


def test_the_discovery_lists_both_audit_services_with_their_prefetch(urls):
    services = {s["id"]: s for s in requests.get(f"{urls[0]}/cds-services", timeout=5).json()["services"]}
    for sid in ("yb-audit-order-sign", "yb-audit-order-select"):
        assert set(services[sid]["prefetch"]) == {
            "patient",
            "encounter",
            "coverage",
            "chargeItems",
            "medicationRequests",
            "medicationAdministrations",
        }


def test_feedback_on_an_audit_card_with_an_override_reason_is_stored(urls):
    [card] = cards_of(urls, demo_request("yb-audit-order-sign-sex"))
    feedback = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "overridden",
                "overrideReason": {"reason": card["overrideReasons"][0]},
                "outcomeTimestamp": "2026-11-22T09:05:00Z",
            }
        ]
    }
    response = requests.post(f"{urls[0]}/cds-services/yb-audit-order-sign/feedback", json=feedback, timeout=5)
    assert response.status_code == 200 and response.json()["stored"] == 1


def test_odd_orders_and_broken_prefetch_degrade_without_an_error(urls):
    request = demo_request("yb-audit-order-sign-sex")
    request["context"]["draftOrders"]["entry"] += [
        {"resource": {"resourceType": "MedicationRequest", "id": "no-drug-yet", "status": "draft"}},
        {"resource": {"resourceType": "NutritionOrder", "id": "diet", "status": "draft"}},
    ]
    request["prefetch"]["coverage"] = None  # "no coverage": the default insurance applies
    request["prefetch"]["patient"]["birthDate"] = "not-a-date"
    request["prefetch"]["medicationAdministrations"] = {"resourceType": "Bundle", "entry": [{"resource": 5}]}
    response = call(urls, request)
    assert response.status_code == 200, response.text
    [card] = response.json()["cards"]
    assert "B01\\-DSEX\\-0001" in card["detail"] and "MedicationRequest/no\\-drug\\-yet" in card["detail"]


def test_entries_that_are_not_resources_are_named_in_a_400(urls):
    request = demo_request("yb-audit-order-sign-sex")
    request["context"]["draftOrders"]["entry"] += [{"x": 1}, 7]
    response = call(urls, request)
    assert response.status_code == 400
    assert [i["diagnostics"] for i in response.json()["issue"]] == [
        "context.draftOrders.entry.1: entry without a resource with resourceType",
        "context.draftOrders.entry.2: entry without a resource with resourceType",
    ]


def test_without_the_patient_the_call_is_refused_as_the_spec_says(urls):
    request = demo_request("yb-audit-order-sign-sex")
    del request["prefetch"]["patient"]
    request["context"]["patientId"] = "no-such-patient"
    assert call(urls, request).status_code == 412
