"""The demo FHIR server over real HTTP: what the prefetch templates and the Sandbox need."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from click.testing import CliRunner

from hooks.demo_fhir import DEMO_DATA_DIR, DemoDataError, FhirStore, create_app
from tests.demo_fhir_helpers import DEMO_REQUESTS, SHARED_DATA, demo_request, entries, serving

FHIR_JSON = "application/fhir+json"


@pytest.fixture(scope="module")
def base_url():
    with serving(create_app()) as url:
        yield url


def get(base_url: str, path: str, **kwargs) -> requests.Response:
    return requests.get(f"{base_url}/{path}", timeout=5, **kwargs)


def test_metadata_is_a_capability_statement_listing_search_parameters(base_url):
    response = get(base_url, "metadata")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith(FHIR_JSON)
    statement = response.json()
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"].startswith("4.")
    charge_item = next(r for r in statement["rest"][0]["resource"] if r["type"] == "ChargeItem")
    assert {"context", "patient", "status", "_id"} <= {p["name"] for p in charge_item["searchParam"]}


def test_read_returns_the_resource_and_unknown_ids_give_a_404_operation_outcome(base_url):
    patient = get(base_url, "Patient/demo-appendicitis").json()
    assert patient["resourceType"] == "Patient" and patient["id"] == "demo-appendicitis"
    for path in ("Patient/nobody", "Patient/bad%20id", "Basic/x", "Encounter/demo-appendicitis"):
        response = get(base_url, path)
        assert response.status_code == 404, path
        outcome = response.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"][0]["severity"] == "error"


def test_condition_search_by_patient_and_encounter_as_the_prefetch_template_asks(base_url):
    bundle = get(
        base_url,
        "Condition",
        params={"patient": "demo-lungcancer", "encounter": "demo-enc-lungcancer", "_count": 200},
    ).json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    found = entries(bundle)
    assert bundle["total"] == len(found) == 4
    assert all(c["encounter"]["reference"] == "Encounter/demo-enc-lungcancer" for c in found)


def test_charge_items_are_searched_by_context_in_either_reference_form(base_url):
    typed = get(
        base_url, "ChargeItem", params={"patient": "demo-stroke", "context": "Encounter/demo-enc-stroke"}
    )
    bare = get(base_url, "ChargeItem", params={"context": "demo-enc-stroke", "_count": 1000})
    assert typed.json()["total"] == bare.json()["total"] > 0
    assert {r["id"] for r in entries(bare.json())} >= {r["id"] for r in entries(typed.json())}


def test_coverage_is_searched_by_patient_as_the_prefetch_template_asks(base_url):
    """``patient`` on Coverage is its beneficiary (FHIR R4); every demo patient has one in force."""
    (coverage,) = entries(
        get(base_url, "Coverage", params={"patient": "demo-stroke", "status": "active"}).json()
    )
    assert coverage["beneficiary"]["reference"] == "Patient/demo-stroke"
    assert coverage["type"]["coding"][0]["code"] == "310"  # 职工基本医疗保险
    by_type = get(
        base_url, "Coverage", params={"type": "http://www.nhsa.gov.cn/CodeSystem/insutype|390"}
    ).json()
    assert {r["beneficiary"]["reference"] for r in entries(by_type)} == {
        "Patient/demo-newborn",
        "Patient/demo-no-open-encounter",
        "Patient/demo-audit-child-drug",  # 城乡居民: the 智能审核 demo stays
        "Patient/demo-audit-infant",
        "Patient/demo-audit-diabetes",
    }


def test_status_accepts_a_comma_separated_list_meaning_or(base_url):
    open_only = entries(get(base_url, "Encounter", params={"status": "in-progress"}).json())
    both = entries(get(base_url, "Encounter", params={"status": "in-progress,finished"}).json())
    assert open_only and all(e["status"] == "in-progress" for e in open_only)
    assert len(both) > len(open_only)
    assert {e["status"] for e in both} == {"in-progress", "finished"}


def test_a_patient_without_an_open_encounter_gets_an_empty_searchset(base_url):
    bundle = get(
        base_url, "Encounter", params={"patient": "demo-no-open-encounter", "status": "in-progress"}
    ).json()
    assert bundle["total"] == 0 and "entry" not in bundle


def test_unknown_parameters_are_ignored_and_reported_not_applied(base_url):
    bundle = get(base_url, "Encounter", params={"patient": "demo-stroke", "frobnicate": "1"}).json()
    self_link = next(link["url"] for link in bundle["link"] if link["relation"] == "self")
    query = parse_qs(urlsplit(self_link).query)
    assert query["patient"] == ["demo-stroke"] and "frobnicate" not in query
    outcome = next(e for e in bundle["entry"] if e["search"]["mode"] == "outcome")["resource"]
    assert outcome["resourceType"] == "OperationOutcome"
    assert "frobnicate" in outcome["issue"][0]["diagnostics"]
    assert [r["id"] for r in entries(bundle)] == ["demo-enc-stroke"]


def test_post_search_with_a_form_body_matches_get(base_url):
    form = {"patient": "demo-pneumonia", "context": "Encounter/demo-enc-pneumonia"}
    posted = requests.post(f"{base_url}/ChargeItem/_search", data=form, timeout=5)
    got = get(base_url, "ChargeItem", params=form)
    assert posted.status_code == 200
    assert [r["id"] for r in entries(posted.json())] == [r["id"] for r in entries(got.json())]


def test_count_pages_with_next_links_until_everything_was_seen(base_url):
    seen: list[str] = []
    url = f"{base_url}/ChargeItem?context=Encounter/demo-enc-lungcancer&_count=10"
    total = None
    while url:
        bundle = requests.get(url, timeout=5).json()
        total = bundle["total"]
        page = entries(bundle)
        assert len(page) <= 10
        seen.extend(r["id"] for r in page)
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
    assert len(seen) == len(set(seen)) == total > 10


def test_bad_count_is_a_400_and_writes_are_refused(base_url):
    assert get(base_url, "Patient", params={"_count": "lots"}).status_code == 400
    response = requests.put(f"{base_url}/Patient/demo-stroke", json={"resourceType": "Patient"}, timeout=5)
    assert response.status_code == 405
    assert response.json()["resourceType"] == "OperationOutcome"


def test_cors_is_open_including_preflight_and_errors(base_url):
    origin = {"Origin": "https://sandbox.cds-hooks.org"}
    assert get(base_url, "Patient/nobody", headers=origin).headers["Access-Control-Allow-Origin"] in (
        "*",
        origin["Origin"],
    )
    preflight = requests.options(
        f"{base_url}/Condition/_search",
        headers={
            **origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization",
        },
        timeout=5,
    )
    assert preflight.status_code == 200
    assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()


def test_a_base_path_serves_the_same_api_under_a_prefix():
    with serving(create_app(base_path="/fhir")) as url:
        assert requests.get(f"{url}/fhir/Patient/demo-stroke", timeout=5).status_code == 200
        bundle = requests.get(f"{url}/fhir/Encounter?patient=demo-stroke", timeout=5).json()
        assert bundle["link"][0]["url"].startswith(f"{url}/fhir/Encounter?")


def test_the_full_prefetch_in_each_request_example_is_what_the_server_answers(base_url):
    """The example requests carry exactly the data a client would have prefetched from this server."""
    templates = {
        "conditions": "Condition?patient={p}&encounter={e}",
        "procedures": "Procedure?patient={p}&encounter={e}",
        "chargeItems": "ChargeItem?patient={p}&context=Encounter/{e}&_count=1000",
        "openEncounters": "Encounter?patient={p}&status=in-progress",
        "coverage": "Coverage?patient={p}&status=active",
        "medicationRequests": "MedicationRequest?patient={p}&encounter=Encounter/{e}&_count=500",
        "medicationAdministrations": "MedicationAdministration?patient={p}&context=Encounter/{e}&_count=1000",
    }
    checked = 0
    for path in sorted(DEMO_REQUESTS.glob("*.json")):
        request = json.loads(path.read_text(encoding="utf-8"))
        context = request["context"]
        for key, value in (request.get("prefetch") or {}).items():
            if key == "patient":
                assert value == get(base_url, f"Patient/{context['patientId']}").json()
            elif key == "encounter":
                assert value == get(base_url, f"Encounter/{context['encounterId']}").json()
            else:
                query = templates[key].format(p=context["patientId"], e=context.get("encounterId"))
                live = get(base_url, query).json()
                assert [r["id"] for r in entries(value)] == [r["id"] for r in entries(live)], (path.name, key)
            checked += 1
    assert checked > 30


def test_request_examples_cover_all_five_hooks_and_the_sandbox_shape():
    hooks = {demo_request(p.stem)["hook"] for p in DEMO_REQUESTS.glob("*.json")}
    assert hooks == {"order-sign", "order-select", "encounter-start", "encounter-discharge", "patient-view"}
    sandbox = demo_request("order-sign-sandbox-shape")
    assert "encounterId" not in sandbox["context"] and "type" not in sandbox["context"]["draftOrders"]
    no_prefetch = demo_request("order-sign-appendicitis-no-prefetch")
    assert "prefetch" not in no_prefetch and no_prefetch["fhirAuthorization"]["token_type"] == "Bearer"


def test_every_demo_resource_is_labelled_demo_and_fictional():
    store = FhirStore.from_directory(DEMO_DATA_DIR)
    for resources in store.by_type.values():
        for resource in resources.values():
            assert resource["meta"]["tag"][0]["code"] == "demo"
    for patient in store.by_type["Patient"].values():
        assert "虚构" in patient["name"][0]["text"]


def test_demo_patients_and_conditions_carry_what_the_cds_hooks_sandbox_reads():
    """The Sandbox shows ``name[0].given.join(' ') + family`` (a name with only ``text`` breaks it
    before any hook fires) and lists Conditions by ``code.text``; the full name stays in ``text``."""
    store = FhirStore.from_directory(DEMO_DATA_DIR)
    for patient in store.by_type["Patient"].values():
        name = patient["name"][0]
        assert name["family"] and name["given"] and all(name["given"]), patient["id"]
        assert name["text"].startswith(name["family"] + name["given"][0]), patient["id"]
    for condition in store.by_type["Condition"].values():
        assert condition["code"]["text"].strip(), condition["id"]


def _codes(store: FhirStore, system_suffix: str) -> set[str]:
    found = set()
    for rtype in ("Condition", "Procedure"):
        for resource in store.by_type[rtype].values():
            for coding in resource.get("code", {}).get("coding", []):
                if coding["system"].endswith(system_suffix):
                    found.add(coding["code"])
    return found


def _column(path, separator: str) -> set[str]:
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    return {line.split(separator)[0].strip('"') for line in lines if line}


@pytest.mark.slow
def test_demo_codes_exist_in_the_real_published_lists():
    terminology = SHARED_DATA / "terminology"
    if not terminology.is_dir():
        pytest.skip("../shared/data is not available")
    store = FhirStore.from_directory(DEMO_DATA_DIR)
    yb10 = _column(terminology / "icd10-yb2.0.tsv", "\t")
    yb9 = _column(terminology / "icd9cm3-yb2.0.tsv", "\t")
    gl10 = _column(terminology / "icd10-gl2.0-to-yb2.0.csv", ",")
    gl9 = _column(terminology / "icd9cm3-gl3.0-to-yb2.0.csv", ",")
    assert _codes(store, "icd10-yb2.0") and _codes(store, "icd10-yb2.0") <= yb10
    assert _codes(store, "icd9cm3-yb2.0") <= yb9
    assert _codes(store, "icd10-gl2.0") and _codes(store, "icd10-gl2.0") <= gl10
    assert _codes(store, "icd9cm3-gl3.0") <= gl9
    ordered = set()
    for path in DEMO_REQUESTS.glob("*.json"):
        for entry in demo_request(path.stem)["context"].get("draftOrders", {}).get("entry", []):
            for coding in entry["resource"].get("code", {}).get("coding", []):
                if coding["system"].endswith("icd9cm3-yb2.0"):
                    ordered.add(coding["code"])
    assert "47.0100" in ordered and ordered <= yb9


def test_broken_data_directories_are_refused_with_the_file_named(tmp_path):
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(DemoDataError, match="bad.json"):
        FhirStore.from_directory(tmp_path)
    (tmp_path / "bad.json").write_text(json.dumps({"resourceType": "Patient"}), encoding="utf-8")
    with pytest.raises(DemoDataError, match="id"):
        FhirStore.from_directory(tmp_path)
    with pytest.raises(DemoDataError, match="no"):
        FhirStore.from_directory(tmp_path / "empty-missing")


def test_a_custom_data_directory_is_served(tmp_path):
    patient = {"resourceType": "Patient", "id": "p1", "gender": "female"}
    (tmp_path / "p1.json").write_text(json.dumps(patient), encoding="utf-8")
    with serving(create_app(tmp_path)) as url:
        assert requests.get(f"{url}/Patient/p1", timeout=5).json() == patient


def test_cli_refuses_a_broken_data_directory_with_a_clear_message(tmp_path):
    from cds_service.cli import main

    (tmp_path / "x.json").write_text("[]", encoding="utf-8")
    result = CliRunner().invoke(main, ["demo-fhir", "--port", "0", "--data", str(tmp_path)])
    assert result.exit_code != 0
    assert "cannot load FHIR data" in result.output


@pytest.mark.parametrize("workers", ["1", "2"])
def test_dip_cds_demo_fhir_command_serves_over_http(tmp_path, workers):
    """The real command in its own process, as an integrator starts it (threaded, or gunicorn workers)."""
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cli = Path(sys.executable).with_name("dip-cds")
    process = subprocess.Popen(
        [str(cli), "--home", str(tmp_path), "demo-fhir", "--port", str(port), "--workers", workers],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = requests.get(f"http://127.0.0.1:{port}/Patient/demo-newborn", timeout=1)
                break
            except requests.ConnectionError:
                assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
                time.sleep(0.1)
        assert response.status_code == 200 and response.json()["birthDate"] == "2026-11-18"
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=10)
    assert "演示数据" in out and f":{port}" in out


def test_count_zero_and_summary_count_give_the_total_only(base_url):
    for params in ({"_count": 0}, {"_summary": "count"}):
        bundle = get(base_url, "ChargeItem", params={"context": "demo-enc-lungcancer", **params}).json()
        assert bundle["total"] > 0 and "entry" not in bundle
        assert [link["relation"] for link in bundle["link"]] == ["self"]


def test_cli_needs_an_explicit_port_for_worker_processes():
    from cds_service.cli import main

    result = CliRunner().invoke(main, ["demo-fhir", "--port", "0", "--workers", "2"])
    assert result.exit_code != 0 and "--port" in result.output


def test_hostile_requests_get_clean_fhir_errors_or_empty_results(base_url):
    assert get(base_url, "Patient/..%2F..%2Fetc%2Fpasswd").status_code == 404
    assert get(base_url, "Patient", params={"_getpagesoffset": "-1"}).status_code == 400
    huge = get(base_url, "ChargeItem", params={"_count": "99999999"}).json()
    assert len(entries(huge)) == huge["total"] <= 1000
    script = get(base_url, "Condition", params={"patient": "<script>alert(1)</script>" * 200})
    assert script.status_code == 200 and script.json()["total"] == 0
    assert script.headers["Content-Type"].startswith(FHIR_JSON)
