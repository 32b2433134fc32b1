"""Hypothesis fuzzing: random and malformed bodies at every endpoint never produce a 5xx."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.service_helpers import SERVICES, hook_request, make_app

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=30,
)
FIELDS = ["hook", "hookInstance", "context", "prefetch", "fhirServer", "fhirAuthorization", "extension"]
CONTEXT_FIELDS = ["userId", "patientId", "encounterId", "draftOrders", "selections"]
POST_PATHS = [f"/cds-services/{sid}" for sid in SERVICES.values()] + [
    f"/cds-services/{sid}/feedback" for sid in SERVICES.values()
]
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    return make_app(tmp_path_factory.mktemp("fuzz"), logging={"level": "CRITICAL"}).test_client()


def assert_no_5xx(response):
    assert response.status_code < 500, response.data[:500]
    if response.status_code >= 400 and response.data:
        assert response.get_json()["resourceType"] == "OperationOutcome"


ALL_PATHS = [
    *POST_PATHS,
    "/cds-services",
    "/healthz",
    "/readyz",
    "/metrics",
    "/cds-services/dip-order-sign/feedback/summary",
]


@FUZZ
@given(
    path=st.sampled_from(ALL_PATHS),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    raw=st.binary(max_size=300),
    content_type=st.sampled_from(["application/json", "application/fhir+json", "text/plain", ""]),
)
def test_random_bytes_at_every_endpoint(client, path, method, raw, content_type):
    assert_no_5xx(client.open(path, method=method, data=raw, content_type=content_type or None))


@FUZZ
@given(path=st.sampled_from(POST_PATHS), body=json_values)
def test_random_json(client, path, body):
    assert_no_5xx(client.post(path, data=json.dumps(body), content_type="application/json"))


@FUZZ
@given(
    hook=st.sampled_from(list(SERVICES)),
    drop=st.sets(st.sampled_from(FIELDS)),
    replace=st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=3),
    context_replace=st.dictionaries(st.sampled_from(CONTEXT_FIELDS), json_values, max_size=3),
    prefetch_replace=st.dictionaries(
        st.sampled_from(["patient", "encounter", "conditions", "chargeItems", "openEncounters"]),
        json_values,
        max_size=3,
    ),
)
def test_mutated_valid_requests(client, hook, drop, replace, context_replace, prefetch_replace):
    body = hook_request(hook)
    body["context"].update(copy.deepcopy(context_replace))
    body["prefetch"].update(copy.deepcopy(prefetch_replace))
    body.update(copy.deepcopy(replace))
    if isinstance(body.get("fhirServer"), str):
        body["fhirServer"] = "http://127.0.0.1:9/fhir"  # never reach out to a random host
    for name in drop:
        body.pop(name, None)
    assert_no_5xx(client.post(f"/cds-services/{SERVICES[hook]}", json=body))


@FUZZ
@given(
    items=st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                "card": json_values | st.text(max_size=40),
                "outcome": st.sampled_from(["accepted", "overridden", "x"]) | json_values,
                "outcomeTimestamp": st.datetimes().map(lambda d: d.isoformat()) | json_values,
                "overrideReason": json_values
                | st.fixed_dictionaries(
                    {"reason": st.dictionaries(st.sampled_from(["code", "system"]), json_values)}
                ),
                "acceptedSuggestions": json_values,
            },
        ),
        max_size=4,
    )
)
def test_random_feedback(client, items):
    assert_no_5xx(client.post("/cds-services/dip-order-sign/feedback", json={"feedback": items}))


@FUZZ
@given(
    path=st.text(alphabet=st.characters(codec="utf-8", exclude_characters="?#"), max_size=40),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]),
    query=st.text(max_size=40),
)
def test_random_paths_methods_and_queries(client, path, method, query):
    url = "/cds-services/" + path
    response = client.open(url, method=method, query_string={"since": query, "until": query})
    assert_no_5xx(response)
    summary = client.get("/cds-services/dip-order-sign/feedback/summary", query_string={"since": query})
    assert_no_5xx(summary)


@FUZZ
@given(auth=st.text(max_size=200) | st.just("Bearer ") | st.text(max_size=100).map(lambda t: f"Bearer {t}"))
def test_random_authorization_headers_are_401(tmp_path_factory, auth):
    app = _jwt_app(tmp_path_factory)
    try:
        response = app.post(
            "/cds-services/dip-order-sign", json=hook_request("order-sign"), headers={"Authorization": auth}
        )
    except ValueError:  # werkzeug refuses to even build a request with such a header value
        return
    assert response.status_code == 401


_JWT_APP = {}


def _jwt_app(factory):
    if "client" not in _JWT_APP:
        _JWT_APP["client"] = make_app(
            factory.mktemp("fuzzjwt"),
            server={"public_base_url": "http://localhost"},
            security={"jwt": "required", "trust_sandbox": True},
            logging={"level": "CRITICAL"},
        ).test_client()
    return _JWT_APP["client"]
