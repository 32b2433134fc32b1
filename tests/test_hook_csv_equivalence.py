"""One settlement-list quality gate for every path (issue 9): the same stay fed through the coder's
hook (over HTTP, against a demo FHIR server) and through a CSV (``dip-cds group``) gives the same
group, the same quality findings and the same payment standard — for every demo stay, and for
variants of them made to trip the gate (a simple operation and a diagnosis of the other sex, a
newborn without birth weight, an external cause as principal, a long stay).

The CSV row is the stay's settlement list (结算清单): the 医保版 codes the FHIR record yields (read
with the hooks' own reader), sex, age, newborn weight, length of stay and the insurance type (险种,
from the patient's FHIR Coverage, as the hook reads it), marked as 医保版 (``code_system``) as the
FHIR codings were."""

from __future__ import annotations

import csv
import json
import re
import uuid
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from click.testing import CliRunner

from cds_service.cli import main
from costing.fhir_input import iter_resources
from hooks.coverage import insurance_of, load_coverage_types
from hooks.demo_fhir import DEMO_DATA_DIR
from hooks.demo_fhir import create_app as demo_fhir_app
from hooks.stay import read_stay
from mappings import local_maps_for_home
from terminology import load_terminology
from tests.demo_fhir_helpers import serving
from tests.hooks_helpers import bullets_after, pin_today, service_app

RULE = re.compile(r"（质控规则 ([a-z_.]+)）")
STANDARD = re.compile(r"支付标准 ¥([\d,]+\.\d\d)")


YB_DX = "http://www.nhsa.gov.cn/CodeSystem/icd10-yb2.0"
YB_PX = "http://www.nhsa.gov.cn/CodeSystem/icd9cm3-yb2.0"


def _variant(file: str, old: str, new: str) -> dict:
    """A demo bundle with its ids renamed (``old`` → ``new``), to be changed into a gate test."""
    return json.loads((DEMO_DATA_DIR / file).read_text(encoding="utf-8").replace(old, new))


def _resource(bundle: dict, kind: str, id_part: str = "") -> dict:
    return next(
        e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == kind and id_part in e["resource"]["id"]
    )


def _add(bundle: dict, resource: dict) -> None:
    bundle["entry"].append(
        {"fullUrl": f"urn:demo:{resource['resourceType']}/{resource['id']}", "resource": resource}
    )


def variants() -> dict[str, dict]:
    """Demo stays changed so that the quality gate has something to find."""
    stroke = _variant("patient-stroke.json", "stroke", "qcstroke")  # a man
    refs = {
        "subject": {"reference": "Patient/demo-qcstroke"},
        "encounter": {"reference": "Encounter/demo-enc-qcstroke"},
    }
    _add(stroke, {"resourceType": "Procedure", "id": "qc-catheter", "status": "completed", **refs,
                  "code": {"coding": [{"system": YB_PX, "code": "57.9400"}]}})  # fmt: skip
    obstetric = json.loads(json.dumps(_resource(stroke, "Condition", "-3")))
    obstetric["id"], obstetric["code"] = "qc-obstetric", {"coding": [{"system": YB_DX, "code": "O80.000"}]}
    _add(stroke, obstetric)

    newborn = _variant("patient-newborn.json", "newborn", "qcnewborn")
    newborn["entry"] = [e for e in newborn["entry"] if e["resource"]["resourceType"] != "Observation"]

    fall = _variant("patient-appendicitis.json", "appendicitis", "qcfall")
    _resource(fall, "Condition")["code"] = {"coding": [{"system": YB_DX, "code": "W19.x00"}]}

    long_stay = _variant("patient-lungcancer.json", "lung", "qclung")
    _resource(long_stay, "Encounter")["period"]["start"] = "2026-08-01T08:00:00+08:00"
    return {
        "qc-stroke.json": stroke,
        "qc-newborn.json": newborn,
        "qc-fall.json": fall,
        "qc-long.json": long_stay,
    }


AUDIT_DEMO = "patient-audit-"  # the 医保智能审核 demo stays (orders only, no diagnoses): not DIP cases


@pytest.fixture(scope="module")
def fhir_data(tmp_path_factory) -> Path:
    """The demo data set plus the variants, as a directory the demo FHIR server serves."""
    folder = tmp_path_factory.mktemp("fhir")
    for path in DEMO_DATA_DIR.glob("*.json"):
        if not path.name.startswith(AUDIT_DEMO):
            (folder / path.name).write_bytes(path.read_bytes())
    for name, bundle in variants().items():
        (folder / name).write_text(json.dumps(bundle, ensure_ascii=False), encoding="utf-8")
    return folder


def stays(folder: Path) -> list[tuple[str, str, str]]:
    """(file, patient id, encounter id) of every encounter in the data set."""
    out = []
    for path in sorted(folder.glob("*.json")):
        resources = list(iter_resources(json.loads(path.read_text(encoding="utf-8"))))
        patients = [r["id"] for r in resources if r["resourceType"] == "Patient"]
        out += [(path.name, patients[0], r["id"]) for r in resources if r["resourceType"] == "Encounter"]
    return out


@pytest.fixture(scope="module")
def servers(tmp_path_factory, fhir_data):
    home = tmp_path_factory.mktemp("home")
    with serving(service_app(home)) as url, serving(demo_fhir_app(fhir_data)) as fhir_url:
        yield SimpleNamespace(url=url, fhir_url=fhir_url, home=home, data=fhir_data, stays=stays(fhir_data))


@pytest.fixture(autouse=True)
def pinned_today(monkeypatch):
    pin_today(monkeypatch)


def through_the_hook(servers, patient: str, encounter: str) -> dict:
    body = {
        "hookInstance": str(uuid.uuid4()),
        "hook": "encounter-discharge",
        "fhirServer": servers.fhir_url,
        "context": {"userId": "Practitioner/demo-dr-zhang", "patientId": patient, "encounterId": encounter},
    }
    response = requests.post(f"{servers.url}/cds-services/dip-encounter-discharge", json=body, timeout=10)
    assert response.status_code == 200, response.text
    (card,) = response.json()["cards"]
    code = re.match(r"出院分组 (\S+) ", card["summary"])
    standard = STANDARD.search(card["summary"])
    checks = bullets_after(card["detail"], "结算清单检查") if "结算清单检查" in card["detail"] else []
    return {
        "dip_code": code.group(1) if code else "",
        "standard": Decimal(standard.group(1).replace(",", "")) if standard else None,
        "findings": [(m.group(1), check) for check in checks if (m := RULE.search(check))],
    }


def settlement_list_row(servers, file: str, encounter_id: str) -> dict:
    """The stay's 结算清单 as a hospital would export it to a CSV."""
    resources = list(iter_resources(json.loads((servers.data / file).read_text(encoding="utf-8"))))
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    encounter = next(r for r in resources if r["resourceType"] == "Encounter" and r["id"] == encounter_id)
    stay = read_stay(
        patient, encounter, resources, resources, load_terminology(servers.home),
        local_maps=local_maps_for_home(servers.home), at_discharge=True, observations=resources,
    )  # fmt: skip
    case = stay.case()
    insurance = insurance_of(
        resources, patient_id=patient["id"], on=stay.admitted.date() if stay.admitted else None, default=None,
        types=load_coverage_types(servers.home),
    )  # fmt: skip
    return {
        "case_id": encounter_id,
        "sex": {"M": "男", "F": "女"}.get(case.sex or "", ""),
        "age": case.age if case.age is not None else "",
        "age_days": case.age_days if case.age_days is not None else "",
        "birth_weight_g": case.birth_weight_g or "",
        "los_days": case.los_days if case.los_days is not None else "",
        "main_diagnosis": case.main_diagnosis,
        "other_diagnoses": "|".join(case.other_diagnoses),
        "procedures": "|".join(case.procedures),
        "insurance_type": insurance.type or "",
        "code_system": "医保版",
    }


def through_a_csv(servers, tmp_path: Path, rows: list[dict]) -> dict[str, dict]:
    src, out = tmp_path / "stays.csv", tmp_path / "grouped.csv"
    with src.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    result = CliRunner().invoke(
        main,
        ["--home", str(servers.home), "group", "--input", str(src), "--output", str(out), "--no-progress"],
    )
    assert result.exit_code == 0, result.output
    with out.open(encoding="utf-8", newline="") as fh:
        return {r["case_id"]: r for r in csv.DictReader(fh)}


def test_every_demo_stay_gets_the_same_group_findings_and_standard_from_the_hook_and_from_a_csv(
    servers, tmp_path
):
    demo = {p.name for p in DEMO_DATA_DIR.glob("patient-*.json") if not p.name.startswith(AUDIT_DEMO)}
    assert {file for file, _, _ in servers.stays} >= demo and len(servers.stays) >= 10
    rows = [settlement_list_row(servers, file, encounter) for file, _, encounter in servers.stays]
    grouped = through_a_csv(servers, tmp_path, rows)
    seen_rules: set[str] = set()
    for _file, patient, encounter in servers.stays:
        hook = through_the_hook(servers, patient, encounter)
        batch = grouped[encounter]
        assert hook["dip_code"] == batch["dip_code"], encounter
        assert hook["standard"] == (Decimal(batch["payment_standard"]) if batch["payment_standard"] else None)
        flags = [
            (*flag.split(":", 1), "")[:2] for flag in batch["qc_flags"].split("|") if flag
        ]  # rule[:code]
        assert [rule for rule, _ in hook["findings"]] == [rule for rule, _ in flags], encounter
        for (_, check), (_, code) in zip(hook["findings"], flags, strict=True):
            assert code in check  # the same code (when the finding is about one) named on the card
        seen_rules.update(rule for rule, _ in flags)
    # the variants did trip the gate, on both paths
    assert seen_rules >= {"sex.mismatch", "newborn.birth_weight_missing", "dx.never_principal", "los.long"}
    assert grouped["demo-enc-qcstroke"]["dip_code"] == "I63.9"  # the catheter is a simple operation
    assert (
        grouped["demo-enc-qcfall"]["dip_code"] == "" and grouped["demo-enc-qcfall"]["group_type"] == "未入组"
    )


def test_the_comparison_would_see_a_different_finding(servers, tmp_path):
    """The equivalence above is not vacuous: a stay whose list differs gets different findings."""
    file, _, encounter = next(s for s in servers.stays if s[0] == "patient-lungcancer.json")
    row = settlement_list_row(servers, file, encounter)
    wrong = {**row, "case_id": "wrong", "sex": "男", "main_diagnosis": "O80.000"}
    grouped = through_a_csv(servers, tmp_path, [row, wrong])
    assert grouped["wrong"]["qc_flags"] != grouped[encounter]["qc_flags"]
    assert "sex.mismatch:O80.000" in grouped["wrong"]["qc_flags"]
