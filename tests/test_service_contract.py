"""Contract tests: every endpoint answers as CDS Hooks 2.0 requires, including the spec's examples."""

from __future__ import annotations

import copy
import re

import pytest

from tests.service_helpers import (
    HOOK_INSTANCE,
    MEDICATION_REQUEST,
    SERVICES,
    SPEC_CONTEXTS,
    FhirServer,
    full_prefetch,
    hook_request,
    make_app,
)

ORIGIN = {"Origin": "https://sandbox.cds-hooks.org"}


@pytest.fixture
def client(tmp_path):
    return make_app(tmp_path).test_client()


@pytest.fixture
def fhir():
    server = FhirServer()
    yield server
    server.close()


def issues(response) -> list[str]:
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    return [i["diagnostics"] for i in body["issue"]]


# ----------------------------------------------------------------------------- discovery


def test_discovery_lists_all_five_dip_services_with_their_hooks(client):
    response = client.get("/cds-services")
    assert response.status_code == 200
    services = {s["id"]: s for s in response.get_json()["services"]}
    dip = {sid: s["hook"] for sid, s in services.items() if sid.startswith("dip-")}
    assert dip == {v: k for k, v in SERVICES.items()}
    for service in services.values():
        assert service["description"] and service["title"]
        assert any("\u4e00" <= ch <= "\u9fff" for ch in service["title"]), "title must carry Chinese"


def test_discovery_prefetch_templates_cover_patient_encounter_diagnoses_procedures_and_costs(client):
    services = {s["id"]: s for s in client.get("/cds-services").get_json()["services"]}
    for sid in SERVICES.values():
        prefetch = services[sid]["prefetch"]
        assert prefetch["patient"] == "Patient/{{context.patientId}}"
        assert prefetch["encounter"] == "Encounter/{{context.encounterId}}"
        assert prefetch["conditions"].startswith(
            "Condition?patient={{context.patientId}}&encounter={{context.encounterId}}"
        )
        assert prefetch["procedures"].startswith(
            "Procedure?patient={{context.patientId}}&encounter={{context.encounterId}}"
        )
        assert prefetch["chargeItems"].startswith(
            "ChargeItem?patient={{context.patientId}}&context=Encounter/{{context.encounterId}}"
        )
    assert services["dip-patient-view"]["prefetch"]["openEncounters"].startswith(
        "Encounter?patient={{context.patientId}}&status=in-progress"
    )


def test_discovery_never_carries_null_or_empty_fields(client):
    def walk(value):
        if isinstance(value, dict):
            for v in value.values():
                assert v not in (None, "", [], {})
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(client.get("/cds-services").get_json())


# ----------------------------------------------------------------------------- the spec examples


@pytest.mark.parametrize("hook", list(SERVICES))
def test_spec_example_request_with_full_prefetch_gets_a_card_array(client, hook):
    response = client.post(f"/cds-services/{SERVICES[hook]}", json=hook_request(hook), headers=ORIGIN)
    assert response.status_code == 200, response.data
    cards = response.get_json()["cards"]
    assert isinstance(cards, list)
    for card in cards:
        assert len(card["summary"]) < 140 and card["indicator"] in ("info", "warning", "critical")
        assert card["source"]["label"] and card["uuid"]
    assert response.headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize("hook", list(SERVICES))
def test_spec_example_request_without_prefetch_is_fetched_from_the_fhir_server(tmp_path, fhir, hook):
    fhir.serve_resources(hook)
    body = hook_request(
        hook,
        prefetch={},
        hookInstance=HOOK_INSTANCE,
        fhirServer=fhir.url,
        fhirAuthorization={
            "access_token": "some-opaque-fhir-access-token",
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "user/Patient.read user/Observation.read",
            "subject": "cds-service4",
        },
    )
    client = make_app(tmp_path).test_client()
    response = client.post(f"/cds-services/{SERVICES[hook]}", json=body)
    assert response.status_code == 200, response.data
    assert "Patient/1288992" in fhir.paths() and "Encounter/89284" in fhir.paths()
    assert {s["authorization"] for s in fhir.seen} == {"Bearer some-opaque-fhir-access-token"}


def test_response_is_json_with_cards_array_even_when_handler_has_nothing_to_say(client):
    no_open_stay = {"resourceType": "Bundle", "type": "searchset", "total": 0}
    request = hook_request(
        "patient-view", prefetch={**full_prefetch("patient-view"), "openEncounters": no_open_stay}
    )
    request["context"].pop("encounterId", None)
    response = client.post("/cds-services/dip-patient-view", json=request)
    assert response.mimetype == "application/json"
    assert response.get_json()["cards"] == []


# ----------------------------------------------------------------------------- the Sandbox's sloppy shapes


def sandbox_order_sign() -> dict:
    """What the CDS Hooks Sandbox sends: Bundle without type, MedicationRequest without intent, no encounterId."""
    med = copy.deepcopy(MEDICATION_REQUEST)
    del med["intent"]
    del med["medicationCodeableConcept"]
    context = {"userId": "Practitioner/COREPRACTITIONER1", "patientId": "smart-1288992"}
    context["draftOrders"] = {"resourceType": "Bundle", "entry": [{"resource": med}]}
    return {
        "hook": "order-sign",
        "hookInstance": "4a4b8d6e-0a77-4d61-bd6e-4e8c3b9f0f21",
        "context": context,
        "prefetch": {"patient": {"resourceType": "Patient", "id": "smart-1288992", "gender": "male"}},
    }


def test_sandbox_order_sign_without_bundle_type_intent_or_encounter_is_accepted(client):
    response = client.post("/cds-services/dip-order-sign", json=sandbox_order_sign(), headers=ORIGIN)
    assert response.status_code == 200, response.data


def test_sandbox_order_select_without_encounter_is_accepted(client):
    body = sandbox_order_sign()
    body["hook"] = "order-select"
    body["context"]["selections"] = ["MedicationRequest/smart-MedicationRequest-103"]
    response = client.post("/cds-services/dip-order-select", json=body)
    assert response.status_code == 200, response.data


def test_sandbox_patient_view_without_encounter_only_needs_the_patient(client):
    body = {
        "hook": "patient-view",
        "hookInstance": "0f8e5f2c-8d3b-4b0e-9c1e-6a1d2f3b4c5d",
        "context": {"userId": "Practitioner/COREPRACTITIONER1", "patientId": "smart-1288992"},
        "prefetch": {"patient": {"resourceType": "Patient", "id": "smart-1288992"}},
    }
    assert client.post("/cds-services/dip-patient-view", json=body).status_code == 200


def test_handler_sees_the_lenient_draft_orders_and_the_resolved_prefetch(tmp_path):
    from cds_service.registry import cds_service

    seen = {}

    @cds_service(
        id="test-capture",
        hook="order-sign",
        title="t",
        description="d",
        prefetch={
            "patient": "Patient/{{context.patientId}}",
            "encounter": "Encounter/{{context.encounterId}}",
        },
        required_prefetch={"patient"},
    )
    def capture(req):
        seen["orders"] = req.draft_orders()
        seen["patient"] = req.resource("patient")
        seen["outcomes"] = {k: o.status.value for k, o in req.prefetch_outcomes.items()}
        seen["notes"] = list(req.notes)
        return [{"summary": "测试", "indicator": "info", "source": {"label": "DIP"}, "detail": None}]

    client = make_app(tmp_path, services=[capture]).test_client()
    response = client.post("/cds-services/test-capture", json=sandbox_order_sign())
    assert response.status_code == 200
    card = response.get_json()["cards"][0]
    assert "detail" not in card and card["uuid"]
    assert seen["orders"][0]["resourceType"] == "MedicationRequest"  # no intent: still handed over
    assert "intent" not in seen["orders"][0] and seen["notes"] == []
    assert seen["patient"]["gender"] == "male"
    assert seen["outcomes"] == {"patient": "provided", "encounter": "not-applicable"}


# ----------------------------------------------------------------------------- 400 / 404 / 405 / 415


def test_unknown_service_is_404_operation_outcome(client):
    response = client.post("/cds-services/no-such-service", json=hook_request("order-sign"), headers=ORIGIN)
    assert response.status_code == 404
    assert "no-such-service" in issues(response)[0]
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_malformed_json_is_400(client):
    response = client.post("/cds-services/dip-order-sign", data=b'{"hook": ', content_type="application/json")
    assert response.status_code == 400
    assert "malformed JSON" in issues(response)[0]


@pytest.mark.parametrize("body", [b"[]", b'"text"', b"42", b"null"])
def test_json_that_is_not_an_object_is_400(client, body):
    response = client.post("/cds-services/dip-order-sign", data=body, content_type="application/json")
    assert response.status_code == 400


def test_every_missing_top_level_field_is_named(client):
    response = client.post("/cds-services/dip-order-sign", json={"prefetch": {}})
    assert response.status_code == 400
    text = " | ".join(issues(response))
    for name in ("hook", "hookInstance", "context"):
        assert f"{name}:" in text


def test_wrong_hook_for_the_service_is_400(client):
    body = hook_request("order-sign")
    body["hook"] = "patient-view"
    response = client.post("/cds-services/dip-order-sign", json=body)
    assert response.status_code == 400
    assert any("answers 'order-sign'" in i for i in issues(response))


def test_fhir_authorization_without_fhir_server_is_400(client):
    body = hook_request("patient-view", fhirAuthorization={"access_token": "t", "token_type": "Bearer"})
    response = client.post("/cds-services/dip-patient-view", json=body)
    assert response.status_code == 400
    assert any(i.startswith("fhirServer:") for i in issues(response))


@pytest.mark.parametrize("token", ["Ā-token", "two words", "line\nbreak", ""])
def test_an_access_token_that_cannot_travel_in_an_http_header_is_400(client, token):
    auth = {"access_token": token, "token_type": "Bearer"}
    body = hook_request("patient-view", fhirServer="http://127.0.0.1:9/fhir", fhirAuthorization=auth)
    response = client.post("/cds-services/dip-patient-view", json=body)
    assert response.status_code == 400
    assert any(i.startswith("fhirAuthorization.access_token:") for i in issues(response)), issues(response)


def test_context_problems_are_named_with_their_path(client):
    body = hook_request("order-select")
    del body["context"]["patientId"]
    body["context"]["selections"] = ["ServiceRequest/not-in-the-bundle"]
    response = client.post("/cds-services/dip-order-select", json=body)
    assert response.status_code == 400
    text = " | ".join(issues(response))
    assert "context.patientId" in text
    assert "context.selections: not in draftOrders: ServiceRequest/not-in-the-bundle" in text


def test_a_draft_order_entry_without_a_resource_is_named(client):
    body = hook_request("order-sign")
    body["context"]["draftOrders"]["entry"].append({"resource": {"id": "no-type"}})
    response = client.post("/cds-services/dip-order-sign", json=body)
    assert response.status_code == 400
    assert any(i.startswith("context.draftOrders.entry.2") for i in issues(response))


def test_draft_orders_that_are_not_a_bundle_are_400(client):
    body = hook_request("order-sign")
    body["context"]["draftOrders"] = {"resourceType": "MedicationRequest", "id": "x"}
    response = client.post("/cds-services/dip-order-sign", json=body)
    assert response.status_code == 400
    assert any("Bundle" in i for i in issues(response))


def test_encounter_hooks_require_an_encounter_id(client):
    body = hook_request("encounter-discharge")
    del body["context"]["encounterId"]
    response = client.post("/cds-services/dip-encounter-discharge", json=body)
    assert response.status_code == 400
    assert any("context.encounterId" in i for i in issues(response))


def test_prefetch_values_must_be_resources_or_null(client):
    body = hook_request("patient-view", prefetch={"patient": "Patient/1", "encounter": None})
    response = client.post("/cds-services/dip-patient-view", json=body)
    assert response.status_code == 400
    assert any("prefetch.patient" in i for i in issues(response))


def test_non_json_content_type_is_415(client):
    response = client.post("/cds-services/dip-order-sign", data="hook=order-sign", content_type="text/plain")
    assert response.status_code == 415
    assert issues(response)


def test_wrong_method_is_405_with_allow_header(client):
    response = client.get("/cds-services/dip-order-sign", headers=ORIGIN)
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]
    assert issues(response)
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_unknown_path_is_404_operation_outcome(client):
    response = client.get("/nothing-here")
    assert response.status_code == 404
    assert issues(response)


def test_oversized_body_is_413_not_500(tmp_path):
    client = make_app(tmp_path, server={"max_body_bytes": 2048}).test_client()
    body = hook_request("order-sign")
    body["extension"] = {"padding": "x" * 5000}
    response = client.post("/cds-services/dip-order-sign", json=body)
    assert response.status_code == 413


def test_a_buggy_handler_gives_a_500_operation_outcome_not_a_crash(tmp_path):
    from cds_service.registry import cds_service

    @cds_service(id="test-buggy", hook="patient-view", title="t", description="d")
    def buggy(req):
        raise RuntimeError("bug")

    body = hook_request("patient-view")
    client = make_app(tmp_path, services=[buggy]).test_client()
    response = client.post("/cds-services/test-buggy", json=body, headers=ORIGIN)
    assert response.status_code == 500
    assert issues(response) == ["internal error; see service logs"]
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_invalid_cards_from_a_handler_are_dropped_and_empty_fields_pruned(tmp_path):
    from decimal import Decimal

    from cds_service.registry import cds_service

    @cds_service(id="test-cards", hook="patient-view", title="t", description="d")
    def cards(req):
        return {
            "cards": [
                {"summary": "缺少 indicator", "source": {"label": "DIP"}},
                {
                    "summary": "剩余额度 ¥1,234.50",
                    "indicator": "warning",
                    "source": {"label": "DIP", "url": ""},
                    "links": [],
                    "detail": "x",
                    "extension": {"remaining": Decimal("1234.50")},
                },
            ],
            "systemActions": [],
        }

    body = (
        make_app(tmp_path, services=[cards])
        .test_client()
        .post("/cds-services/test-cards", json=hook_request("patient-view"))
        .get_json()
    )
    assert len(body["cards"]) == 1
    card = body["cards"][0]
    assert card["source"] == {"label": "DIP"} and "links" not in card and "systemActions" not in body
    assert card["extension"]["remaining"] == "1234.50"


# ----------------------------------------------------------------------------- health, readiness, metrics


def test_healthz_is_live(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_readyz_names_the_terminology_versions_and_the_catalogs_loaded(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.data
    data = response.get_json()["data"]
    # empty home: the built-in samples, labelled as such
    assert data["feedback"] == "ok"
    assert data["yb_rules"] == {
        "status": "sample",
        "rules": 31,
        "rule_sets": [{"name": "内置示例规则", "version": 0}],
    }
    terminology = data["terminology"]
    assert terminology["status"] == "sample" and "SAMPLE" in terminology["label"]
    assert {k: terminology[k]["version"] for k in ("dx", "px", "dx_map", "px_map")} == dict.fromkeys(
        ("dx", "px", "dx_map", "px_map"), "2.0"
    )
    assert terminology["dx"]["codes"] > 100 and terminology["px_map"]["rows"] > 100
    catalogs = data["catalogs"]
    assert catalogs["status"] == "sample" and catalogs["default_region"] == "999999"
    assert [(c["region"], c["name"], c["year"], c["sample"]) for c in catalogs["catalogs"]] == [
        ("999999", "示例市 DIP 2.0 (样例数据)", 2025, True)
    ]


def test_readyz_names_imported_regions_and_the_configured_default(tmp_path):
    from click.testing import CliRunner

    from cds_service.cli import main
    from dip_engine import SAMPLE_DIR

    for region, name, year in (
        ("410400", "平顶山", "2024"),
        ("410400", "平顶山", "2025"),
        ("410100", "郑州", "2025"),
    ):
        result = CliRunner().invoke(
            main,
            ["--home", str(tmp_path), "data", "import-catalog", str(SAMPLE_DIR / "sample-catalog.csv"),
             "--region", region, "--name", name, "--year", year, "--stats", str(SAMPLE_DIR / "sample-stats.csv")],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
    data = make_app(tmp_path, dip={"region": "410100"}).test_client().get("/readyz").get_json()["data"]
    catalogs = data["catalogs"]
    assert catalogs["status"] == "loaded" and catalogs["default_region"] == "410100"
    assert [(c["region"], c["name"], c["year"]) for c in catalogs["catalogs"]] == [
        ("410100", "郑州", 2025),
        ("410400", "平顶山", 2025),
        ("410400", "平顶山", 2024),
    ]
    # a configured region without a catalog is a deployment error: not ready, and it says which
    response = make_app(tmp_path, dip={"region": "410300"}).test_client().get("/readyz")
    assert response.status_code == 503
    assert "410300 has no imported catalog (available: 410100, 410400)" in issues(response)[0]


def test_readyz_is_503_with_the_reason_when_a_loader_fails(tmp_path):
    app = make_app(tmp_path)
    data = app.extensions["dip_cds.app_data"]
    (tmp_path / "catalogs.sqlite").write_bytes(b"this is not a sqlite database" * 100)
    (tmp_path / "terminology.sqlite").write_bytes(b"this is not a sqlite database" * 100)
    data.forget("terminology")
    data.forget("catalogs")
    response = app.test_client().get("/readyz")
    if response.status_code == 200:
        pytest.skip("loaders ignore a corrupt data store (their own policy)")
    assert response.status_code == 503
    assert any("not ready" in i for i in issues(response))


def test_metrics_count_requests_per_service(client):
    client.post("/cds-services/dip-encounter-start", json=hook_request("encounter-start"))
    text = client.get("/metrics").get_data(as_text=True)
    assert (
        'dip_cds_requests_total{endpoint="/cds-services/<service_id>",service="dip-encounter-start",status="200"}'
        in text
    )
    assert "dip_cds_request_seconds_bucket" in text
    assert "dip_cds_prefetch_fetches_total" in text or "dip_cds_prefetch_fetch_seconds" in text


def test_unknown_service_ids_do_not_create_metric_labels(client):
    client.post("/cds-services/random-123456", json={})
    assert "random-123456" not in client.get("/metrics").get_data(as_text=True)


# ----------------------------------------------------------------------------- CORS


@pytest.mark.parametrize(
    "path", ["/cds-services", "/cds-services/dip-order-sign", "/cds-services/dip-order-sign/feedback"]
)
def test_cors_preflight_allows_authorization_and_content_type(client, path):
    response = client.options(
        path,
        headers={
            "Origin": "https://sandbox.cds-hooks.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization, Content-Type",
        },
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    allowed = {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed
    assert {"GET", "POST", "OPTIONS"} <= {
        m.strip() for m in response.headers["Access-Control-Allow-Methods"].split(",")
    }


def test_cors_headers_on_400(client):
    response = client.post(
        "/cds-services/dip-order-sign", data=b"{", content_type="application/json", headers=ORIGIN
    )
    assert response.status_code == 400
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_context_example_shapes_are_the_spec_ones():
    # guard the fixtures themselves: required fields of each hook as the spec defines them
    assert set(SPEC_CONTEXTS["order-select"]) == {
        "userId",
        "patientId",
        "encounterId",
        "selections",
        "draftOrders",
    }
    assert full_prefetch("patient-view")["openEncounters"]["type"] == "searchset"


def test_terminology_fhir_blueprint_is_mounted_when_the_module_exists(tmp_path, monkeypatch):
    import sys
    import types

    from flask import Blueprint, jsonify

    try:
        import terminology.fhir_api  # noqa: F401 - the real one, once it exists
    except ModuleNotFoundError:
        blueprint = Blueprint("terminology_fhir_stand_in", __name__, url_prefix="/fhir")
        blueprint.add_url_rule(
            "/metadata", "metadata", lambda: jsonify({"resourceType": "CapabilityStatement"})
        )
        module = types.ModuleType("terminology.fhir_api")
        module.blueprint = blueprint
        monkeypatch.setitem(sys.modules, "terminology.fhir_api", module)
    app = make_app(tmp_path)
    blueprint = sys.modules["terminology.fhir_api"].blueprint
    assert app.blueprints[blueprint.name] is blueprint


def test_access_log_is_one_json_line_with_instance_service_timing_and_no_patient_id(tmp_path, capfd):
    import json

    client = make_app(tmp_path, logging={"level": "INFO"}).test_client()
    body = hook_request("order-sign", hookInstance=HOOK_INSTANCE)
    assert client.post("/cds-services/dip-order-sign", json=body).status_code == 200
    _, err = capfd.readouterr()
    entries = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    access = [e for e in entries if e["logger"] == "dip_cds.access"]
    assert len(access) == 1
    entry = access[0]
    assert entry["hook_instance"] == HOOK_INSTANCE and entry["service"] == "dip-order-sign"
    assert entry["status"] == 200 and entry["outcome"] == "ok" and entry["duration_ms"] >= 0
    assert "1288992" not in err and "89284" not in err


def test_hook_responses_are_not_cacheable(client):
    response = client.post("/cds-services/dip-order-sign", json=hook_request("order-sign"))
    assert response.headers["Cache-Control"] == "no-store"


def test_cds_services_responses_carry_the_app_time_as_server_timing(client):
    ok = client.post("/cds-services/dip-order-sign", json=hook_request("order-sign"))
    bad = client.post("/cds-services/dip-order-sign", data=b"{", content_type="application/json")
    discovery = client.get("/cds-services")
    for response in (ok, bad, discovery):
        assert re.fullmatch(r"app;dur=\d+\.\d{3}", response.headers["Server-Timing"])
    assert "Server-Timing" not in client.get("/healthz").headers


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hook": "appointment-book"}, "unsupported hook"),
        ({"prefetch": {"p": "Patient/{{context.nothing.deep}}"}, "required_prefetch": {"q"}}, "unknown keys"),
        ({"prefetch": {"p": "Patient/{{patient}}"}}, "unsupported prefetch token"),
        ({"id": "a/b"}, "invalid service id"),
    ],
)
def test_service_declarations_are_checked_at_registration(kwargs, message):
    from cds_service.registry import cds_service

    declaration = {"id": "test-declared", "hook": "patient-view", "title": "t", "description": "d", **kwargs}
    with pytest.raises(ValueError, match=message):
        cds_service(**declaration)(lambda req: [])


def test_registering_another_handler_under_a_taken_id_is_refused(tmp_path):
    from cds_service.registry import cds_service

    clash = cds_service(id="dip-order-sign", hook="order-sign", title="t", description="d")(lambda req: [])
    with pytest.raises(ValueError, match="registered twice"):
        make_app(tmp_path, services=[clash])
