"""Helpers for the service tests: settings, spec example requests, a real local FHIR server, JWT keys."""

from __future__ import annotations

import base64
import copy
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from cds_service.app import create_app
from cds_service.config import settings_from_mapping
from cds_service.plugins import Plugin, discover
from cds_service.registry import ServiceDefinition

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
HOOK_INSTANCE = "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea"
SERVICES = {
    "patient-view": "dip-patient-view",
    "order-select": "dip-order-select",
    "order-sign": "dip-order-sign",
    "encounter-start": "dip-encounter-start",
    "encounter-discharge": "dip-encounter-discharge",
}


def make_app(
    home: Path,
    *,
    services: Iterable[ServiceDefinition] = (),
    bind_host: str | None = None,
    **sections: dict[str, Any],
):
    """A real app on a temp data home with the given config sections (TOML shape): the installed
    plugins, plus a ``test`` plugin answering ``services`` (which exist only in this app)."""
    sections.setdefault("logging", {"level": "WARNING"})
    extra = tuple(services)
    plugins = [*discover(), Plugin(name="test", services=lambda: extra)]
    settings = settings_from_mapping(sections, plugins=plugins)
    return create_app(settings=settings, home=home, plugins=plugins, bind_host=bind_host)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------- spec example requests
# Contexts follow the examples of the CDS Hooks hook definitions (HL7 cds-hooks-library, 2.0).

PATIENT = {"resourceType": "Patient", "id": "1288992", "gender": "male", "birthDate": "1970-05-16"}
ENCOUNTER = {
    "resourceType": "Encounter",
    "id": "89284",
    "status": "in-progress",
    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
    "subject": {"reference": "Patient/1288992"},
}


def searchset(*resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
    }


CONDITION = {
    "resourceType": "Condition",
    "id": "c1",
    "subject": {"reference": "Patient/1288992"},
    "encounter": {"reference": "Encounter/89284"},
    "code": {
        "coding": [
            {"system": "http://www.nhsa.gov.cn/icd10/yb2.0", "code": "K35.300x001", "display": "急性阑尾炎"}
        ]
    },
}
PROCEDURE = {
    "resourceType": "Procedure",
    "id": "p1",
    "status": "completed",
    "subject": {"reference": "Patient/1288992"},
    "code": {
        "coding": [
            {
                "system": "http://www.nhsa.gov.cn/icd9cm3/yb2.0",
                "code": "47.0100",
                "display": "腹腔镜下阑尾切除术",
            }
        ]
    },
}
CHARGE_ITEM = {
    "resourceType": "ChargeItem",
    "id": "ch1",
    "status": "billable",
    "code": {"text": "床位费"},
    "subject": {"reference": "Patient/1288992"},
    "context": {"reference": "Encounter/89284"},
}

MEDICATION_REQUEST = {
    "resourceType": "MedicationRequest",
    "id": "smart-MedicationRequest-103",
    "status": "draft",
    "intent": "order",
    "medicationCodeableConcept": {
        "coding": [
            {
                "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                "code": "617993",
                "display": "Amoxicillin 120 MG/ML / clavulanate potassium 8.58 MG/ML Oral Suspension",
            }
        ],
        "text": "Amoxicillin 120 MG/ML / clavulanate potassium 8.58 MG/ML Oral Suspension",
    },
    "subject": {"reference": "Patient/1288992"},
    "dosageInstruction": [
        {"text": "5 mL bid x 10 days", "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}}}
    ],
}
NUTRITION_ORDER = {
    "resourceType": "NutritionOrder",
    "id": "pureeddiet-simple",
    "status": "draft",
    "intent": "order",
    "patient": {"reference": "Patient/1288992"},
    "dateTime": "2014-09-17",
    "oralDiet": {
        "type": [
            {"coding": [{"system": "http://snomed.info/sct", "code": "226211001", "display": "Pureed diet"}]}
        ]
    },
}
DRAFT_ORDERS = {
    "resourceType": "Bundle",
    "type": "collection",
    "entry": [{"resource": NUTRITION_ORDER}, {"resource": MEDICATION_REQUEST}],
}

SPEC_CONTEXTS: dict[str, dict[str, Any]] = {
    "patient-view": {"userId": "PractitionerRole/123", "patientId": "1288992", "encounterId": "89284"},
    "encounter-start": {
        "userId": "PractitionerRole/A2340113",
        "patientId": "1288992",
        "encounterId": "89284",
    },
    "encounter-discharge": {
        "userId": "PractitionerRole/A2340113",
        "patientId": "1288992",
        "encounterId": "89284",
    },
    "order-sign": {
        "userId": "PractitionerRole/123",
        "patientId": "1288992",
        "encounterId": "89284",
        "draftOrders": DRAFT_ORDERS,
    },
    "order-select": {
        "userId": "PractitionerRole/123",
        "patientId": "1288992",
        "encounterId": "89284",
        "selections": ["NutritionOrder/pureeddiet-simple", "MedicationRequest/smart-MedicationRequest-103"],
        "draftOrders": DRAFT_ORDERS,
    },
}


def full_prefetch(hook: str) -> dict[str, Any]:
    prefetch = {
        "patient": PATIENT,
        "encounter": ENCOUNTER,
        "conditions": searchset(CONDITION),
        "procedures": searchset(PROCEDURE),
        "chargeItems": searchset(CHARGE_ITEM),
    }
    if hook == "patient-view":
        prefetch["openEncounters"] = searchset(ENCOUNTER)
    return copy.deepcopy(prefetch)


def hook_request(hook: str, *, prefetch: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    """A spec-shaped request for ``hook`` (full prefetch unless given)."""
    body = {
        "hookInstance": str(uuid.uuid4()),
        "hook": hook,
        "context": copy.deepcopy(SPEC_CONTEXTS[hook]),
        "prefetch": full_prefetch(hook) if prefetch is None else prefetch,
    }
    body.update(top)
    return body


# ----------------------------------------------------------------------------- a real FHIR server


@dataclass
class Route:
    status: int = 200
    body: Any = None  # dict → JSON; bytes/str → sent raw
    delay: float = 0.0
    fail_times: int = 0  # answer 503 this many times first
    trickle: bool = False  # send the body one byte every 50 ms
    headers: dict[str, str] = field(default_factory=dict)  # e.g. a redirect's Location


@dataclass
class FhirServer:
    """A threaded werkzeug server on 127.0.0.1 answering configured routes and recording calls."""

    routes: dict[str, Route] = field(default_factory=dict)
    seen: list[dict[str, Any]] = field(default_factory=list)
    default: Route | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True)
        self.port = self._server.server_port
        self.url = f"http://127.0.0.1:{self.port}/fhir"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def route(self, path: str, body: Any = None, **kw: Any) -> None:
        self.routes[path] = Route(body=body, **kw)

    def serve_resources(self, hook: str) -> None:
        """Answer every prefetch template of the DIP services with the example resources."""
        pre = full_prefetch(hook)
        self.route("Patient/1288992", pre["patient"])
        self.route("Encounter/89284", pre["encounter"])
        self.route("Condition", pre["conditions"])
        self.route("Procedure", pre["procedures"])
        self.route("ChargeItem", pre["chargeItems"])
        self.route("Encounter", searchset(ENCOUNTER))

    def paths(self) -> list[str]:
        return [s["path"] for s in self.seen]

    def _wsgi(self, environ: dict, start_response: Callable) -> Any:
        req = Request(environ)
        path = req.path.removeprefix("/fhir/")
        with self._lock:
            self.seen.append(
                {
                    "path": path,
                    "query": req.query_string.decode(),
                    "authorization": req.headers.get("Authorization"),
                }
            )
            route = self.routes.get(path) or self.default
            fail = bool(route and route.fail_times > 0)
            if fail:
                route.fail_times -= 1
        if route is None:
            resp = Response(
                json.dumps({"resourceType": "OperationOutcome", "issue": []}),
                404,
                mimetype="application/fhir+json",
            )
            return resp(environ, start_response)
        if route.delay:
            time.sleep(route.delay)
        if fail:
            return Response("busy", 503)(environ, start_response)
        body = route.body
        payload = json.dumps(body) if isinstance(body, (dict, list)) else (body or b"")
        if route.trickle:
            data = payload.encode() if isinstance(payload, str) else payload

            def slowly():
                for i in range(len(data)):
                    time.sleep(0.05)
                    yield data[i : i + 1]

            return Response(slowly(), route.status, mimetype="application/fhir+json")(environ, start_response)
        return Response(payload, route.status, headers=route.headers, mimetype="application/fhir+json")(
            environ, start_response
        )


# ----------------------------------------------------------------------------- JWT keys


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(private_key: Any, kid: str, alg: str) -> dict[str, Any]:
    algo = jwt.get_algorithm_by_name(alg)
    public = private_key.public_key()
    jwk = json.loads(algo.to_jwk(public))
    if isinstance(public, ec.EllipticCurvePublicKey):
        # RFC 7518 §6.2.1.2: x and y at the full coordinate length. PyJWT < 2.9 drops leading zero
        # bytes (about 1 key in 128), which the verifier then rightly refuses.
        size = (public.curve.key_size + 7) // 8
        numbers = public.public_numbers()
        for name, value in (("x", numbers.x), ("y", numbers.y)):
            jwk[name] = base64.urlsafe_b64encode(value.to_bytes(size, "big")).rstrip(b"=").decode()
    jwk.update(kid=kid, use="sig", alg=alg)
    return jwk


def make_token(
    private_key: Any,
    *,
    aud: str,
    iss: str = "https://ehr.example.cn",
    kid: str = "k1",
    alg: str = "ES384",
    jku: str | None = None,
    lifetime: int = 300,
    iat_offset: int = 0,
    jti: str | None = None,
    extra: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
) -> str:
    now = int(time.time()) + iat_offset
    claims = {"iss": iss, "aud": aud, "iat": now, "exp": now + lifetime, "jti": jti or str(uuid.uuid4())}
    claims.update(extra or {})
    for name in drop:
        claims.pop(name, None)
    headers: dict[str, Any] = {"kid": kid, "typ": "JWT"}
    if jku:
        headers["jku"] = jku
    return jwt.encode(claims, private_key, algorithm=alg, headers=headers)


# ----------------------------------------------------------------------------- dip-cds as a subprocess

DIP_CDS = Path(sys.executable).with_name("dip-cds")


@contextmanager
def dip_cds_server(
    command: Callable[[int], list[str]], *, ready: str, log: Path, timeout: float = 90.0
) -> Iterator[str]:
    """Run ``dip-cds <command(port)>`` on a free loopback port for the with-block; yields its base URL
    once ``GET ready`` answers 200. Output goes to ``log`` (a pipe nobody reads would fill and block
    the server). A port taken by someone else between choosing and binding it is retried."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIP_CDS_")}
    for _attempt in range(3):
        port = free_port()
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [str(DIP_CDS), *command(port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        try:
            if _wait_until_ready(f"http://127.0.0.1:{port}{ready}", proc, timeout):
                yield f"http://127.0.0.1:{port}"
                return
        finally:
            _stop(proc)
    raise AssertionError(
        f"dip-cds {' '.join(command(0))} did not start: {log.read_text(errors='replace')[-3000:]}"
    )


def _wait_until_ready(url: str, proc: subprocess.Popen, timeout: float) -> bool:
    """True once ``url`` answers 200; False if the process exits first; AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return True
        except requests.RequestException:  # not listening yet, or still loading its data
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready within {timeout:.0f} s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()  # gunicorn's master stops its workers on SIGTERM
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: only what this test started
            proc.wait(5)


# ----------------------------------------------------------------------------- slow clients


def open_slow_body(port: int, declared: int = 100_000) -> socket.socket:
    """A connection that announced a JSON body and sends only its first bytes."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    head = (
        "POST /cds-services/dip-order-sign HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    )
    sock.sendall(head.encode() + b'{"hook": "order-sign", ')
    return sock


@contextmanager
def trickling(socks: list[socket.socket], feed: bool = True) -> Iterator[None]:
    """Keep slow connections alive (one more byte each every 0.5 s when ``feed``); closes them on exit."""
    stop = threading.Event()

    def trickle() -> None:
        while feed and not stop.wait(0.5):
            for sock in socks:
                try:
                    sock.sendall(b" ")
                except OSError:
                    pass

    feeder = threading.Thread(target=trickle, daemon=True)
    feeder.start()
    try:
        yield
    finally:
        stop.set()
        feeder.join()
        for sock in socks:
            sock.close()
