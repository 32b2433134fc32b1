"""The five DIP hook services end to end, and the compliance rules behind the coder's card.

Over real HTTP: the CDS service and the demo FHIR server each run on loopback in a thread, and
requests are posted with ``requests`` the way an EMR or the CDS Hooks Sandbox posts them. The
demo patients' cards are pinned as golden files (``UPDATE_GOLDEN=1`` rewrites them, then the test
still compares). "Today" is pinned to 2026-11-22 so lengths of stay do not drift.

The compliance rules (DIP-RULES.md §7) and the settlement-list checks are tested at unit level on
``hooks.coding_rules`` with stays read from small FHIR records through ``hooks.stay.read_stay``.
"""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from cards import load_card_templates
from cds_service.app import create_app
from cds_service.config import settings_from_mapping
from cds_service.plugins import Plugin, discover
from costing import load_prices
from dip_engine import load_catalogs
from grouper import OpType
from hooks.coding_rules import admissibility, load_coding_rules, settlement_checks, treated_by_operation
from hooks.context import DipContext
from hooks.demo_fhir import create_app as create_demo_fhir_app
from hooks.encounter_discharge import principal_options
from hooks.stay import Stay, StayDiagnosis, StayProcedure, read_stay
from mappings import Resolution, local_maps_for_home
from terminology import load_terminology
from tests.demo_fhir_helpers import DEMO_REQUESTS, demo_request, serving
from tests.hooks_helpers import (
    GL_DX,
    GOLDEN_DIR,
    YB_DX,
    YB_PX,
    RecordingFhir,
    birth_weight,
    bullets_after,
    condition,
    encounter,
    encounter_request,
    golden_cards,
    patient,
    pin_today,
    plain,
    procedure,
    searchset,
    service_app,
    table_after,
)

# the DIP services' demo requests (医保智能审核's yb-audit-* ones: tests/test_yb_audit_hooks.py)
DEMO_NAMES = sorted(p.stem for p in DEMO_REQUESTS.glob("*.json") if not p.stem.startswith("yb-audit-"))
OPTIONS = "主要诊断比较"
MAPPINGS = "编码映射与缺失"
CHECKS = "结算清单检查"


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """The CDS service and the demo FHIR server, both over HTTP on 127.0.0.1."""
    home = tmp_path_factory.mktemp("home")
    fhir = RecordingFhir()
    with serving(service_app(home)) as service_url, serving(fhir) as fhir_url:
        yield SimpleNamespace(url=service_url, fhir_url=fhir_url, fhir=fhir, home=home)


@pytest.fixture(autouse=True)
def pinned_today(monkeypatch):
    pin_today(monkeypatch)


def post(servers, body: dict[str, Any], service: str | None = None) -> requests.Response:
    service = service or f"dip-{body['hook']}"
    return requests.post(f"{servers.url}/cds-services/{service}", json=body, timeout=10)


def demo(servers, name: str, *, prefetch: bool = True) -> dict[str, Any]:
    """A demo request pointed at the running demo FHIR server (optionally without its prefetch)."""
    body = demo_request(name)
    body["fhirServer"] = servers.fhir_url
    if not prefetch:
        body.pop("prefetch", None)
    return body


def cards_of(servers, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = post(servers, body)
    assert response.status_code == 200, response.text
    return response.json()["cards"]


def only_card(servers, body: dict[str, Any]) -> dict[str, Any]:
    cards = cards_of(servers, body)
    assert len(cards) == 1, cards
    return cards[0]


def options_by_code(card: dict[str, Any]) -> dict[str, list[str]]:
    return {row[0].removesuffix("（当前）"): row for row in table_after(card["detail"], OPTIONS)}


# =============================================================================== 1. end to end over HTTP

# Per service: a demo request with encounter context, the patient and encounter it names, and the
# group its card must show.
E2E_CASES = {
    "dip-order-sign": ("order-sign-appendicitis", "demo-appendicitis", "demo-enc-appendicitis", "K35.3:47.0100"),
    "dip-order-select": ("order-select-stroke", "demo-stroke", "demo-enc-stroke", "I63.9"),
    "dip-encounter-start": ("encounter-start-appendicitis", "demo-appendicitis", "demo-enc-appendicitis", "K35.3"),
    "dip-encounter-discharge": (
        "encounter-discharge-lungcancer", "demo-lungcancer", "demo-enc-lungcancer", "C34.1:32.4100_33.3903+40.5914",
    ),
    "dip-patient-view": ("patient-view-newborn", "demo-newborn", "demo-enc-newborn", "P07.1"),
}  # fmt: skip


@pytest.mark.parametrize("service", sorted(E2E_CASES))
def test_with_full_prefetch_the_card_comes_without_asking_the_fhir_server(servers, service):
    name, _, _, group = E2E_CASES[service]
    servers.fhir.reset()
    response = post(servers, demo(servers, name), service)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["Cache-Control"] == "no-store"
    (card,) = response.json()["cards"]
    assert group in card["summary"]
    assert card["source"]["label"] == "示例市 DIP 2.0 (样例数据)"
    assert card["indicator"] in ("info", "warning", "critical")
    assert servers.fhir.requests == []


@pytest.mark.parametrize("service", sorted(E2E_CASES))
def test_without_prefetch_the_service_fetches_the_stay_and_gives_the_same_card(servers, service):
    name, patient_id, encounter_id, _ = E2E_CASES[service]
    with_prefetch = only_card(servers, demo(servers, name))
    servers.fhir.reset()
    fetched = only_card(servers, demo(servers, name, prefetch=False))

    assert golden_cards([fetched]) == golden_cards([with_prefetch])
    assert fetched["uuid"] != with_prefetch["uuid"]
    assert {
        f"/Patient/{patient_id}", f"/Encounter/{encounter_id}", "/Condition", "/Procedure", "/ChargeItem"
    } <= servers.fhir.paths()  # fmt: skip
    assert all(f"encounter={encounter_id}" in q for q in servers.fhir.queries("/Condition"))
    assert all(f"context=Encounter/{encounter_id}" in q for q in servers.fhir.queries("/ChargeItem"))
    if service == "dip-patient-view":  # openEncounters is part of its prefetch
        assert any("status=in-progress" in q for q in servers.fhir.queries("/Encounter"))


def sandbox_shape(hook: str, servers) -> dict[str, Any]:
    """What the CDS Hooks Sandbox sends: no encounterId, a Bundle without type, only the patient."""
    if hook == "patient-view":
        body = demo(servers, "patient-view-stroke")
        body["prefetch"] = {"patient": body["prefetch"]["patient"]}
        return body
    body = demo(servers, "order-sign-sandbox-shape")
    if hook == "order-select":
        body["hook"] = "order-select"
        body["context"]["selections"] = ["ServiceRequest/demo-sr-sandbox-op"]
    return body


@pytest.mark.parametrize(
    ("hook", "patient_id", "encounter_id", "group"),
    [
        ("order-sign", "demo-appendicitis", "demo-enc-appendicitis", "K35.3:47.0100"),
        ("order-select", "demo-appendicitis", "demo-enc-appendicitis", "K35.3:47.0100"),
        ("patient-view", "demo-stroke", "demo-enc-stroke", "I63.9"),
    ],
)
def test_sandbox_shape_finds_the_open_encounter_and_answers_with_a_card(
    servers, hook, patient_id, encounter_id, group
):
    body = sandbox_shape(hook, servers)
    assert "encounterId" not in body["context"]
    if hook != "patient-view":
        assert "type" not in body["context"]["draftOrders"]
        mr = body["context"]["draftOrders"]["entry"][0]["resource"]
        assert mr["resourceType"] == "MedicationRequest" and "intent" not in mr
    servers.fhir.reset()
    card = only_card(servers, body)

    assert group in card["summary"]
    searches = servers.fhir.queries("/Encounter")
    assert any(f"patient={patient_id}" in q and "status=in-progress" in q for q in searches), searches
    assert any(f"encounter={encounter_id}" in q for q in servers.fhir.queries("/Condition"))
    assert any(f"context=Encounter/{encounter_id}" in q for q in servers.fhir.queries("/ChargeItem"))
    if hook != "patient-view":  # the Sandbox's empty MedicationRequest and text-only order are named
        unpriced = bullets_after(card["detail"], "未能定价")
        assert any("demo-mr-sandbox-empty" in u and "尚未选择药品" in u for u in unpriced), unpriced
        assert any("demo-sr-sandbox-text" in u and "仅有文本" in u for u in unpriced), unpriced


def sloppy(bundle: dict[str, Any]) -> dict[str, Any]:
    """A Bundle as sloppy clients send it: no type, total, link or search modes."""
    return {"resourceType": "Bundle", "entry": [{"resource": e["resource"]} for e in bundle.get("entry", [])]}


@pytest.mark.parametrize(
    ("hook", "name"),
    [
        ("encounter-start", "encounter-start-appendicitis"),
        ("encounter-discharge", "encounter-discharge-lungcancer"),
    ],
)
def test_encounter_hooks_accept_sloppy_bundles_but_need_the_encounter_id(servers, hook, name):
    tidy = only_card(servers, demo(servers, name))
    body = demo(servers, name)
    for key in ("conditions", "procedures", "chargeItems"):
        body["prefetch"][key] = sloppy(body["prefetch"][key])
    assert golden_cards([only_card(servers, body)]) == golden_cards([tidy])

    del body["context"]["encounterId"]  # the hook is about an encounter: the spec requires it
    response = post(servers, body)
    assert response.status_code == 400
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert any("encounterId" in issue["diagnostics"] for issue in outcome["issue"]), outcome


# =============================================================================== 2. golden cards


def _derived_newborn_discharge(servers) -> dict[str, Any]:
    """The newborn at discharge: the birth weight is read from the FHIR server (Observation)."""
    body = demo(servers, "patient-view-newborn")
    body["hook"] = "encounter-discharge"
    body["hookInstance"] = "8f0a5a3e-0b1c-4d8e-9a51-1d2b3c4d5e13"
    body["prefetch"].pop("openEncounters")
    return body


DERIVED = {"derived-encounter-discharge-newborn": _derived_newborn_discharge}


@pytest.mark.parametrize("name", DEMO_NAMES + sorted(DERIVED))
def test_golden_cards_of_the_demo_patients(servers, name):
    body = DERIVED[name](servers) if name in DERIVED else demo(servers, name)
    response = post(servers, body)
    assert response.status_code == 200, response.text
    got = {"request": name, "cards": golden_cards(response.json()["cards"])}
    path = GOLDEN_DIR / f"{name}.json"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN_DIR.mkdir(exist_ok=True)
        path.write_text(json.dumps(got, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    assert path.is_file(), f"no golden file {path}; run with UPDATE_GOLDEN=1 and review it"
    assert json.loads(path.read_text(encoding="utf-8")) == got


def test_every_golden_file_belongs_to_a_request():
    names = {p.stem for p in GOLDEN_DIR.glob("*.json")}
    assert names == set(DEMO_NAMES) | set(DERIVED)


# ----------------------------------------------------------------------------- what the README promises


def test_appendicitis_signing_the_operation_names_the_predicted_group_in_neutral_words(servers):
    card = only_card(servers, demo(servers, "order-sign-appendicitis"))
    # 职工 (the patient's Coverage) → the sample region's 职工 budget point value 5.80: 1450 × 5.80
    assert card["summary"].startswith(
        "本次手术后预计病种为 K35.3:47.0100 急性阑尾炎伴局限性腹膜炎：腹腔镜下阑尾切除术，支付标准 ¥8,410.00"
    )
    detail = plain(card["detail"])
    assert "新开手术 47.0100 腹腔镜下阑尾切除术 预计为本次住院的主要手术" in detail
    assert "K35.3（支付标准" not in detail  # no before/after money comparison for the doctor
    assert "| 支付标准 | ¥8,410.00 |" in detail
    assert "参保类型 职工（据患者参保信息：职工基本医疗保险）；点值 5.80 元/分（本地区预估点值）" in detail
    assert card["indicator"] == "info"


def test_lung_cancer_discharge_judges_every_documented_diagnosis_with_reasons(servers):
    card = only_card(servers, demo(servers, "encounter-discharge-lungcancer"))
    assert card["summary"].startswith("出院分组 C34.1:32.4100_33.3903+40.5914")
    options = options_by_code(card)
    assert list(options) == ["C34.100x004", "I10.x00x002", "J95.800x016", "R05.x00"]  # documented order
    principal = options["C34.100x004"]
    assert (
        principal[0].endswith("（当前）") and principal[2] == "是" and "本次手术所治疗的疾病" in principal[3]
    )
    assert principal[4] == "C34.1:32.4100_33.3903+40.5914"
    empyema, cough = options["J95.800x016"], options["R05.x00"]
    assert empyema[1] == "手术后脓胸" and empyema[2] == "否" and "手术后发生的并发症" in empyema[3]
    assert cough[1] == "咳嗽" and cough[2] == "否" and "症状体征编码，已有明确诊断（C34.100x004）" in cough[3]
    assert options["I10.x00x002"][2] == "否"
    for row in options.values():
        if row[2] == "否":
            assert row[4:] == ["—", "—"]  # an inadmissible diagnosis never shows a group or money
    checks = bullets_after(card["detail"], CHECKS)
    assert "警告：手术操作“33.2600x002 经皮针吸肺活检”日期 2026-10-28 不在本次住院期间，未计入分组" in checks
    (text_only,) = table_after(card["detail"], MAPPINGS)
    assert text_only[:3] == ["胸腔闭式引流", "仅文本", "34.0401"] and text_only[-1] == "是"
    assert "suggestions" not in card  # the documented principal is admissible: nothing to change


def test_pneumonia_discharge_shows_each_mapping_and_offers_to_add_the_code(servers):
    card = only_card(servers, demo(servers, "encounter-discharge-pneumonia"))
    rows = {row[0]: row for row in table_after(card["detail"], MAPPINGS)}
    gl = rows["J18.800x003 阻塞性肺炎"]
    assert gl[1].startswith("疾病分类代码国家临床版 2.0") and gl[2] == "J18.803" and gl[-1] == "否"
    text_only = rows["慢性阻塞性肺疾病急性加重"]
    assert text_only[1] == "仅文本" and text_only[2] == "J44.100" and text_only[-1] == "是"
    local = rows["HIS-DX-0231 高血压病"]
    assert local[1] == "本院编码" and local[-1] == "是"
    options = options_by_code(card)
    assert options["J18.803"][2] == "是" and "编码由映射得到，请核对" in options["J18.803"][3]
    assert options["J44.100（待确认）"][1] == "慢性阻塞性肺疾病急性加重"  # the record's words, not the guess
    assert options["J44.100（待确认）"][2:4] == ["否", "编码需编码员确认后才能判断"]

    by_label = {s["label"]: s for s in card["suggestions"]}
    # the HIS code's display 高血压病 is the concept 高血压 in other wording: assigned, so offered too
    assert set(by_label) == {
        "为“J18.800x003 阻塞性肺炎”补充医保版编码 J18.803",
        "为“HIS-DX-0231 高血压病”补充医保版编码 I10.x00x002",
    }
    suggestion = by_label["为“J18.800x003 阻塞性肺炎”补充医保版编码 J18.803"]
    (action,) = suggestion["actions"]
    assert action["type"] == "update" and action["resource"]["id"] == "demo-cond-pneu-1"
    codings = action["resource"]["code"]["coding"]
    assert {(c["system"], c["code"]) for c in codings} == {(GL_DX, "J18.800x003"), (YB_DX, "J18.803")}
    assert card["selectionBehavior"] == "any"


def test_newborn_discharge_reads_the_birth_weight_from_the_fhir_server(servers):
    servers.fhir.reset()
    card = only_card(servers, _derived_newborn_discharge(servers))
    assert any("code=http://loinc.org|8339-4" in q for q in servers.fhir.queries("/Observation"))
    checks = bullets_after(card["detail"], CHECKS)
    # the weight used is shown, and 1850 g fits P07.1 (1000–2499 g): no error about it
    assert [c for c in checks if "出生体重" in c] == ["提示：新生儿出生体重 1850 克"], checks

    body = _derived_newborn_discharge(servers)
    del body["fhirServer"], body["fhirAuthorization"]  # nowhere to read the Observation from
    checks = bullets_after(only_card(servers, body)["detail"], CHECKS)
    assert (
        "错误：新生儿病例缺少出生体重（结算清单必填，影响分组）（质控规则 newborn.birth_weight_missing）"
        in checks
    )


def test_patient_view_without_an_open_encounter_gives_no_card(servers):
    assert cards_of(servers, demo(servers, "patient-view-no-open-encounter")) == []


def test_stroke_patient_view_is_approaching_the_standard(servers):
    card = only_card(servers, demo(servers, "patient-view-stroke"))
    # 1280 × 1.05 (65 岁及以上) × 5.80 (职工, from the patient's Coverage)
    assert card["summary"].startswith("本次住院 I63.9 未特指的脑梗死：支付标准 ¥7,795.20")
    assert "（95.7%，接近支付标准）" in card["summary"]
    assert "| 已住院天数 | 8 天（本病种平均 6.5 天） |" in plain(card["detail"])  # 2026-11-14 → pinned today


def test_stroke_draft_orders_push_the_stay_past_its_standard(servers):
    card = only_card(servers, demo(servers, "order-sign-stroke-high-cost"))
    assert card["indicator"] == "warning"
    assert "I63.9" in card["summary"] and "高于支付标准" in card["detail"]


# =============================================================================== 3. compliance rules


@pytest.fixture(scope="module")
def terminology():
    return load_terminology(None)


@pytest.fixture(scope="module")
def engine(terminology):
    return load_catalogs(None).engine(None, terminology)


RULES = load_coding_rules(None)


def no_region_exclusions(code: str) -> str | None:
    return None


def stay_of(
    terminology,
    conditions: list[dict[str, Any]],
    ranks: list[tuple[str, int | None]] | None = None,
    procedures: list[dict[str, Any]] = (),
    *,
    pat: dict[str, Any] | None = None,
    observations: Any = None,
    start: str = "2026-11-10T08:00:00+08:00",
    end: str | None = "2026-11-20T10:00:00+08:00",
) -> Stay:
    """A stay read from FHIR the way the discharge hook reads it."""
    enc = encounter(diagnoses=ranks, start=start, end=end, status="finished" if end else "in-progress")
    return read_stay(
        pat or patient(),
        enc,
        searchset(*conditions),
        searchset(*procedures),
        terminology,
        at_discharge=True,
        observations=observations,
    )


def verdict(stay: Stay, code: str, excluded=no_region_exclusions, treated=None):
    (d,) = [d for d in stay.diagnoses if d.code == code or d.documented == code]
    return admissibility(stay, d, RULES, excluded, treated)


def hand_diagnosis(code: str, name: str, cid: str | None = None) -> StayDiagnosis:
    """A diagnosis whose 医保版 code is taken as given (codes the sample terminology does not list)."""
    return StayDiagnosis(cid or code, None, code, Resolution(code, name, YB_DX, 1.0, "yb2.0-exact"),
                         verification="confirmed")  # fmt: skip


def hand_procedure(code: str) -> StayProcedure:
    return StayProcedure(code, None, code, Resolution(code, code, YB_PX, 1.0, "yb2.0-exact"),
                         performed=datetime(2026, 11, 11, 10))  # fmt: skip


def test_an_asterisk_code_is_never_principal_but_its_dagger_pair_is(terminology):
    stay = Stay(None, None, (hand_diagnosis("G01*", "细菌性疾病引起的脑膜炎（星号）"),), ())
    v = admissibility(stay, stay.principal, RULES, no_region_exclusions)
    assert not v.admissible and "星号编码表示临床表现，不能作为主要诊断" in v.reasons

    stay = stay_of(terminology, [condition("c1", "E11.201+N08.3*")], [("c1", 1)])
    assert verdict(stay, "E11.201+N08.3*").admissible


@pytest.mark.parametrize("code", ["W19.x00", "X59.000"])
def test_an_external_cause_code_is_never_principal(terminology, code):
    stay = stay_of(terminology, [condition("c1", code)], [("c1", 1)])
    v = verdict(stay, code)
    assert not v.admissible
    assert "损伤中毒的外部原因编码（V/W/X/Y）不能作为主要诊断" in v.reasons


def test_a_symptom_is_not_principal_when_a_confirmed_diagnosis_is_documented(terminology):
    stay = stay_of(
        terminology, [condition("c1", "R05.x00"), condition("c2", "J18.900")], [("c1", 1), ("c2", 2)]
    )
    v = verdict(stay, "R05.x00")
    assert not v.admissible and "症状体征编码，已有明确诊断（J18.900）时不能作为主要诊断" in v.reasons
    assert verdict(stay, "J18.900").admissible


def test_a_symptom_is_principal_when_it_is_the_only_diagnosis(terminology):
    alone = stay_of(terminology, [condition("c1", "R50.900")], [("c1", 1)])
    v = verdict(alone, "R50.900")
    assert v.admissible and "症状体征编码，仅在无明确诊断时可作为主要诊断" in v.reasons
    # a provisional diagnosis is not yet "confirmed": the symptom stays admissible
    with_provisional = stay_of(
        terminology,
        [condition("c1", "R50.900"), condition("c2", "J18.900", verification="provisional")],
        [("c1", 1), ("c2", 2)],
    )
    assert verdict(with_provisional, "R50.900").admissible


def test_a_complication_is_not_principal_when_the_stay_had_an_operation(terminology):
    conds = [condition("c1", "J95.800x016"), condition("c2", "C34.100x004")]
    operated = stay_of(terminology, conds, [("c1", 1), ("c2", 2)], [procedure("pr1", "32.4100")])
    v = verdict(operated, "J95.800x016")
    assert not v.admissible
    assert "本次住院手术后发生的并发症，不能作为主要诊断（应以手术所治疗的疾病为主要诊断）" in v.reasons

    not_operated = stay_of(terminology, conds, [("c1", 1), ("c2", 2)])
    v = verdict(not_operated, "J95.800x016")
    assert v.admissible and "本次为治疗该并发症而入院" in v.reasons


def test_a_t81_complication_follows_the_same_rule():
    infection = hand_diagnosis("T81.400", "操作后感染")
    operated = Stay(None, None, (infection,), (hand_procedure("86.2200"),))
    assert not admissibility(operated, infection, RULES, no_region_exclusions).admissible
    admitted_for_it = Stay(None, None, (infection,), ())
    assert admissibility(admitted_for_it, infection, RULES, no_region_exclusions).admissible


def test_a_complication_treated_by_this_stays_operation_is_principal(terminology, engine):
    conds = [condition("c1", "J95.800x016"), condition("c2", "I10.x00x002")]
    procs = [procedure("pr1", "34.0401", reason="c1")]  # closed drainage of the post-operative empyema
    stay = stay_of(terminology, conds, [("c1", 1), ("c2", 2)], procs)
    treated = treated_by_operation(
        stay, lambda c: engine.optypes.classify(c)[0] == OpType.SS, lambda d, o: False
    )
    assert treated is not None and [d.code for d in treated] == ["J95.800x016"]
    assert verdict(stay, "J95.800x016", treated=treated).admissible


def test_a_diagnosis_documented_for_another_stay_is_not_principal(terminology):
    conds = [condition("c1", "K35.300", eid="older-stay"), condition("c2", "J18.900")]
    stay = stay_of(terminology, conds, [("c1", 1), ("c2", 2)])
    v = verdict(stay, "K35.300")
    assert not v.admissible and "不是本次住院记录的诊断" in v.reasons
    assert verdict(stay, "J18.900").admissible


def test_an_unconfirmed_diagnosis_is_not_principal(terminology):
    for status in ("provisional", "differential"):
        stay = stay_of(terminology, [condition("c1", "J18.900", verification=status)], [("c1", 1)])
        v = verdict(stay, "J18.900")
        assert not v.admissible and f"诊断尚未确认（{status}）" in v.reasons


def test_the_regions_excluded_list_applies(terminology, engine):
    def region(code: str) -> str | None:  # exactly how the discharge hook asks the region's policy
        return engine.policy.excludes(code, code[:5], code[:3])

    stay = stay_of(
        terminology, [condition("c1", "Z51.800"), condition("c2", "J18.900")], [("c1", 1), ("c2", 2)]
    )
    v = verdict(stay, "Z51.800", excluded=region)
    assert not v.admissible and "本统筹区规定 Z51.8 不能作为主要诊断" in v.reasons
    assert verdict(stay, "Z51.800").admissible  # without the region's list Z51.8 is not forbidden
    assert verdict(stay, "J18.900", excluded=region).admissible


def dip_context(engine) -> DipContext:
    return DipContext(engine, load_card_templates(None), None, load_prices(None), local_maps_for_home(None))


def test_inadmissible_options_never_show_a_group_and_options_keep_the_documented_order(terminology, engine):
    conds = [
        condition("c1", "I10.x00x002"),
        condition("c2", "C34.100x004"),
        condition("c3", "R05.x00"),
        condition("c4", "W19.x00"),
        condition("c5", "J18.900", verification="provisional"),
    ]
    stay = stay_of(terminology, conds, [(f"c{i}", i) for i in range(1, 6)])
    options, alternatives = principal_options(dip_context(engine), stay, RULES, engine.evaluate)

    assert [o.code for o in options] == ["I10.x00x002", "C34.100x004", "R05.x00", "W19.x00", "J18.900"]
    assert [o.admissible for o in options] == [True, True, False, False, False]
    assert all(o.group is None for o in options if not o.admissible)
    assert all(o.group is not None and o.reasons for o in options if o.admissible)
    # the order is the record's, not the money's: the second option scores higher than the first
    assert options[1].group.score > options[0].group.score
    assert [d.code for d in alternatives] == ["C34.100x004"]


def discharge_with(conditions, ranks, procedures=()) -> dict[str, Any]:
    enc = encounter(diagnoses=ranks, end="2026-11-20T10:00:00+08:00", status="finished")
    return encounter_request("encounter-discharge", enc, conditions, list(procedures))


def principal_changes(card: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in card.get("suggestions", []) if s["label"].startswith("按规范将")]


def test_discharge_offers_a_principal_change_only_when_the_principal_is_inadmissible(servers):
    symptom_first = discharge_with(
        [condition("c1", "R10.402"), condition("c2", "K35.300")], [("c1", 1), ("c2", 2)]
    )
    card = only_card(servers, symptom_first)
    (change,) = principal_changes(card)
    assert change["label"] == "按规范将“K35.300”设为主要诊断"
    (action,) = change["actions"]
    assert action["type"] == "update" and action["resource"]["resourceType"] == "Encounter"
    ranked = {e["condition"]["reference"]: e["rank"] for e in action["resource"]["diagnosis"]}
    assert ranked == {"Condition/c2": 1, "Condition/c1": 2}

    right_first = discharge_with(
        [condition("c1", "K35.300"), condition("c2", "R10.402")], [("c1", 1), ("c2", 2)]
    )
    assert principal_changes(only_card(servers, right_first)) == []


def test_discharge_never_suggests_a_diagnosis_not_documented_for_this_stay(servers):
    body = discharge_with(
        [
            condition("c1", "W19.x00"),  # inadmissible principal
            condition("c2", "K35.300", eid="older-stay"),  # listed on the encounter, documented elsewhere
            condition("c3", "C34.100x004", eid="older-stay"),  # problem list of another stay, not listed
        ],
        [("c1", 1), ("c2", 2)],
    )
    card = only_card(servers, body)
    options = options_by_code(card)
    assert list(options) == ["W19.x00", "K35.300"]  # C34 of the other stay is not even compared
    assert options["W19.x00"][2] == "否"
    assert options["K35.300"][2:4] == ["否", "不是本次住院记录的诊断"]
    assert principal_changes(card) == []


# =============================================================================== 4. settlement-list checks


def messages(checks, level: str) -> list[str]:
    return [c.message for c in checks if c.level == level]


def checks_of(engine, stay) -> list:
    """The coder card's checks: the shared quality gate on the stay's case, plus the FHIR-only ones."""
    return settlement_checks(stay, engine.group(stay.case()))


def test_a_male_patient_with_an_obstetric_code_is_an_error(terminology, engine):
    conds = [condition("c1", "O80.000")]
    male = stay_of(terminology, conds, [("c1", 1)], pat=patient(gender="male", birth_date="1990-01-01"))
    assert "O80.000 头位顺产 只适用于女性，患者性别为男（质控规则 sex.mismatch）" in messages(
        checks_of(engine, male), "error"
    )
    female = stay_of(terminology, conds, [("c1", 1)], pat=patient(gender="female", birth_date="1990-01-01"))
    assert not any("性别" in m for m in messages(checks_of(engine, female), "error"))


NEWBORN = patient(birth_date="2026-11-18")


def test_a_newborn_without_birth_weight_is_an_error(terminology, engine):
    conds = [condition("c1", "P07.300x001")]
    missing = stay_of(terminology, conds, [("c1", 1)], pat=NEWBORN, start="2026-11-18T06:00:00+08:00")
    assert any(
        "缺少出生体重" in m and "newborn.birth_weight_missing" in m
        for m in messages(checks_of(engine, missing), "error")
    )
    weighed = stay_of(
        terminology, conds, [("c1", 1)], pat=NEWBORN, start="2026-11-18T06:00:00+08:00",
        observations=searchset(birth_weight(2.1, "kg")),
    )  # fmt: skip
    assert weighed.birth_weight_g == 2100
    assert messages(checks_of(engine, weighed), "error") == []


def test_a_low_birth_weight_code_must_match_the_weight(terminology, engine):
    def errors(grams: int) -> list[str]:
        stay = stay_of(
            terminology, [condition("c1", "P07.101")], [("c1", 1)], pat=NEWBORN,
            start="2026-11-18T06:00:00+08:00", observations=searchset(birth_weight(grams)),
        )  # fmt: skip
        return messages(checks_of(engine, stay), "error")

    assert errors(3000) == [
        "P07.101 低出生体重儿（1500-2499克） 与出生体重 3000 克不符（该编码为 1000–2499 克）"
        "（质控规则 newborn.birth_weight_band）"
    ]
    assert errors(1850) == []


def test_a_procedure_dated_outside_the_stay_is_a_warning_and_not_grouped(terminology, engine):
    stay = stay_of(
        terminology,
        [condition("c1", "C34.100x004")],
        [("c1", 1)],
        [
            procedure("biopsy", "33.2600x002", performed="2026-11-01T09:00:00+08:00"),
            procedure("op", "32.4100"),
        ],
    )
    assert [p.procedure_id for p in stay.procedures_outside] == ["biopsy"]
    assert stay.case().procedures == ("32.4100",)
    warnings = messages(checks_of(engine, stay), "warning")
    assert any("日期 2026-11-01 不在本次住院期间，未计入分组" in w and "33.2600x002" in w for w in warnings)


def test_two_diagnoses_with_the_same_rank_are_a_warning(terminology, engine):
    conds = [condition("c1", "K35.300"), condition("c2", "I10.x00x002")]
    tied = stay_of(terminology, conds, [("c1", 1), ("c2", 1)])
    assert (
        "多个诊断排序相同（K35.300、I10.x00x002），主要诊断不明确（质控规则 principal.rank_conflict）"
        in messages(checks_of(engine, tied), "warning")
    )
    ordered = stay_of(terminology, conds, [("c1", 1), ("c2", 2)])
    assert not any("排序" in m for m in messages(checks_of(engine, ordered), "warning"))


# =============================================================================== 6. feedback round trip


def test_feedback_on_a_real_card_is_stored(servers):
    card = only_card(servers, demo(servers, "encounter-discharge-pneumonia"))
    suggestion_id = card["suggestions"][0]["uuid"]
    reason = card["overrideReasons"][0]
    feedback = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "accepted",
                "acceptedSuggestions": [{"id": suggestion_id}],
                "outcomeTimestamp": "2026-11-22T09:00:00+08:00",
            },
            {
                "card": card["uuid"],
                "outcome": "overridden",
                "overrideReason": {"reason": reason, "userComment": "已与主治医师核对"},
                "outcomeTimestamp": "2026-11-22T09:05:00+08:00",
            },
        ]
    }
    url = f"{servers.url}/cds-services/dip-encounter-discharge/feedback"
    response = requests.post(url, json=feedback, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json() == {"stored": 2, "duplicates": 0}
    assert requests.post(url, json=feedback, timeout=10).json() == {"stored": 0, "duplicates": 2}

    with sqlite3.connect(Path(servers.home) / "feedback.sqlite") as db:
        rows = db.execute(
            "select service_id, outcome, outcome_timestamp, accepted_suggestions, override_system,"
            " override_code, override_display, user_comment from cds_feedback where card_uuid = ?"
            " order by outcome",
            (card["uuid"],),
        ).fetchall()
    assert rows == [
        ("dip-encounter-discharge", "accepted", "2026-11-22T01:00:00+00:00", json.dumps([suggestion_id]),
         None, None, None, None),
        ("dip-encounter-discharge", "overridden", "2026-11-22T01:05:00+00:00", None,
         reason["system"], reason["code"], reason["display"], "已与主治医师核对"),
    ]  # fmt: skip
    summary = requests.get(f"{url}/summary", timeout=10).json()
    assert {
        "system": reason["system"],
        "code": reason["code"],
        "display": reason["display"],
        "count": 1,
    } in summary["overrideReasons"]


# =============================================================================== 7. the assessment event


def test_every_dip_service_publishes_one_assessment_per_answer_through_the_apps_event_bus(tmp_path):
    """Through the seam (``req.publish``), to whichever plugin subscribes: not only to the console."""
    received: list[dict[str, Any]] = []
    probe = Plugin(name="probe", events={"assessment": lambda data, event: received.append(dict(event))})
    plugins = [p for p in discover() if p.name != "console"] + [probe]
    app = create_app(settings_from_mapping({"logging": {"level": "WARNING"}}, plugins=plugins), tmp_path,
                     plugins=plugins)  # fmt: skip
    with serving(create_demo_fhir_app()) as fhir_url:
        for service, (name, patient_id, encounter_id, group) in sorted(E2E_CASES.items()):
            body = demo_request(name)
            body["fhirServer"] = fhir_url
            received.clear()
            response = app.test_client().post(f"/cds-services/{service}", json=body)
            assert response.status_code == 200, response.text
            (event,) = received
            assert (event["kind"], event["service"], event["channel"]) == ("dip", service, "cds-hooks")
            assert (event["patient_id"], event["encounter_id"]) == (patient_id, encounter_id)
            assert event["hook_instance"] == body["hookInstance"]
            assert event["dip"]["group_code"] == group
            assert [c["uuid"] for c in event["cards"]] == [c["uuid"] for c in response.json["cards"]]
