"""``dip-cds demo-his``: a fictional 医生工作站 (doctor workstation) with our panel, for integrators.

The reference for the three ways in and the browser tests' bed: a patient list, the chart's
diagnoses and an order form over the demo FHIR data (served by the same process under ``/fhir``),
the panel embedded by script tag at ``/workstation/``, and the same page **without** it at
``/plain/`` for the browser extension. Both pages run under a strict Content-Security-Policy (no
inline script, no eval, no inline style), as a careful hospital would set it.

The page's backend also shows the server side of the security model: ``POST /his/api/cds-token``
obtains a short-lived page token from the service (``/plugin/v1/token``), signing its request with
the HIS's own key when one is configured, so no long-lived secret ever reaches the page. Accepted
suggestions are posted by the panel as FHIR transactions to ``/his/fhir`` (recorded, listed at
``GET /his/api/applied``). Every name in the data is fictional (虚构).
"""

from __future__ import annotations

import csv
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
import requests
from flask import Flask, Response, abort, jsonify, render_template, request, send_from_directory
from flask.typing import ResponseReturnValue
from werkzeug.middleware.dispatcher import DispatcherMiddleware

import costing
from hooks.demo_fhir import create_app as create_demo_fhir_app

ASSET_DIR = Path(__file__).with_name("demo_his")
PRICES = "sample/prices.csv"
DOCTOR = {"id": "demo-dr-zhang", "name": "张医生（演示）"}
PROCEDURE_SYSTEM = "http://www.nhsa.gov.cn/CodeSystem/icd9cm3-yb2.0"
DRUG_SYSTEM = "http://hospital.example.cn/CodeSystem/drug"
ITEM_SYSTEM = "http://hospital.example.cn/CodeSystem/charge-item"
DRUG_CATEGORIES = ("09", "10", "11")  # 费用类别 西药费, 中药饮片费, 中成药费
# 医保药品代码 (20/23 characters) and 医疗服务项目 codes (15 digits), under the URIs the 智能审核 package documents
NATIONAL_DRUG = re.compile(r"^[A-Z][A-Z0-9]{19}(?:[A-Z0-9]{3})?$")
NATIONAL_ITEM = re.compile(r"^\d{15}$")
NHSA_DRUG_SYSTEM = "http://www.nhsa.gov.cn/CodeSystem/medical-insurance-drug"
NHSA_ITEM_SYSTEM = "http://www.nhsa.gov.cn/CodeSystem/medical-service-item"
MAX_APPLIED = 200


@dataclass
class HisSigner:
    """The HIS backend's own signing key (ES384), to obtain page tokens from a service with JWT required."""

    private_key_pem: bytes = field(repr=False)
    iss: str
    kid: str

    def token(self, audience: str) -> str:
        now = int(time.time())
        claims = {"iss": self.iss, "aud": audience, "iat": now, "exp": now + 60, "jti": str(uuid.uuid4())}
        return jwt.encode(
            claims, self.private_key_pem, algorithm="ES384", headers={"kid": self.kid, "typ": "JWT"}
        )


def orderables() -> list[dict[str, Any]]:
    """What the order form offers: the sample price list, each line as a drug, procedure or item."""
    text = (Path(costing.__file__).parent / PRICES).read_text(encoding="utf-8")
    items = []
    for row in csv.DictReader(text.splitlines()):
        code = row["项目编码"]
        drug = row["费用类别"] in DRUG_CATEGORIES
        if code[:1].isdigit() and "." in code:  # an ICD-9-CM-3 code: an operation or procedure
            kind, system = "procedure", PROCEDURE_SYSTEM
        elif NATIONAL_DRUG.match(code) or NATIONAL_ITEM.match(code):  # 医保目录 codes, for 智能审核
            kind, system = ("drug", NHSA_DRUG_SYSTEM) if drug else ("item", NHSA_ITEM_SYSTEM)
        else:
            kind, system = ("drug", DRUG_SYSTEM) if drug else ("item", ITEM_SYSTEM)
        items.append({"code": code, "name": row["项目名称"], "system": system, "kind": kind,
                      "price": row["单价"], "unit": row["计价单位"]})  # fmt: skip
    return items


def _age(birth: str | None) -> int | None:
    try:
        born = date.fromisoformat(birth or "")
    except ValueError:
        return None
    today = date.today()
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def _ref(value: Any) -> str:
    return str((value or {}).get("reference", "")).rsplit("/", 1)[-1]


class HisData:
    """The HIS's view of the demo FHIR store: in-patients, their chart, their diagnoses."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def _open_encounter(self, patient_id: str) -> dict[str, Any] | None:
        for enc in self.store.by_type.get("Encounter", {}).values():
            if _ref(enc.get("subject")) == patient_id and enc.get("status") == "in-progress":
                return enc
        return None

    def patients(self) -> list[dict[str, Any]]:
        out = []
        for bed, patient in enumerate(
            sorted(self.store.by_type.get("Patient", {}).values(), key=lambda p: p["id"]), 1
        ):
            enc = self._open_encounter(patient["id"])
            if enc is None:
                continue
            name = (patient.get("name") or [{}])[0].get("text") or patient["id"]
            out.append({"id": patient["id"], "bed": f"{bed:02d}床", "name": name, "gender": patient.get("gender"),
                        "age": _age(patient.get("birthDate")), "department": (enc.get("serviceType") or {}).get("text")})  # fmt: skip
        return out

    def chart(self, patient_id: str) -> dict[str, Any] | None:
        patient = self.store.read("Patient", patient_id)
        enc = self._open_encounter(patient_id) if patient else None
        if patient is None or enc is None:
            return None
        ranks = {_ref(d.get("condition")): d.get("rank") for d in enc.get("diagnosis") or []}
        diagnoses = []
        for cond in self.store.by_type.get("Condition", {}).values():
            if _ref(cond.get("encounter")) != enc["id"]:
                continue
            coding = ((cond.get("code") or {}).get("coding") or [{}])[0]
            diagnoses.append({"conditionId": cond["id"], "rank": ranks.get(cond["id"]), "code": coding.get("code"),
                              "system": coding.get("system"), "display": coding.get("display") or (cond.get("code") or {}).get("text")})  # fmt: skip
        diagnoses.sort(key=lambda d: (d["rank"] is None, d["rank"] or 0))
        name = (patient.get("name") or [{}])[0].get("text") or patient_id
        return {
            "patient": {
                "id": patient_id,
                "name": name,
                "gender": patient.get("gender"),
                "age": _age(patient.get("birthDate")),
            },
            "encounter": {
                "id": enc["id"],
                "start": (enc.get("period") or {}).get("start"),
                "department": (enc.get("serviceType") or {}).get("text"),
            },  # fmt: skip
            "doctor": DOCTOR,
            "diagnoses": diagnoses,
        }


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def create_demo_his(
    service_url: str | None = None, signer: HisSigner | None = None, service_public_url: str | None = None
) -> Flask:
    """The demo HIS (pages, its own API, the demo FHIR data under ``/fhir``). ``service_url`` may be
    set later as ``app.config["SERVICE_URL"]`` (tests start the HIS before the service).
    ``service_public_url`` is the service's ``server.public_base_url``, the base of the JWT audience
    (defaults to ``service_url``; differs behind a reverse proxy)."""
    app = Flask(__name__, template_folder=str(ASSET_DIR), static_folder=None)
    app.config["SERVICE_URL"] = service_url
    app.config["SERVICE_PUBLIC_URL"] = service_public_url
    app.config["SIGNER"] = signer
    app.config["APPLIED"] = []
    fhir = create_demo_fhir_app()
    data = HisData(fhir.config["FHIR_STORE"])
    catalog = orderables()
    lock = threading.Lock()

    def service() -> str:
        url = app.config["SERVICE_URL"]
        if not url:
            abort(503, "the demo HIS has no dip-cds service configured")
        return url.rstrip("/")

    def page(with_panel: bool) -> Response:
        svc = service()
        html = render_template("workstation.html", with_panel=with_panel, service=svc, doctor=DOCTOR,
                               fhir_server=request.host_url.rstrip("/") + "/fhir")  # fmt: skip
        allowed = f"'self' {_origin(svc)}" if with_panel else "'self'"
        resp = Response(html, mimetype="text/html")
        resp.headers["Content-Security-Policy"] = (
            f"default-src 'self'; script-src {allowed}; connect-src {allowed}; style-src 'self'; "
            "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
        )
        resp.headers["Referrer-Policy"] = "no-referrer"
        resp.headers["X-Content-Type-Options"] = "nosniff"
        return resp

    @app.get("/")
    def index() -> Response:
        return Response(status=302, headers={"Location": "/workstation/"})

    @app.get("/workstation/")
    def workstation() -> Response:
        return page(with_panel=True)

    @app.get("/plain/")
    def plain() -> Response:
        return page(with_panel=False)

    @app.get("/static/<name>")
    def static_file(name: str) -> Response:
        if name not in ("his.js", "his.css"):
            abort(404)
        return send_from_directory(ASSET_DIR, name, max_age=0)

    @app.get("/his/api/patients")
    def patients() -> Response:
        return jsonify({"patients": data.patients(), "orderables": catalog})

    @app.post("/his/api/chart")  # POST: patient ids stay out of URLs and access logs
    def chart() -> ResponseReturnValue:
        body = request.get_json(silent=True) or {}
        found = data.chart(str(body.get("patientId", "")))
        return jsonify(found) if found else (jsonify({"error": "no open stay for this patient"}), 404)

    @app.post("/his/api/cds-token")
    def cds_token() -> ResponseReturnValue:
        """Server side: a page token from the service, so the page holds no long-lived secret."""
        url = service() + "/plugin/v1/token"
        headers = {"Content-Type": "application/json"}
        if app.config["SIGNER"] is not None:
            audience = (app.config["SERVICE_PUBLIC_URL"] or service()).rstrip("/") + "/plugin/v1/token"
            headers["Authorization"] = "Bearer " + app.config["SIGNER"].token(audience)
        try:
            resp = requests.post(
                url, json={"origin": request.host_url.rstrip("/")}, headers=headers, timeout=5
            )
        except requests.RequestException:
            return jsonify({"error": "dip-cds service unreachable"}), 502
        if resp.status_code != 200:
            return jsonify({"error": f"dip-cds refused a token ({resp.status_code})"}), 502
        return Response(resp.content, 200, mimetype="application/json", headers={"Cache-Control": "no-store"})

    @app.post("/his/fhir")
    def apply_transaction() -> ResponseReturnValue:
        """The HIS's FHIR endpoint for accepted suggestions (a transaction Bundle), recorded in memory."""
        bundle = request.get_json(silent=True)
        if (
            not isinstance(bundle, dict)
            or bundle.get("resourceType") != "Bundle"
            or bundle.get("type") != "transaction"
        ):
            return jsonify({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "invalid",
                            "diagnostics": "a transaction Bundle is required"}]}), 400  # fmt: skip
        entries = [e for e in bundle.get("entry") or [] if isinstance(e, dict)]
        with lock:
            app.config["APPLIED"] = (app.config["APPLIED"] + [bundle])[-MAX_APPLIED:]
        statuses = [
            {
                "response": {
                    "status": "200 OK" if (e.get("request") or {}).get("method") != "POST" else "201 Created"
                }
            }
            for e in entries
        ]
        return jsonify({"resourceType": "Bundle", "type": "transaction-response", "entry": statuses})

    @app.get("/his/api/applied")
    def applied() -> Response:
        return jsonify({"transactions": app.config["APPLIED"]})

    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/fhir": fhir})  # type: ignore[method-assign]
    return app
