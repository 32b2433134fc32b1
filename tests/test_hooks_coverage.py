"""The patient's insurance type for pricing (issue 9 item 6): read from FHIR Coverage (职工 / 居民),
the configured ``[dip] insurance_type`` only the default, and the card says which was used."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from hooks.coverage import insurance_of, load_coverage_types
from tests.demo_fhir_helpers import demo_request
from tests.hooks_helpers import pin_today, plain, searchset, service_app

INSUTYPE = "http://www.nhsa.gov.cn/CodeSystem/insutype"
ADMITTED = date(2026, 11, 14)


def coverage(cid: str = "cov", *, code: str | None = None, display: str | None = None, text: str | None = None,
             system: str = INSUTYPE, status: Any = "active", patient: str = "p1", order: Any = None,
             period: dict | None = None) -> dict[str, Any]:  # fmt: skip
    concept: dict[str, Any] = {}
    if code is not None or display is not None:
        concept["coding"] = [
            {k: v for k, v in (("system", system), ("code", code), ("display", display)) if v}
        ]
    if text is not None:
        concept["text"] = text
    resource: dict[str, Any] = {"resourceType": "Coverage", "id": cid, "status": status, "type": concept,
                                "beneficiary": {"reference": f"Patient/{patient}"}, "payor": [{"display": "医保局"}]}  # fmt: skip
    if order is not None:
        resource["order"] = order
    if period is not None:
        resource["period"] = period
    return resource


def read(*resources, default: str | None = None):
    return insurance_of(
        searchset(*resources), patient_id="p1", on=ADMITTED, default=default, types=load_coverage_types(None)
    )


def test_the_insurance_type_code_names_the_insurance():
    assert (read(coverage(code="310")).type, read(coverage(code="390")).type) == ("职工", "居民")
    found = read(coverage(code="310", display="职工基本医疗保险"))
    assert (found.source, found.detail) == ("coverage", "职工基本医疗保险")


def test_a_his_coding_or_plain_text_is_read_by_its_words():
    his = read(
        coverage(code="02", display="城乡居民医保", system="http://hospital.example.cn/CodeSystem/insurance")
    )
    assert (his.type, his.detail) == ("居民", "城乡居民医保")
    assert read(coverage(text="城镇职工基本医疗保险")).type == "职工"
    # a code of another system is not trusted by its digits alone
    assert read(coverage(code="310", system="http://example.org/other")).type is None


def test_coverage_not_in_force_on_admission_or_of_someone_else_does_not_count():
    cancelled = coverage("a", code="310", status="cancelled")
    expired = coverage("b", code="310", period={"start": "2025-01-01", "end": "2025-12-31"})
    other = coverage("c", code="310", patient="someone-else")
    assert read(cancelled, expired, other).source == "unknown"
    current = coverage("d", code="390", period={"start": "2026-01-01", "end": "2026-12-31"})
    assert read(cancelled, expired, other, current).type == "居民"


def test_a_supplementary_insurance_does_not_decide_and_order_does_when_two_disagree():
    supplementary = coverage("s", code="320", display="公务员医疗补助", order=1)
    assert read(supplementary, coverage("b", code="390", order=2)).type == "居民"
    both = read(coverage("r", code="390", order=2), coverage("e", code="310", order=1))
    assert both.type == "职工" and "多条参保信息" in both.note


def test_without_a_usable_coverage_the_configured_default_then_unknown():
    assert read(default="城镇职工").type == "职工" and read(default="城镇职工").source == "default"
    assert read().type is None and read().source == "unknown"
    assert read(coverage(text="自费")).source == "unknown"


@pytest.mark.parametrize(
    "garbage",
    [
        {"resourceType": "Coverage", "type": ["310"], "status": ["active"]},
        {"resourceType": "Coverage", "type": {"coding": "310", "text": 5}, "order": "1"},
        {"resourceType": "Coverage", "type": {"coding": [None, 3, {"code": ["310"]}]}, "period": "2026"},
        {"resourceType": "Coverage", "beneficiary": "Patient/p1", "period": {"start": 20260101}},
        {"resourceType": "Patient", "id": "p1"},
        "Coverage",
    ],
)
def test_malformed_coverage_is_ignored_never_a_crash(garbage):
    assert read(garbage).source == "unknown"


def test_a_hospital_adds_its_own_codes(tmp_path):
    (tmp_path / "coverage_types.toml").write_text(
        'systems = ["http://hospital.example.cn/CodeSystem/insurance"]\n[types]\n"A1" = "职工"\n',
        encoding="utf-8",
    )
    types = load_coverage_types(tmp_path)
    mine = coverage(code="A1", system="http://hospital.example.cn/CodeSystem/insurance")
    assert (
        insurance_of(searchset(mine), patient_id="p1", on=ADMITTED, default=None, types=types).type == "职工"
    )
    assert types.codes["310"] == "职工"  # the built-in list stays


# ----------------------------------------------------------------------------- on the card


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    return service_app(tmp_path_factory.mktemp("home")).test_client()


@pytest.fixture(autouse=True)
def pinned_today(monkeypatch):
    pin_today(monkeypatch)


def test_the_patients_own_insurance_prices_the_card_and_the_card_says_so(client):
    body = demo_request("patient-view-newborn")  # 居民 (390): 1800 × 1.2 (newborn) × 5.40
    (card,) = client.post("/cds-services/dip-patient-view", json=body).get_json()["cards"]
    assert "支付标准 ¥11,664.00" in card["summary"]
    assert (
        "参保类型 居民（据患者参保信息：城乡居民基本医疗保险）；点值 5.40 元/分（本地区预估点值）"
        in plain(card["detail"])
    )
    body["prefetch"]["coverage"]["entry"][0]["resource"]["type"] = {
        "coding": [{"system": INSUTYPE, "code": "310"}]
    }
    (card,) = client.post("/cds-services/dip-patient-view", json=body).get_json()["cards"]
    assert "支付标准 ¥12,528.00" in card["summary"]  # 1800 × 1.2 × 5.80 (职工)
