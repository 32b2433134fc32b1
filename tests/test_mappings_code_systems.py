"""Codings sent under a slightly wrong or unknown system URI (issue 13 item 5).

The rule: such a coding is used only when its code is a valid 医保版 code (or a 国临版 code the
official map translates) *and* its display names the same concept as the official name. It is
then accepted with a flag and a lower confidence (0.9 for a near miss of a known URI, 0.8 for an
unknown one); otherwise it is not assigned and the conflict is shown. End to end: a draft operation
sent that way still moves the order-sign prediction, over real HTTP.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import requests

from mappings import map_codeable_concept, resolve_coding
from mappings.resolve import NEAR_MISS_CONFIDENCE, UNKNOWN_SYSTEM_CONFIDENCE
from terminology import load_terminology
from terminology.systems import GL_ICD10, YB_ICD9CM3, YB_ICD10, near_miss_system
from tests.demo_fhir_helpers import demo_request, serving
from tests.hooks_helpers import RecordingFhir, pin_today, service_app

NEAR_DX = "http://www.nhsa.gov.cn/CodeSystem/icd-10-yb-2.0"
NEAR_PX = "http://www.nhsa.gov.cn/CodeSystem/icd9cm3-yb-2.0"
HIS = "http://his.example.cn/CodeSystem/diagnosis"


@pytest.fixture(scope="module")
def term():
    return load_terminology(None)


def cc(system: str | None, code: str, display: str | None = None) -> dict[str, Any]:
    coding = (
        {"code": code} | ({"system": system} if system else {}) | ({"display": display} if display else {})
    )
    return {"coding": [coding]}


# ---------------------------------------------------------------------------------- which URIs are near misses


@pytest.mark.parametrize(
    ("uri", "meant"),
    [
        (NEAR_DX, YB_ICD10),  # separators
        ("HTTPS://nhsa.gov.cn/codesystem/ICD10-YB2.0/", YB_ICD10),  # case, scheme, www., trailing /
        ("http://www.nhsa.gov.cn/CodeSystem/icd10-yb2.O", YB_ICD10),  # a typo (letter O)
        ("http://emr.example.cn/fhir/CodeSystem/icd10-yb2.0", YB_ICD10),  # another base, same identifier
        (NEAR_PX, YB_ICD9CM3),
        ("http://www.nhc.gov.cn/CodeSystem/icd-10-gl-2.0", GL_ICD10),
    ],
)
def test_a_uri_that_evidently_means_a_known_system_is_a_near_miss(uri, meant) -> None:
    assert near_miss_system(uri).uri == meant


@pytest.mark.parametrize(
    "uri",
    [
        YB_ICD10,  # known: not a near miss, an exact match
        "urn:oid:2.16.156.10011.2.3.3.13",  # one digit from the 国临版 OID is another OID
        "http://example.org/icd-10",  # too little of an identifier without the host
        HIS,
        "",
        "x" * 600,
    ],
)
def test_other_uris_are_not_near_misses(uri) -> None:
    assert near_miss_system(uri) is None


# ---------------------------------------------------------------------------------- the mapping rule


def test_a_near_miss_with_the_official_name_is_accepted_flagged_with_lower_confidence(term) -> None:
    res = map_codeable_concept(term, "dx", cc(NEAR_DX, "K35.800x001", "急性阑尾炎"))
    assert (res.code, res.system, res.needs_confirmation) == ("K35.800x001", YB_ICD10, False)
    assert res.flags == ("system-near-miss",) and res.path == "system-near-miss:yb2.0"
    assert res.confidence == NEAR_MISS_CONFIDENCE < 1.0
    assert NEAR_DX in res.reasons[-1] and YB_ICD10 in res.reasons[-1]


def test_the_display_may_differ_in_wording_only(term) -> None:
    res = map_codeable_concept(term, "px", cc(NEAR_PX, "47.0100", "腹腔镜阑尾切除术"))  # 下 left out
    assert res.code == "47.0100" and res.flags == ("system-near-miss",)


def test_an_unknown_system_with_the_official_name_is_accepted_with_less_confidence(term) -> None:
    res = map_codeable_concept(term, "dx", cc(HIS, "K35.800x001", "急性阑尾炎"))
    assert (res.code, res.flags, res.path) == ("K35.800x001", ("system-unknown",), "system-unknown:yb2.0")
    assert res.confidence == UNKNOWN_SYSTEM_CONFIDENCE < NEAR_MISS_CONFIDENCE


def test_a_near_miss_of_the_clinical_version_is_translated_by_the_official_map(term) -> None:
    res = map_codeable_concept(
        term, "dx", cc("http://www.nhc.gov.cn/CodeSystem/icd-10-gl-2.0", "A01.000x002", "伤寒杆菌败血症")
    )
    assert (res.code, res.flags) == ("A01.003", ("system-near-miss",))
    assert res.path == "system-near-miss:gl2.0-official-map" and res.confidence <= NEAR_MISS_CONFIDENCE


def test_a_display_naming_another_disease_is_a_conflict_for_the_coder(term) -> None:
    res = map_codeable_concept(term, "dx", cc(NEAR_DX, "K35.800x001", "胆囊炎"))
    assert res.code is None and res.needs_confirmation and res.path == "code-display-conflict"
    assert [c.code for c in res.candidates][0] == "K35.800x001"  # what the code says, then the text's
    assert any("胆囊炎" in c.display for c in res.candidates[1:])


def test_without_a_display_the_code_is_not_trusted(term) -> None:
    res = map_codeable_concept(term, "dx", cc(HIS, "K35.800x001"))
    assert res.code is None and [c.code for c in res.candidates] == ["K35.800x001"]
    assert "没有 display" in res.reasons[0]


def test_a_code_that_is_no_valid_code_stays_unmapped_whatever_the_display(term) -> None:
    res = map_codeable_concept(term, "dx", cc(NEAR_DX, "K35.899x999", "急性阑尾炎"))
    assert res.code != "K35.899x999"
    assert res.path.startswith("text")  # only the display's text search remains, labelled as such


def test_the_canonical_system_still_wins_over_a_near_miss_coding(term) -> None:
    concept = cc(NEAR_DX, "K35.300", "急性阑尾炎伴局限性腹膜炎")
    concept["coding"].append({"system": YB_ICD10, "code": "K35.800x001"})
    res = map_codeable_concept(term, "dx", concept)
    assert (res.code, res.path, res.confidence) == ("K35.800x001", "yb2.0-exact", 1.0)


def test_draft_orders_need_the_display_even_without_a_system(term) -> None:
    """In orders a system-less code is usually a charge item: it counts only with its display."""
    assert resolve_coding(term, "px", {"code": "47.0100"}, trust_systemless=False).code is None
    res = resolve_coding(
        term, "px", {"code": "47.0100", "display": "腹腔镜下阑尾切除术"}, trust_systemless=False
    )
    assert (res.code, res.flags) == ("47.0100", ("system-unknown",))
    assert (
        resolve_coding(term, "px", {"code": "47.0100"}).path == "yb2.0-exact"
    )  # Condition/Procedure default


@pytest.mark.parametrize(
    "coding",
    [
        {"system": NEAR_DX + "\ud800", "code": "K35.800x001", "display": "急性阑尾炎"},
        {"system": "\x00" * 10, "code": "K35.800x001", "display": "急性阑尾炎\x00"},
        {"system": NEAR_DX, "code": "K35.800x001", "display": ["急性阑尾炎"]},
        {"system": 42, "code": "K35.800x001", "display": "急性阑尾炎"},
        {"system": NEAR_DX, "code": "K" * 10_000, "display": "急" * 10_000},
    ],
)
def test_hostile_codings_never_raise(term, coding) -> None:
    res = resolve_coding(term, "dx", coding)
    assert res.code in (None, "K35.800x001")
    assert isinstance(map_codeable_concept(term, "dx", {"coding": [coding]}).reasons, tuple)


# ---------------------------------------------------------------------------------- end to end over HTTP


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    with serving(service_app(home)) as service_url, serving(RecordingFhir()) as fhir_url:
        yield SimpleNamespace(url=service_url, fhir_url=fhir_url)


@pytest.fixture(autouse=True)
def pinned_today(monkeypatch):
    pin_today(monkeypatch)


def order_sign_card(servers, operation: dict[str, Any] | None) -> dict[str, Any]:
    """The appendicitis demo's order-sign card with its draft operation's coding replaced (None:
    the operation left out)."""
    body = demo_request("order-sign-appendicitis")
    body["fhirServer"] = servers.fhir_url
    entries = body["context"]["draftOrders"]["entry"]
    op = next(e for e in entries if e["resource"]["id"] == "demo-sr-appy-op")
    if operation is None:
        entries.remove(op)
    else:
        op["resource"]["code"] = {"coding": [operation]}
    response = requests.post(f"{servers.url}/cds-services/dip-order-sign", json=body, timeout=10)
    assert response.status_code == 200, response.text
    cards = response.json()["cards"]
    assert len(cards) == 1
    return cards[0]


OPERATION = {"system": YB_ICD9CM3, "code": "47.0100", "display": "腹腔镜下阑尾切除术"}


def test_a_draft_operation_under_a_misspelt_system_moves_the_prediction_like_the_canonical_one(servers):
    canonical = order_sign_card(servers, OPERATION)
    near = order_sign_card(servers, OPERATION | {"system": NEAR_PX})
    unknown = order_sign_card(servers, OPERATION | {"system": "http://his.example.cn/CodeSystem/operation"})
    without = order_sign_card(servers, None)
    assert "47.0100" in canonical["summary"] and "47.0100" not in without["summary"]
    assert near["summary"] == canonical["summary"] == unknown["summary"]
    assert near["detail"] == canonical["detail"]


def test_a_draft_operation_whose_display_disagrees_does_not_move_the_prediction(servers):
    wrong = order_sign_card(servers, OPERATION | {"system": NEAR_PX, "display": "胆囊切除术"})
    bare = order_sign_card(servers, OPERATION | {"system": NEAR_PX, "display": None})
    without = order_sign_card(servers, None)
    assert (wrong["summary"], wrong["detail"]) == (bare["summary"], bare["detail"])
    group = without["summary"].split("：")[0]  # "K35.3 急性阑尾炎伴局限性腹膜炎"
    assert wrong["summary"].startswith(group) and "47.0100" not in wrong["summary"]
