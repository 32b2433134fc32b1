"""The doctor's cards — order-sign, order-select, patient-view, encounter-start — during the stay
(issue 9 item 5): where the cost stands against the standard, never a word that reads as advice to
add codes, refuse a patient or split a stay; a group change named only when a draft 手术/介入 becomes
the principal procedure, in neutral words, never for a simple operation; the principal procedure
estimated (highest type, then the catalog's price) and labelled so; numbers for people.

Over the real service app on the sample data, and on the real 平顶山 catalog with the real 医保版
tables where those are present.
"""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from cds_service.app import create_app, preload
from cds_service.config import settings_from_mapping
from hooks.demo_fhir import create_app as create_demo_fhir_app
from tests.demo_fhir_helpers import DEMO_REQUESTS, demo_request, serving
from tests.hooks_helpers import YB_PX, pin_today, plain, procedure, searchset, service_app
from tests.hooks_real_helpers import PDS_REGION, real_hooks_home

DOCTOR_HOOKS = ("order-sign", "order-select", "patient-view", "encounter-start")
#: Words that belong to the coder's card at discharge, never to a doctor's card mid-stay.
FORBIDDEN = ("超低", "没有结余空间", "结余", "亏损", "补充编码", "完整编码")
DISCLAIMER = "预测仅供参考，不是最终分组或结算结果；诊断与治疗以临床需要为准，不得因费用推诿患者、减少必要的诊疗或分解住院。"
GROUP_CHANGE = "本次手术后预计病种为"
DOUBLED = re.compile(r"（([^（）]+)）（\1）")
SIMPLE_OPERATIONS = tuple(
    tomllib.loads((Path(__file__).parents[1] / "dip_engine/config/rules/default.toml").read_text("utf-8"))[
        "grouping"
    ]["simple_operations"]
)


@pytest.fixture(autouse=True)
def pinned_today(monkeypatch):
    pin_today(monkeypatch)


@pytest.fixture(scope="module")
def fhir_url():
    """The demo FHIR server, for the requests that carry no (or no full) prefetch."""
    with serving(create_demo_fhir_app()) as url:
        yield url


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    return service_app(tmp_path_factory.mktemp("home")).test_client()


@pytest.fixture(scope="module")
def real_client(tmp_path_factory):
    """The service on the real 平顶山 catalog and 医保版 tables."""
    home = real_hooks_home(tmp_path_factory)
    settings = settings_from_mapping({"logging": {"level": "WARNING"}, "dip": {"region": PDS_REGION}})
    app = create_app(settings=settings, home=home)
    assert preload(app) == []
    return app.test_client()


def cards_of(client, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = client.post(f"/cds-services/dip-{body['hook']}", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["cards"]


def text_of(card: dict[str, Any]) -> str:
    return card["summary"] + "\n" + plain(card["detail"])


def draft(code: str, i: int = 0) -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest", "id": f"draft-{i}", "status": "draft", "intent": "order",
        "code": {"coding": [{"system": YB_PX, "code": code}]}, "subject": {"reference": "Patient/demo-stroke"},
    }  # fmt: skip


def stroke_signing(*codes: str, recorded: tuple[str, ...] = ()) -> dict[str, Any]:
    """The demo stroke stay (I63.900, conservative so far) signing draft procedures ``codes``, with
    ``recorded`` procedures already documented as FHIR Procedures (unranked, as FHIR has them)."""
    body = demo_request("order-sign-stroke-high-cost")
    body["context"]["draftOrders"]["entry"] = [{"resource": draft(code, i)} for i, code in enumerate(codes)]
    procs = [
        procedure(
            f"p{i}", code, eid="demo-enc-stroke", pid="demo-stroke", performed="2026-11-15T10:00:00+08:00"
        )
        for i, code in enumerate(recorded)
    ]
    body["prefetch"]["procedures"] = searchset(*procs)
    return body


def doctor_requests(fhir_url: str) -> list[tuple[str, dict[str, Any]]]:
    """Every demo request of a doctor's hook, plus the stroke stay pushed past 2× its standard."""
    found = []
    for path in sorted(DEMO_REQUESTS.glob("*.json")):
        body = demo_request(path.stem)
        body["fhirServer"] = fhir_url
        if body["hook"] in DOCTOR_HOOKS:
            found.append((path.stem, body))
    expensive = demo_request("order-sign-stroke-high-cost")
    item = copy.deepcopy(expensive["prefetch"]["chargeItems"]["entry"][0])
    item["resource"]["id"] = "demo-ci-stroke-icu"
    item["resource"]["priceOverride"] = {"value": 20000, "currency": "CNY"}
    expensive["prefetch"]["chargeItems"]["entry"].append(item)
    found.append(("stroke-above-twice-the-standard", expensive))
    return found


# ----------------------------------------------------------------------------- words


def test_no_doctor_card_of_any_demo_request_speaks_of_margins_losses_or_coding(client, fhir_url):
    bands_seen = set()
    for name, body in doctor_requests(fhir_url):
        for card in cards_of(client, body):
            text = text_of(card)
            assert not [w for w in FORBIDDEN if w in text], (name, text)
            assert not DOUBLED.search(text), (name, DOUBLED.search(text).group(0))
            assert "REGION_AVE_VAL" not in text and "REGION\\_AVE\\_VAL" not in card["detail"], name
            assert card["detail"].endswith(DISCLAIMER), name
            bands_seen.update(re.findall(r"费用区间：([^*]+)\*\*", plain(card["detail"])))
    # every band a doctor can see was seen (so the scan read every wording)
    assert bands_seen >= {
        "低于支付标准的 50%",
        "支付标准以内",
        "接近支付标准",
        "高于支付标准",
        "高于支付标准的 200%",
    }


def test_the_scan_would_see_those_words_they_are_on_the_coders_card(client):
    (card,) = cards_of(client, demo_request("encounter-discharge-pneumonia"))  # 49 % of its standard
    text = text_of(card)
    assert "费用超低病例" in text and "没有结余空间" in text and DISCLAIMER not in text


# ----------------------------------------------------------------------------- group changes


@pytest.mark.parametrize("code", ["57.9400", "38.9300", "38.9301", "38.9302", "38.9303", "38.9304"])
def test_a_urinary_catheter_or_a_venous_line_never_changes_the_stroke_stays_group(client, code):
    (card,) = cards_of(client, stroke_signing(code))
    assert GROUP_CHANGE not in text_of(card)
    assert card["summary"].startswith("I63.9 未特指的脑梗死")


def test_a_therapeutic_procedure_moves_the_prediction_but_is_not_announced(client):
    (card,) = cards_of(client, stroke_signing("99.1000"))  # thrombolysis: I63.9:99.1000 in the sample catalog
    assert card["summary"].startswith("I63.9:99.1000 ") and GROUP_CHANGE not in text_of(card)


def test_the_principal_procedure_is_the_highest_type_then_the_highest_priced_and_labelled(client):
    # 88.4100 (脑动脉造影, 诊断性操作) is recorded first, the thrombolysis (治疗性操作) is ordered:
    # FHIR gives no rank, so the therapeutic procedure is the estimated principal one.
    (card,) = cards_of(client, stroke_signing("99.1000", recorded=("88.4100",)))
    assert card["summary"].startswith("I63.9:99.1000 ") and "（估算）" in card["summary"]
    assert "按类型（手术/介入优先）和目录分值估算 99.1000 血栓溶解药的注射或输注 为主要手术操作" in text_of(
        card
    )


def test_on_the_sample_data_signing_an_appendectomy_names_the_new_group(client):
    (card,) = cards_of(client, demo_request("order-sign-appendicitis"))
    assert card["summary"].startswith(f"{GROUP_CHANGE} K35.3:47.0100 ")


# ----------------------------------------------------------------------------- the real 平顶山 catalog


@pytest.mark.slow
@pytest.mark.parametrize("code", [*SIMPLE_OPERATIONS, "38.9300x201", "38.9300x901", "57.9400"])
def test_on_the_real_catalog_no_simple_operation_or_venous_line_produces_a_group_change(real_client, code):
    (card,) = cards_of(real_client, stroke_signing(code))
    assert GROUP_CHANGE not in text_of(card), code


@pytest.mark.slow
def test_on_the_real_catalog_the_catheter_and_the_picc_leave_the_stroke_in_its_conservative_group(
    real_client,
):
    for code in ("57.9400", "38.9301"):
        (card,) = cards_of(real_client, stroke_signing(code))
        assert card["summary"].startswith("I63.9 未特指的脑梗死：支付标准 ¥3,831.44"), card["summary"]


@pytest.mark.slow
def test_on_the_real_catalog_a_thrombectomy_is_named_in_neutral_words(real_client):
    # the angiogram is recorded first; the thrombectomy (介入) is the estimated principal procedure
    (card,) = cards_of(real_client, stroke_signing("39.7400x002", recorded=("88.4101",)))
    assert card["summary"].startswith(f"{GROUP_CHANGE} I63.9:39.7400x002 未特指的脑梗死：经皮颅内动脉取栓术")
    detail = text_of(card)
    assert "新开手术 39.7400x002 经皮颅内动脉取栓术 预计为本次住院的主要手术" in detail
    assert "按类型（手术/介入优先）和目录分值估算 39.7400x002" in detail


@pytest.mark.slow
def test_on_the_real_catalog_two_therapeutic_procedures_the_higher_priced_is_principal(real_client):
    # I63.9:96.0400 (2,585.99) scores above I63.9:99.1008 (2,446.96), whatever the order
    for codes in (("96.0400", "99.1008"), ("99.1008", "96.0400")):
        (card,) = cards_of(real_client, stroke_signing(*codes))
        assert card["summary"].startswith("I63.9:96.0400 ") and "（估算）" in card["summary"]
        assert GROUP_CHANGE not in text_of(card)


@pytest.mark.slow
def test_on_the_real_catalog_numbers_are_for_people(real_client, fhir_url):
    for name, body in doctor_requests(fhir_url):
        for card in cards_of(real_client, body):
            text = text_of(card)
            assert not [w for w in FORBIDDEN if w in text], (name, text)
            assert not DOUBLED.search(text), (name, text)
            assert "REGION_AVE_VAL" not in text and "5.718153489" not in text
            if "点值" in text:
                assert "点值 5.72 元/分（按本地区次均费用估算）" in text, name
                assert "未配置医院系数，按 1.0 估算" in text, name
