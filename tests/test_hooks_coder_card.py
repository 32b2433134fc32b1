"""The coder's card at discharge (issue 9 item 4): the principal-procedure check and the competing
principal diagnoses.

主要手术操作选择可能不当: when a later-listed procedure is of a higher type than the coded principal
one, or is the 主操作 of a core group while the coded principal leads to none, the card says so with
the 填写规范 rule and shows both groupings side by side — grouping itself never re-orders the list.
Competing principal diagnoses: at most one FHIR suggestion, the one the 填写规范 make compliant; the
others stay information in the record's order, never ranked by payment.
"""

from __future__ import annotations

from typing import Any

import pytest

from cds_service.app import create_app, preload
from cds_service.config import settings_from_mapping
from tests.hooks_helpers import (
    condition,
    encounter,
    encounter_request,
    patient,
    pin_today,
    plain,
    procedure,
    service_app,
    table_after,
)
from tests.hooks_real_helpers import PDS_REGION, real_hooks_home

CHECK = "主要手术操作选择可能不当"
RULE = "主要手术及操作一般是风险最大、难度最高、花费最多的手术及操作"


@pytest.fixture(autouse=True)
def pinned_today(monkeypatch):
    pin_today(monkeypatch)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    return service_app(tmp_path_factory.mktemp("home")).test_client()


@pytest.fixture(scope="module")
def real_client(tmp_path_factory):
    settings = settings_from_mapping({"logging": {"level": "WARNING"}, "dip": {"region": PDS_REGION}})
    app = create_app(settings=settings, home=real_hooks_home(tmp_path_factory))
    assert preload(app) == []
    return app.test_client()


def discharge(client, diagnoses: list[str], procedures: list[str] = (), ranks=None) -> dict[str, Any]:
    """The coder's card for a finished stay: diagnoses ranked in the given order (unless ``ranks``),
    procedures listed in the given order (the settlement list's)."""
    conds = [condition(f"c{i}", code) for i, code in enumerate(diagnoses, start=1)]
    ranked = ranks or [(f"c{i}", i) for i in range(1, len(diagnoses) + 1)]
    enc = encounter(diagnoses=ranked, end="2026-11-20T10:00:00+08:00", status="finished")
    procs = [procedure(f"p{i}", code) for i, code in enumerate(procedures, start=1)]
    body = encounter_request("encounter-discharge", enc, conds, procs, pat=patient(birth_date="1960-01-01"))
    response = client.post("/cds-services/dip-encounter-discharge", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    (card,) = response.get_json()["cards"]
    return card


def side_by_side(card: dict[str, Any]) -> dict[str, list[str]]:
    return {row[0]: row[1:] for row in table_after(card["detail"], CHECK)}


# ----------------------------------------------------------------------------- the principal procedure


def test_a_surgery_listed_after_a_biopsy_is_flagged_with_both_groupings(client):
    card = discharge(client, ["C34.100x004"], ["33.2400x001", "32.4100"])  # biopsy first, lobectomy second
    assert card["summary"].startswith("出院分组 C34.1:33.2400x001 ")  # the list as coded: never re-ordered
    assert CHECK in card["summary"] and card["indicator"] == "warning"
    detail = plain(card["detail"])
    assert "其后的 32.4100 为手术，高于现主要手术操作 33.2400x001（诊断性操作）" in detail
    assert RULE in detail
    rows = side_by_side(card)
    assert rows["主要手术操作"] == [
        "33.2400x001 支气管镜下支气管活检（诊断性操作）",
        "32.4100 胸腔镜下肺叶切除术（手术）",
    ]
    assert rows["病种"][0].startswith("C34.1:33.2400x001 ") and rows["病种"][1].startswith("C34.1:32.4100 ")
    assert rows["分值"] == ["1,900.00", "7,200.00"]


def test_a_later_procedure_that_is_a_core_groups_main_is_flagged_when_the_coded_one_leads_to_none(client):
    # intubation without ventilation matches no J18.9 core group (J18.9:96.0400_96.7100 needs both);
    # the non-invasive ventilation listed after it is the 主操作 of J18.9:93.9000
    card = discharge(client, ["J18.900"], ["96.0400", "93.9000"])
    assert CHECK in card["summary"]
    detail = plain(card["detail"])
    assert (
        "其后的 93.9000 是核心病种 J18.9:93.9000 的主要操作，而以现主要手术操作 96.0400 未能入核心病种"
        in detail
    )
    rows = side_by_side(card)
    assert rows["病种"][1].startswith("J18.9:93.9000 ")


def test_a_well_chosen_principal_procedure_is_not_flagged(client):
    card = discharge(client, ["C34.100x004"], ["32.4100", "33.3903", "40.5914"])
    assert card["summary"].startswith("出院分组 C34.1:32.4100_33.3903+40.5914 ")
    assert CHECK not in card["summary"] and CHECK not in card["detail"]


@pytest.mark.slow
def test_on_the_real_catalog_an_intubation_listed_before_the_pci_is_flagged(real_client):
    card = discharge(real_client, ["I21.900"], ["96.0400", "36.0700", "96.7101"])
    assert card["summary"].startswith("出院分组 I21.9:96.0400_96.7101 ")  # DIP-RULES §2: as coded
    detail = plain(card["detail"])
    assert "其后的 36.0700 为介入，高于现主要手术操作 96.0400（治疗性操作）" in detail
    rows = side_by_side(card)
    assert rows["病种"][1].startswith("I21.9:36.0700 ")
    assert rows["分值"] == ["1,168.02", "3,646.54"]


@pytest.mark.slow
def test_on_the_real_catalog_the_pci_first_is_not_flagged_although_the_intubation_has_a_group(real_client):
    card = discharge(real_client, ["I21.900"], ["36.0700", "96.0400", "96.7101"])
    assert card["summary"].startswith("出院分组 I21.9:36.0700 ") and CHECK not in card["detail"]


# ----------------------------------------------------------------------------- competing principal diagnoses


def principal_changes(card: dict[str, Any]) -> list[str]:
    return [s["label"] for s in card.get("suggestions", []) if s["label"].startswith("按规范将")]


def test_one_suggestion_only_the_next_compliant_diagnosis_in_the_records_order(client):
    # a symptom as principal; two confirmed diagnoses are admissible: the record's next one is offered
    card = discharge(client, ["R10.402", "I10.x00x002", "K35.300"])
    assert principal_changes(card) == ["按规范将“I10.x00x002”设为主要诊断"]
    detail = plain(card["detail"])
    assert "建议将 I10.x00x002 高血压 设为主要诊断（病历诊断顺序中下一个符合《填写规范》的诊断）" in detail
    assert "表中其他可作为主要诊断的诊断仅供核对，顺序为病历记录顺序，与分值无关" in detail
    options = [row[0] for row in table_after(card["detail"], "主要诊断比较")]
    assert options == ["R10.402（当前）", "I10.x00x002", "K35.300"]  # the record's order, not the money's


def test_with_an_operation_the_diagnosis_it_treated_is_the_one_suggested(client):
    # the appendectomy treated K35.300: that is the compliant principal, even though I10 comes first
    card = discharge(client, ["R10.402", "I10.x00x002", "K35.300"], ["47.0100"])
    assert principal_changes(card) == ["按规范将“K35.300”设为主要诊断"]
    assert "（本次手术所治疗的疾病）" in plain(card["detail"])


def test_nothing_is_suggested_when_the_principal_is_admissible(client):
    card = discharge(client, ["K35.300", "I10.x00x002"], ["47.0100"])
    assert principal_changes(card) == [] and "建议将" not in card["detail"]
