"""No patient identifier and no token in what the service writes down about its work: the service
logs (every record, as the JSON formatter writes it, at DEBUG) and the console's audit log, over a
session that touches every path that could leak one — a hook call with a JWT and a FHIR token, the
same stay fetched from the FHIR server, a rejected request, a bad token, a failed FHIR server, and
the 医保办 signing in, opening the stay, exporting it and mistyping a password."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

from sqlalchemy import select

from cds_service.logging_setup import JsonFormatter
from console.models import stays, view_log
from hooks.demo_fhir import create_app as create_demo_fhir_app
from tests.console_helpers import add_users, console_app, csrf_token, signed_in
from tests.demo_fhir_helpers import demo_request, serving
from tests.service_helpers import ec_key, free_port, make_token, public_jwk

BASE = "https://cds.hospital.cn/dip"
ISS = "https://ehr.example.cn"
KEY = ec_key()
FHIR_TOKEN = "fhir-access-token-5e3a9c1d"


def test_no_patient_identifier_or_token_reaches_the_service_logs_or_the_console_audit_log(
    tmp_path: Path, caplog
) -> None:
    security = {
        "jwt": "required",
        "issuers": [{"iss": ISS, "jwks": {"keys": [public_jwk(KEY, "k1", "ES384")]}}],
    }
    app = console_app(tmp_path, {"logging": {"level": "DEBUG"}, "server": {"public_base_url": BASE},
                                 "security": security}, cookie_secure=False)  # fmt: skip
    add_users(app)
    service = "/cds-services/dip-order-sign"
    body = demo_request("order-sign-stroke-high-cost")
    body["fhirAuthorization"]["access_token"] = FHIR_TOKEN
    patient = body["prefetch"]["patient"]
    secrets = {
        body["context"]["patientId"], body["context"]["encounterId"], FHIR_TOKEN,
        *(i["value"] for i in patient["identifier"]), *(n["text"] for n in patient["name"]),
    }  # fmt: skip
    tokens: list[str] = []

    def call(payload: dict, token: str | None = None) -> int:
        token = token or make_token(KEY, aud=f"{BASE}{service}", iss=ISS, kid="k1")
        tokens.append(token)
        return (
            app.test_client()
            .post(service, json=payload, headers={"Authorization": f"Bearer {token}"})
            .status_code
        )

    client = None
    with caplog.at_level(logging.DEBUG), serving(create_demo_fhir_app()) as fhir_url:
        assert call(body) == 200
        fetched = copy.deepcopy(body)
        fetched["fhirServer"] = fhir_url
        del fetched["prefetch"]
        assert call(fetched) == 200  # the stay read from the FHIR server (ids in its URLs)
        broken = copy.deepcopy(body)
        broken["context"]["draftOrders"] = {"resourceType": "Patient", "id": body["context"]["patientId"]}
        assert call(broken) == 400
        assert call(body, token="eyJ" + FHIR_TOKEN) == 401
        unreachable = copy.deepcopy(fetched)
        unreachable["fhirServer"] = f"http://127.0.0.1:{free_port()}"
        assert call(unreachable) in (200, 412)

        client = signed_in(app, "ybb")
        page = client.get("/console/stays").get_data(as_text=True)
        engine = app.extensions["dip_cds.console"].engine
        app.extensions["dip_cds.console"].flush()
        with engine.connect() as conn:
            key = conn.execute(select(stays.c.stay_key)).scalars().one()
        assert client.get(f"/console/stays/{key}").status_code == 200
        assert client.get(f"/console/export/stay/history.xlsx?key={key}").status_code == 200
        client.post("/console/audit/load", data={"csrf_token": csrf_token(page), "folder": "/nonexistent"})
        other = app.test_client()
        login = other.get("/console/login").get_data(as_text=True)
        other.post("/console/login", data={"login_token": login.split('name="login_token" value="')[1].split('"')[0],
                                           "username": "ybb", "password": "wrong"})  # fmt: skip

    session_cookie = client.get_cookie("dipcds_console", path="/console/")
    assert session_cookie is not None
    secrets |= {*tokens, session_cookie.value, csrf_token(page)}
    formatter = JsonFormatter()
    written = [
        formatter.format(r) + json.dumps(r.__dict__, default=str, ensure_ascii=False)
        for r in caplog.records
        if r.name.split(".")[0] == "dip_cds"  # the service's log (libraries' DEBUG lines are off in it)
    ]
    with engine.connect() as conn:
        audit_log = [
            json.dumps(dict(r), default=str, ensure_ascii=False)
            for r in conn.execute(select(view_log)).mappings()
        ]
    # what was written is really there: each hook call's access line, each console action
    assert sum('"dip_cds.access"' in line for line in written) >= 5
    assert any(f"stay {key}" in line for line in audit_log)
    assert any("export" in line and f"key={key}" in line for line in audit_log)
    assert any("login-failed" in line for line in audit_log)
    leaks = {s for s in secrets for line in written + audit_log if s in line}
    assert leaks == set()
