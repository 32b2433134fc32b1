"""Property-based fuzzing of the LIVE service (``dip-cds serve``, gevent workers, as shipped): hostile
bodies, FHIR resources with wrong shapes and extreme values, feedback and its summary — never a 5xx.

The hook requests start from the demo requests (real prefetch: Encounters, Conditions, ChargeItems,
draft orders) and replace, delete or add values anywhere in them, so the fuzz reaches the mapping,
grouping, costing and card code, not only the validation. Missing prefetch is fetched from the demo
FHIR server on loopback. The same requests also go through the browser plugin's ``/plugin/v1/check``,
and the documented 3101 payload, mutated, to it and to ``/yb/3101`` / ``/yb/3102``. About 1,450
examples in all; a failure prints the example to reproduce it.
For a deeper local run multiply the example counts with ``DIP_FUZZ_SCALE=10``.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from hooks.demo_fhir import create_app as create_fhir_app
from tests.demo_fhir_helpers import DEMO_REQUESTS, demo_request, serving
from tests.plugin_helpers import EXAMPLE_3101
from tests.service_helpers import SERVICES, hook_request, make_app
from tests.test_service_serve import DIP_CDS, dip_cds_serve

pytestmark = pytest.mark.skipif(not DIP_CDS.exists(), reason="dip-cds console script not installed")

# values the audit found crashing the service, and their relatives
HOSTILE = st.sampled_from(
    [
        "9e999999",
        "-9e999999",
        1e308,
        -1e308,
        2**70,
        "1" * 60,
        "\ud800",
        "K35\udfff",
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-14:00",
        "2025-02-30",
        "",
        [],
        {},
        ["in-progress"],
        {"code": ["IMP"]},
        [{"code": {"x": 1}}],
        {"value": "9e999999", "currency": "CNY"},
        {"reference": "Encounter/../../x"},
        "../../etc/passwd",
        None,
        True,
        0,
        -1,
    ]
)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
VALUES = HOSTILE | json_values
FHIR_KEYS = [
    "resourceType", "id", "status", "class", "extension", "priceOverride", "quantity", "code", "coding",
    "period", "search", "entry", "resource", "subject", "encounter", "context", "diagnosis", "rank",
    "unitPriceComponent", "totalPriceComponent", "factorOverride", "dispenseRequest", "quantityQuantity",
    "medicationCodeableConcept", "medication", "birthDate", "gender", "onsetDateTime", "performedDateTime",
    "performedPeriod", "use", "valueCode", "url", "system", "display", "text", "selections",
]  # fmt: skip
DEMOS = sorted(p.stem for p in DEMO_REQUESTS.glob("*.json"))
AUDIT_SERVICES = ["yb-audit-order-select", "yb-audit-order-sign"]  # 医保智能审核
ALL_SERVICES = sorted(SERVICES.values()) + AUDIT_SERVICES
NATIONAL_EXAMPLE = json.loads(EXAMPLE_3101.read_text(encoding="utf-8"))["request"]


def paths(value: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every path (keys and list indexes) to a value inside ``value``."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from paths(item, (*prefix, i))


def container(root: Any, path: tuple) -> Any:
    for step in path:
        root = root[step]
    return root


def mutate(body: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    """Replace, delete or add one to three values anywhere in ``body``."""

    def value() -> Any:  # a copy: HOSTILE's lists and dicts are shared between examples
        return copy.deepcopy(data.draw(VALUES, label="value"))

    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        candidates = [p for p in paths(body) if p and p[0] != "hook"]
        if not candidates:  # everything deleted already
            break
        path = candidates[data.draw(st.integers(0, len(candidates) - 1), label="path index")]
        note(f"at {path}")
        parent = container(body, path[:-1])
        action = data.draw(st.sampled_from(["replace", "replace", "delete", "add"]), label="action")
        if action == "replace":
            parent[path[-1]] = value()
        elif action == "delete":
            del parent[path[-1]]
        else:
            target = container(body, path)
            if isinstance(target, dict):
                target[data.draw(st.sampled_from(FHIR_KEYS), label="key")] = value()
            elif isinstance(target, list):
                target.append(value())
            else:
                parent[path[-1]] = value()
    return body


def as_bytes(body: Any) -> bytes:
    """JSON as a client would send it; lone surrogates travel as ``\\ud800`` escapes."""
    return json.dumps(body, ensure_ascii=True).encode()


SCALE = max(1, int(os.environ.get("DIP_FUZZ_SCALE", "1")))
FUZZ = settings(
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("fuzz-home")
    with (
        serving(create_fhir_app()) as fhir_url,
        dip_cds_serve(home, DIP_CDS_LOGGING__LEVEL="CRITICAL") as base,
    ):
        yield {"base": base, "fhir": fhir_url, "session": requests.Session(), "count": [0]}
        assert requests.get(f"{base}/healthz", timeout=5).status_code == 200  # still standing


def send(live: dict[str, Any], method: str, path: str, **kw: Any) -> requests.Response:
    live["count"][0] += 1
    try:
        response = live["session"].request(method, live["base"] + path, timeout=30, **kw)
    except requests.ConnectionError:  # the server closed a connection it refused to read on
        live["session"] = requests.Session()
        response = live["session"].request(method, live["base"] + path, timeout=30, **kw)
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400 and response.content:
        assert response.json()["resourceType"] == "OperationOutcome", response.text[:300]
    return response


@settings(FUZZ, max_examples=700 * SCALE)
@given(name=st.sampled_from(DEMOS), data=st.data())
def test_mutated_demo_requests_to_every_service(live, name, data):
    body = demo_request(name)
    body["fhirServer"] = live["fhir"]
    body = mutate(body, data)
    prefix = "yb-audit-" if name.startswith("yb-audit-") else "dip-"
    service = f"{prefix}{body['hook']}" if isinstance(body.get("hook"), str) else "dip-order-sign"
    if data.draw(st.booleans(), label="other service"):  # also the wrong hook for the service
        service = data.draw(st.sampled_from(ALL_SERVICES), label="service")
    if service not in ALL_SERVICES:
        service = "dip-order-sign"
    path = f"/cds-services/{service}"
    if data.draw(st.integers(0, 3), label="through the browser plugin") == 0:
        path = "/plugin/v1/check"  # every service of the hook, in one answer
    send(live, "POST", path, data=as_bytes(body), headers={"Content-Type": "application/json"})


@settings(FUZZ, max_examples=150 * SCALE)
@given(data=st.data(), path=st.sampled_from(["/plugin/v1/check", "/yb/3101", "/yb/3102"]))
def test_mutated_national_3101_payloads(live, data, path):
    """The documented 3101 example, mutated, to the plugin API and the national endpoints."""
    body = mutate(copy.deepcopy(NATIONAL_EXAMPLE), data)
    send(live, "POST", path, data=as_bytes(body), headers={"Content-Type": "application/json"})


@settings(FUZZ, max_examples=150 * SCALE)
@given(service=st.sampled_from(ALL_SERVICES), body=json_values | HOSTILE)
def test_random_json_to_every_service_and_feedback(live, service, body):
    body = copy.deepcopy(body)
    for path in (f"/cds-services/{service}", f"/cds-services/{service}/feedback"):
        send(live, "POST", path, data=as_bytes(body), headers={"Content-Type": "application/json"})


@settings(FUZZ, max_examples=100 * SCALE)
@given(
    path=st.sampled_from(
        [f"/cds-services/{s}" for s in ALL_SERVICES]
        + [f"/cds-services/{s}/feedback" for s in ALL_SERVICES]
        + [
            "/cds-services",
            "/healthz",
            "/readyz",
            "/metrics",
            "/cds-services/dip-order-sign/feedback/summary",
            "/plugin/v1/check",
            "/plugin/v1/feedback",
            "/plugin/v1/token",
            "/yb/3101",
            "/yb/3102",
        ]
    ),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "OPTIONS"]),
    raw=st.binary(max_size=300),
    content_type=st.sampled_from(["application/json", "application/fhir+json", "text/plain", ""]),
)
def test_random_bytes_at_every_endpoint(live, path, method, raw, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    send(live, method, path, data=raw, headers=headers)


FEEDBACK_ITEM = st.fixed_dictionaries(
    {},
    optional={
        "card": st.text(max_size=40) | VALUES,
        "outcome": st.sampled_from(["accepted", "overridden", "x"]) | VALUES,
        "outcomeTimestamp": st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat())
        | st.sampled_from(["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2026-12-03T08:00:00Z"])
        | VALUES,
        "overrideReason": VALUES
        | st.fixed_dictionaries(
            {
                "reason": st.dictionaries(
                    st.sampled_from(["code", "system", "display"]), st.text(max_size=20) | VALUES
                )
            },
            optional={"userComment": st.text(max_size=50) | VALUES},
        ),
        "acceptedSuggestions": VALUES
        | st.lists(st.fixed_dictionaries({"id": st.text(max_size=10) | VALUES})),
    },
)


@settings(FUZZ, max_examples=250 * SCALE)
@given(service=st.sampled_from(ALL_SERVICES), items=st.lists(FEEDBACK_ITEM, max_size=4))
def test_random_feedback_and_its_summary(live, service, items):
    send(
        live,
        "POST",
        f"/cds-services/{service}/feedback",
        data=as_bytes({"feedback": items}),
        headers={"Content-Type": "application/json"},
    )
    summary = send(live, "GET", f"/cds-services/{service}/feedback/summary")
    assert summary.status_code == 200


@settings(FUZZ, max_examples=100 * SCALE)
@given(
    service=st.sampled_from(ALL_SERVICES),
    since=st.text(max_size=30)
    | st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat())
    | st.sampled_from(["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]),
    until=st.text(max_size=30),
)
def test_random_summary_periods(live, service, since, until):
    send(live, "GET", f"/cds-services/{service}/feedback/summary", params={"since": since, "until": until})


def test_the_fuzz_sent_at_least_1000_requests(live):
    """Runs after the property tests of this module (pytest keeps file order)."""
    assert live["count"][0] >= 1000, live["count"][0]


# ----------------------------------------------------------------------------- in-process: JWT headers

_JWT_APP: dict[str, Any] = {}


@settings(FUZZ, max_examples=100 * SCALE)
@given(auth=st.text(max_size=200) | st.just("Bearer ") | st.text(max_size=100).map(lambda t: f"Bearer {t}"))
def test_random_authorization_headers_are_401(tmp_path_factory, auth):
    if "client" not in _JWT_APP:
        _JWT_APP["client"] = make_app(
            tmp_path_factory.mktemp("fuzzjwt"),
            server={"public_base_url": "http://localhost"},
            security={"jwt": "required", "trust_sandbox": True},
            logging={"level": "CRITICAL"},
        ).test_client()
    try:
        response = _JWT_APP["client"].post(
            "/cds-services/dip-order-sign",
            json=copy.deepcopy(hook_request("order-sign")),
            headers={"Authorization": auth},
        )
    except ValueError:  # werkzeug refuses to even build a request with such a header value
        return
    assert response.status_code == 401
