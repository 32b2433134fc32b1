"""FHIR terminology operations: responses are valid FHIR R5 resources, errors OperationOutcomes."""

from __future__ import annotations

import json

import pytest
from fhir.resources.operationoutcome import OperationOutcome
from fhir.resources.parameters import Parameters
from fhir.resources.valueset import ValueSet

from cds_service.app import create_app
from cds_service.config import settings_from_mapping
from terminology.plugin import plugin
from terminology.systems import CONCEPTMAP_DX, GL_ICD10, VALUESET_DX, WHO_ICD10, YB_ICD9CM3, YB_ICD10
from tests.terminology_helpers import real_home


def make_client(home):
    """An app with the terminology plugin only: its blueprint and its data, nothing else."""
    settings = settings_from_mapping({"logging": {"level": "WARNING"}}, plugins=[plugin])
    return create_app(settings, home, plugins=[plugin]).test_client()


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    return make_client(tmp_path_factory.mktemp("empty-home"))  # the built-in sample


def params_of(resource: dict) -> dict:
    """Parameters → {name: value or [parts...]} for readable assertions (after FHIR validation)."""
    Parameters.model_validate(resource)
    out: dict = {}
    for p in resource["parameter"]:
        value = next((v for k, v in p.items() if k.startswith("value")), p.get("part"))
        out.setdefault(p["name"], []).append(value)
    return {k: v[0] if len(v) == 1 else v for k, v in out.items()}


def post_params(client, url: str, **values):
    body = {"resourceType": "Parameters", "parameter": []}
    for name, value in values.items():
        key = "valueCoding" if isinstance(value, dict) else "valueString"
        body["parameter"].append({"name": name, key: value})
    return client.post(url, data=json.dumps(body), content_type="application/fhir+json")


def test_lookup_returns_name_display_and_hierarchy(client) -> None:
    resp = client.get("/fhir/CodeSystem/$lookup", query_string={"system": YB_ICD10, "code": "k35.300"})
    assert resp.status_code == 200 and resp.mimetype == "application/fhir+json"
    p = params_of(resp.get_json())
    assert p["display"] == "急性阑尾炎伴局限性腹膜炎"
    props = {part[0]["valueCode"]: part[1]["valueString"] for part in p["property"]}
    assert props["chapter"] == "11" and props["yamu"] == "K35.3" and props["leimu"] == "K35"
    assert props["block_name"] == "阑尾疾病"
    assert "SAMPLE" in p["message"]


def test_lookup_by_post_with_a_coding(client) -> None:
    resp = post_params(client, "/fhir/CodeSystem/$lookup", coding={"system": YB_ICD9CM3, "code": "47.0100"})
    assert params_of(resp.get_json())["display"] == "腹腔镜下阑尾切除术"


def test_lookup_of_an_unknown_code_is_a_404_operation_outcome(client) -> None:
    resp = client.get("/fhir/CodeSystem/$lookup", query_string={"system": YB_ICD10, "code": "K35.3"})
    assert resp.status_code == 404
    outcome = OperationOutcome.model_validate(resp.get_json())
    assert "K35.300" in outcome.issue[0].diagnostics  # the nearest valid code is suggested


def test_validate_code_true_false_and_suggestions(client) -> None:
    ok = params_of(
        client.get(
            "/fhir/CodeSystem/$validate-code", query_string={"url": YB_ICD10, "code": "K35.800x001"}
        ).get_json()
    )
    assert ok["result"] is True and ok["display"] == "急性阑尾炎"
    bad = params_of(
        client.get(
            "/fhir/CodeSystem/$validate-code", query_string={"url": YB_ICD10, "code": "K35.9"}
        ).get_json()
    )
    assert bad["result"] is False and bad["status"] == "unknown" and "建议" in bad["message"]
    clinical = params_of(
        client.get(
            "/fhir/CodeSystem/$validate-code", query_string={"url": GL_ICD10, "code": "I21.100x002"}
        ).get_json()
    )
    assert clinical["result"] is True and "I21.103" in clinical["message"]
    unknown = params_of(
        client.get(
            "/fhir/CodeSystem/$validate-code", query_string={"url": "http://x", "code": "1"}
        ).get_json()
    )
    assert unknown["result"] is False


def test_translate_clinical_to_yibao(client) -> None:
    resp = client.get(
        "/fhir/ConceptMap/$translate",
        query_string={"url": CONCEPTMAP_DX, "sourceCode": "I21.100x002", "system": GL_ICD10},
    )
    p = params_of(resp.get_json())
    assert p["result"] is True
    match = {part["name"]: part for part in p["match"]}  # one match: its parts
    assert match["concept"]["valueCoding"]["code"] == "I21.103"
    assert match["relationship"]["valueCode"] == "equivalent"


def test_translate_a_codeable_concept_by_post(client) -> None:
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "url", "valueUri": CONCEPTMAP_DX},
            {
                "name": "sourceCodeableConcept",
                "valueCodeableConcept": {"coding": [{"system": WHO_ICD10, "code": "J18"}]},
            },
        ],
    }
    resp = client.post("/fhir/ConceptMap/$translate", json=body)
    p = params_of(resp.get_json())
    assert p["result"] is False  # several candidates: a coder must choose
    assert isinstance(p["match"], list) and len(p["match"]) > 1


def test_expand_with_a_filter_searches_names_and_pinyin(client) -> None:
    resp = client.get(
        "/fhir/ValueSet/$expand", query_string={"url": VALUESET_DX, "filter": "JXLWY", "count": 3}
    )
    vs = resp.get_json()
    ValueSet.model_validate(vs)
    assert vs["expansion"]["contains"][0]["display"] == "急性阑尾炎"
    assert len(vs["expansion"]["contains"]) == 3


def test_expand_without_a_filter_pages_through_the_code_list(client) -> None:
    vs = client.get(
        "/fhir/ValueSet/$expand", query_string={"url": VALUESET_DX, "count": 5, "offset": 5}
    ).get_json()
    ValueSet.model_validate(vs)
    assert vs["expansion"]["offset"] == 5 and len(vs["expansion"]["contains"]) == 5
    assert vs["expansion"]["total"] > 500


@pytest.mark.parametrize(
    ("method", "url", "kwargs", "status"),
    [
        ("get", "/fhir/CodeSystem/$lookup", {}, 400),
        ("get", "/fhir/CodeSystem/$lookup", {"query_string": {"system": "http://nope", "code": "1"}}, 404),
        ("get", "/fhir/CodeSystem/$lookup", {"query_string": {"code": "K" * 10_000}}, 400),
        (
            "post",
            "/fhir/CodeSystem/$lookup",
            {"data": "{not json", "content_type": "application/fhir+json"},
            400,
        ),
        ("post", "/fhir/CodeSystem/$validate-code", {"json": {"resourceType": "Patient"}}, 400),
        (
            "post",
            "/fhir/ConceptMap/$translate",
            {"json": {"resourceType": "Parameters", "parameter": [{"x": 1}]}},
            400,
        ),
        ("get", "/fhir/ConceptMap/$translate", {"query_string": {"url": "http://nope"}}, 404),
        ("get", "/fhir/ValueSet/$expand", {"query_string": {"count": "many"}}, 400),
        ("get", "/fhir/ValueSet/$expand", {"query_string": {"url": "http://nope"}}, 404),
    ],
)
def test_bad_requests_are_operation_outcomes(client, method, url, kwargs, status) -> None:
    resp = getattr(client, method)(url, **kwargs)
    assert resp.status_code == status
    OperationOutcome.model_validate(resp.get_json())


@pytest.mark.slow
def test_operations_over_the_real_tables_return_valid_resources() -> None:
    client = make_client(real_home())
    p = params_of(
        client.get("/fhir/CodeSystem/$lookup", query_string={"code": "A01.000x005+J17.0*"}).get_json()
    )
    assert p["display"] == "伤寒并发肺炎"
    translated = params_of(
        client.get(
            "/fhir/ConceptMap/$translate",
            query_string={"system": "urn:oid:2.16.156.10011.2.3.3.11", "code": "B37.600I39.8"},
        ).get_json()
    )
    assert translated["result"] is True
    vs = client.get(
        "/fhir/ValueSet/$expand", query_string={"filter": "腹腔镜下阑尾切除术", "count": 5}
    ).get_json()
    ValueSet.model_validate(vs)
    assert vs["expansion"]["contains"][0]["code"] == "47.0100"


def test_the_service_mounts_the_operations_under_fhir(tmp_path) -> None:
    create_app = pytest.importorskip("cds_service.app").create_app
    client = create_app(home=tmp_path).test_client()
    resp = client.get("/fhir/CodeSystem/$lookup", query_string={"code": "47.0100"})
    assert resp.status_code == 200
    assert params_of(resp.get_json())["display"] == "腹腔镜下阑尾切除术"


def test_metadata_is_a_capability_statement_naming_the_terminology_operations(client) -> None:
    from fhir.resources.capabilitystatement import CapabilityStatement

    response = client.get("/fhir/metadata")
    assert response.status_code == 200 and response.mimetype == "application/fhir+json"
    statement = response.get_json()
    CapabilityStatement.model_validate(statement)
    assert statement["kind"] == "instance" and statement["fhirVersion"].startswith("5.")
    (rest,) = statement["rest"]
    operations = {
        (r["type"], op["name"], op["definition"].rsplit("/", 1)[1])
        for r in rest["resource"]
        for op in r["operation"]
    }
    assert operations == {
        ("CodeSystem", "lookup", "CodeSystem-lookup"),
        ("CodeSystem", "validate-code", "CodeSystem-validate-code"),
        ("ConceptMap", "translate", "ConceptMap-translate"),
        ("ValueSet", "expand", "ValueSet-expand"),
    }
    # every operation it names answers at the advertised path (400: a required parameter is missing)
    for rtype, name, _ in operations:
        assert client.get(f"/fhir/{rtype}/${name}").status_code in (200, 400), (rtype, name)


def test_metadata_terminology_mode_names_the_loaded_code_systems_and_versions(client) -> None:
    from fhir.resources.terminologycapabilities import TerminologyCapabilities

    capabilities = client.get("/fhir/metadata?mode=terminology").get_json()
    TerminologyCapabilities.model_validate(capabilities)
    assert {(c["uri"], c["version"][0]["code"], c["content"]) for c in capabilities["codeSystem"]} == {
        (YB_ICD10, "2.0", "example"),  # the built-in sample: not the complete code system
        (YB_ICD9CM3, "2.0", "example"),
    }
    bad = client.get("/fhir/metadata?mode=everything")
    assert bad.status_code == 400
    OperationOutcome.model_validate(bad.get_json())
