"""Prefetch fallback against a real FHIR server on 127.0.0.1: fetched, skipped, refetched, degraded, bounded."""

from __future__ import annotations

import time

import pytest

from cds_service.app import preload
from cds_service.fhir_client import PUBLIC_FAILURE
from cds_service.prefetch import render
from cds_service.registry import cds_service
from tests.service_helpers import (
    ENCOUNTER,
    PATIENT,
    FhirServer,
    free_port,
    full_prefetch,
    hook_request,
    make_app,
)

TOKEN = "opaque-access-token-ABC123"
AUTH = {
    "access_token": TOKEN,
    "token_type": "Bearer",
    "expires_in": 300,
    "scope": "patient/*.read",
    "subject": "dip",
}
DEADLINE = 0.4  # the default prefetch deadline


@pytest.fixture
def fhir():
    server = FhirServer()
    yield server
    server.close()


SEEN: dict = {}


@cds_service(
    id="test-prefetch",
    hook="encounter-discharge",
    title="t",
    description="d",
    prefetch={
        "patient": "Patient/{{context.patientId}}",
        "encounter": "Encounter/{{context.encounterId}}",
        "conditions": "Condition?patient={{context.patientId}}&encounter={{context.encounterId}}",
        "chargeItems": "ChargeItem?patient={{context.patientId}}&context=Encounter/{{context.encounterId}}",
    },
    required_prefetch={"patient"},
)
def capture_prefetch(req):
    """A test service that records what its handler was given."""
    SEEN["outcomes"] = {k: (o.status.value, o.reason) for k, o in req.prefetch_outcomes.items()}
    SEEN["conditions"] = req.resources("conditions")
    SEEN["patient"] = req.resource("patient")
    SEEN["notes"] = list(req.notes)
    return []


@pytest.fixture
def captured():
    SEEN.clear()
    return SEEN


def call(tmp_path, body, **sections):
    app = make_app(tmp_path, services=[capture_prefetch], **sections)
    preload(app)  # as a server worker does at start: the timings below are the request's own
    client = app.test_client()
    started = time.perf_counter()
    response = client.post("/cds-services/test-prefetch", json=body)
    return response, time.perf_counter() - started


def discharge(fhir_url: str | None, prefetch: dict, auth: dict | None = AUTH) -> dict:
    extra = {}
    if fhir_url:
        extra["fhirServer"] = fhir_url
        if auth:
            extra["fhirAuthorization"] = auth
    return hook_request("encounter-discharge", prefetch=prefetch, **extra)


def test_absent_keys_are_fetched_with_the_bearer_token(tmp_path, fhir, captured):
    fhir.serve_resources("encounter-discharge")
    response, _ = call(tmp_path, discharge(fhir.url, {}))
    assert response.status_code == 200
    assert sorted(fhir.paths()) == ["ChargeItem", "Condition", "Encounter/89284", "Patient/1288992"]
    assert all(s["authorization"] == f"Bearer {TOKEN}" for s in fhir.seen)
    condition_query = next(s["query"] for s in fhir.seen if s["path"] == "Condition")
    assert condition_query == "patient=1288992&encounter=89284"
    charge_query = next(s["query"] for s in fhir.seen if s["path"] == "ChargeItem")
    assert charge_query == "patient=1288992&context=Encounter/89284"
    assert captured["outcomes"]["patient"] == ("fetched", None)
    assert [c["id"] for c in captured["conditions"]] == ["c1"]  # searchset unpacked


def test_provided_keys_are_not_fetched_again(tmp_path, fhir, captured):
    fhir.serve_resources("encounter-discharge")
    prefetch = {
        k: v for k, v in full_prefetch("encounter-discharge").items() if k in ("patient", "encounter")
    }
    response, _ = call(tmp_path, discharge(fhir.url, prefetch))
    assert response.status_code == 200
    assert sorted(fhir.paths()) == ["ChargeItem", "Condition"]
    assert captured["outcomes"]["patient"] == ("provided", None)


def test_null_means_no_data_and_is_not_fetched(tmp_path, fhir, captured):
    fhir.serve_resources("encounter-discharge")
    prefetch = {"patient": PATIENT, "encounter": ENCOUNTER, "conditions": None, "chargeItems": None}
    response, _ = call(tmp_path, discharge(fhir.url, prefetch))
    assert response.status_code == 200
    assert fhir.seen == []
    assert captured["outcomes"]["conditions"] == ("null", None)
    assert captured["conditions"] == []


def test_operation_outcome_in_prefetch_is_refetched(tmp_path, fhir, captured):
    fhir.serve_resources("encounter-discharge")
    failed = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
    prefetch = {"patient": failed, "encounter": ENCOUNTER, "conditions": None, "chargeItems": None}
    response, _ = call(tmp_path, discharge(fhir.url, prefetch))
    assert response.status_code == 200
    assert fhir.paths() == ["Patient/1288992"]
    assert captured["patient"]["id"] == "1288992"


def test_request_without_token_fetches_without_authorization_header(tmp_path, fhir, captured):
    fhir.serve_resources("encounter-discharge")
    response, _ = call(tmp_path, discharge(fhir.url, {}, auth=None))
    assert response.status_code == 200
    assert {s["authorization"] for s in fhir.seen} == {None}


def test_templates_whose_tokens_are_absent_are_not_applicable():
    assert render("Encounter/{{context.encounterId}}", {"patientId": "1"}) is None
    assert render("Patient/{{context.patientId}}", {"patientId": "a b/c"}) == "Patient/a%20b%2Fc"
    assert render("Practitioner/{{userPractitionerId}}", {"userId": "Practitioner/7"}) == "Practitioner/7"
    assert render("Practitioner/{{userPractitionerId}}", {"userId": "PractitionerRole/7"}) is None


def test_required_key_without_fhir_server_is_412(tmp_path, captured):
    response, _ = call(tmp_path, discharge(None, {"encounter": ENCOUNTER}))
    assert response.status_code == 412
    diagnostics = response.get_json()["issue"][0]["diagnostics"]
    assert "patient" in diagnostics and "no fhirServer" in diagnostics


def test_server_down_is_412_quickly(tmp_path, captured):
    down = f"http://127.0.0.1:{free_port()}/fhir"
    response, elapsed = call(tmp_path, discharge(down, {}))
    assert response.status_code == 412
    assert elapsed < DEADLINE + 0.5


def test_slow_server_is_cut_at_the_deadline(tmp_path, fhir, captured):
    fhir.serve_resources("encounter-discharge")
    for route in fhir.routes.values():
        route.delay = 3.0
    response, elapsed = call(tmp_path, discharge(fhir.url, {}))
    assert response.status_code == 412
    assert elapsed < DEADLINE + 0.5, elapsed


def test_a_server_trickling_its_answer_cannot_stretch_the_deadline(tmp_path, fhir, captured, caplog):
    fhir.serve_resources("encounter-discharge")
    fhir.routes["Patient/1288992"].trickle = True  # each byte well inside the read timeout
    response, elapsed = call(tmp_path, discharge(fhir.url, {}))
    assert response.status_code == 412
    assert PUBLIC_FAILURE in response.get_json()["issue"][0]["diagnostics"]
    assert "deadline exceeded" in logged_reasons(caplog)
    assert elapsed < DEADLINE + 0.5, elapsed


def test_slow_optional_key_degrades_with_a_note_instead_of_failing(tmp_path, fhir, captured):
    fhir.serve_resources("encounter-discharge")
    fhir.routes["Condition"].delay = 3.0
    response, elapsed = call(tmp_path, discharge(fhir.url, {}))
    assert response.status_code == 200
    assert elapsed < DEADLINE + 0.5
    assert captured["outcomes"]["conditions"][0] == "failed"
    assert any("conditions" in n for n in captured["notes"])


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (500, {"resourceType": "OperationOutcome", "issue": []}, "HTTP 500"),
        (200, b"<html>not json</html>", "invalid JSON"),
        (200, {"resourceType": "OperationOutcome", "issue": []}, "OperationOutcome"),
        (200, ["not", "a", "resource"], "not a FHIR resource"),
        (404, {"resourceType": "OperationOutcome", "issue": []}, "HTTP 404"),
    ],
)
def test_broken_answers_for_a_required_key_are_412_with_the_reason_in_the_log(
    tmp_path, fhir, captured, caplog, status, body, reason
):
    fhir.serve_resources("encounter-discharge")
    fhir.route("Patient/1288992", body, status=status)
    response, elapsed = call(tmp_path, discharge(fhir.url, {}))
    assert response.status_code == 412
    assert (
        response.get_json()["issue"][0]["diagnostics"] == f"prefetch 'patient' unavailable: {PUBLIC_FAILURE}"
    )
    assert reason in logged_reasons(caplog)
    assert elapsed < DEADLINE + 0.5


def logged_reasons(caplog) -> str:
    return " ".join(str(getattr(r, "reason", "")) for r in caplog.records if r.name == "dip_cds.prefetch")


def test_the_412_text_does_not_tell_a_closed_port_from_an_open_one(tmp_path, fhir, captured):
    """A caller must not map the network through ``fhirServer``: a closed port, a port answering
    HTTP 404 and a port answering garbage give the same 412 text."""
    closed = f"http://127.0.0.1:{free_port()}/fhir"
    fhir.route("Patient/1288992", b"garbage")
    texts = set()
    for url in (closed, fhir.url, f"http://127.0.0.1:{fhir.port}/other"):
        response, _ = call(tmp_path, discharge(url, {}))
        assert response.status_code == 412
        texts.add(response.get_data(as_text=True))
    assert len(texts) == 1, texts


def test_transient_503_is_retried_once(tmp_path, fhir, captured):
    fhir.serve_resources("encounter-discharge")
    fhir.routes["Patient/1288992"].fail_times = 1
    response, _ = call(tmp_path, discharge(fhir.url, {}))
    assert response.status_code == 200
    assert fhir.paths().count("Patient/1288992") == 2


def test_fhir_server_outside_the_allowlist_is_400(tmp_path, fhir, captured):
    body = discharge(fhir.url, {})
    response, _ = call(tmp_path, body, prefetch={"allowed_fhir_servers": ["https://fhir.hospital.cn/"]})
    assert response.status_code == 400
    assert fhir.seen == []


def test_the_access_token_never_appears_in_logs(tmp_path, fhir, captured, capfd):
    fhir.serve_resources("encounter-discharge")
    fhir.route("Patient/1288992", {"resourceType": "OperationOutcome"}, status=500)
    client = make_app(tmp_path, services=[capture_prefetch], logging={"level": "DEBUG"}).test_client()
    client.post("/cds-services/test-prefetch", json=discharge(fhir.url, {}))
    out, err = capfd.readouterr()
    assert "prefetch fetch failed" in err  # the failure is logged...
    assert TOKEN not in out + err  # ...without the token
    assert "1288992" not in out + err  # ...or the patient id


def test_fetches_run_concurrently(tmp_path, fhir, captured):
    fhir.serve_resources("encounter-discharge")
    for route in fhir.routes.values():
        route.delay = 0.3  # one after the other: 1.2 s, over the 1.0 s deadline
    response, elapsed = call(
        tmp_path, discharge(fhir.url, {}), prefetch={"deadline_seconds": 1.0, "read_timeout_seconds": 0.9}
    )
    assert response.status_code == 200
    assert all(o[0] == "fetched" for o in captured["outcomes"].values())
    assert elapsed < 0.9, elapsed


def test_handler_reads_further_resources_with_the_same_token(tmp_path, fhir):
    seen = {}

    @cds_service(id="test-further-reads", hook="patient-view", title="t", description="d")
    def handler(req):
        seen["practitioner"] = req.fhir.read("PractitionerRole", "123")
        seen["repr"] = repr(req)
        return []

    fhir.route("PractitionerRole/123", {"resourceType": "PractitionerRole", "id": "123"})
    body = hook_request("patient-view", fhirServer=fhir.url, fhirAuthorization=AUTH)
    response = (
        make_app(tmp_path, services=[handler])
        .test_client()
        .post("/cds-services/test-further-reads", json=body)
    )
    assert response.status_code == 200
    assert seen["practitioner"]["id"] == "123"
    assert fhir.seen[-1]["authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in seen["repr"]  # a HookRequest printed in a debug session does not leak the token


def test_client_sent_data_is_used_even_when_the_template_is_not_applicable(tmp_path, captured):
    body = discharge(None, {"patient": PATIENT, "encounter": ENCOUNTER})
    del body["context"]["encounterId"]
    body["hook"] = "patient-view"
    seen = {}

    @cds_service(
        id="test-provided",
        hook="patient-view",
        title="t",
        description="d",
        prefetch={
            "encounter": "Encounter/{{context.encounterId}}",
            "patient": "Patient/{{context.patientId}}",
        },
    )
    def handler(req):
        seen["outcomes"] = {k: o.status.value for k, o in req.prefetch_outcomes.items()}
        return []

    response = (
        make_app(tmp_path, services=[handler]).test_client().post("/cds-services/test-provided", json=body)
    )
    assert response.status_code == 200
    assert seen["outcomes"] == {"encounter": "provided", "patient": "provided"}
