"""The outbound HTTP layer: which servers get the EHR's token, how URLs compare, redirects, caps.

Real servers on 127.0.0.1 record every request they get, so "never sent" is observed, not assumed.
"""

from __future__ import annotations

import time

import pytest

from cds_service import outbound
from cds_service.outbound import Allowlist, UrlError, UrlRule, canonical_url, is_loopback_host
from costing import HisCostClient, HisCostError
from costing.settings import CostingSettings
from tests.service_helpers import (
    FhirServer,
    ec_key,
    hook_request,
    make_app,
    make_token,
    public_jwk,
    searchset,
)

TOKEN = "ehr-access-token-SECRET"
AUTH = {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 300, "scope": "patient/*.read"}
BASE = "https://cds.hospital.cn/dip"


@pytest.fixture
def fhir():
    server = FhirServer()
    server.serve_resources("order-sign")
    yield server
    server.close()


@pytest.fixture
def other():
    server = FhirServer()
    server.serve_resources("order-sign")
    yield server
    server.close()


def order_sign(fhir_server: str) -> dict:
    """An order-sign request that needs the FHIR server (no prefetch), carrying the EHR's token."""
    return hook_request("order-sign", prefetch={}, fhirServer=fhir_server, fhirAuthorization=AUTH)


def tokens_seen(server: FhirServer) -> list[str | None]:
    return [s["authorization"] for s in server.seen]


# ----------------------------------------------------------------------------- URL canonicalisation


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://2130706433:8080/fhir", "http://127.0.0.1:8080/fhir"),
        ("http://0x7f000001/fhir", "http://127.0.0.1:80/fhir"),
        ("http://0177.0.0.1/fhir", "http://127.0.0.1:80/fhir"),
        ("http://127.1/fhir", "http://127.0.0.1:80/fhir"),
        ("HTTPS://FHIR.Hospital.CN./r4", "https://fhir.hospital.cn:443/r4"),
        ("http://[0:0:0:0:0:0:0:1]:81/", "http://[::1]:81/"),
        ("https://fhir.hospital.cn", "https://fhir.hospital.cn:443/"),
    ],
)
def test_urls_are_compared_in_the_form_the_resolver_connects_to(url, expected):
    assert canonical_url(url).geturl() == expected


@pytest.mark.parametrize(
    "url",
    [
        "http://fhir.hospital.cn:443@127.0.0.1:9/fhir",  # the prefix-match bypass of the audit
        "http://user@fhir.hospital.cn/",
        "ftp://fhir.hospital.cn/",
        "file:///etc/passwd",
        "http://fhir.hospital.cn/r4/../admin",
        "http://fhir.hospital.cn/r4/%2e%2e/admin",
        "http:///nohost",
        "http://1.2.3.4.5/",
        "http://fhir.hospital.cn:99999/",
        "http://fhir.hospital.cn/a b",
    ],
)
def test_urls_that_could_smuggle_another_target_are_refused(url):
    with pytest.raises(UrlError):
        canonical_url(url)


def test_an_allowlist_entry_matches_scheme_host_port_and_whole_path_segments():
    rule = UrlRule.parse("https://fhir.hospital.cn/r4")
    assert rule.allows(canonical_url("https://fhir.hospital.cn/r4"))
    assert rule.allows(canonical_url("https://fhir.hospital.cn:443/r4/Patient/1"))
    for refused in (
        "https://fhir.hospital.cn/r4x/Patient/1",  # a string prefix, not a path prefix
        "http://fhir.hospital.cn/r4/",  # another scheme
        "https://fhir.hospital.cn:8443/r4/",  # another port
        "https://fhir.hospital.cn.evil.cn/r4/",  # another host
    ):
        assert not rule.allows(canonical_url(refused)), refused


def test_without_an_allowlist_only_loopback_servers_are_allowed():
    allow = Allowlist()
    assert allow.check("http://127.0.0.1:8081/fhir") and allow.check("http://localhost/fhir")
    assert allow.check("http://2130706433/fhir").host == "127.0.0.1"  # still loopback
    for refused in (
        "http://10.0.0.1/fhir",
        "http://0x0a000001/fhir",
        "https://fhir.hospital.cn/",
        "http://[::ffff:a00:1]/",
    ):
        with pytest.raises(UrlError):
            allow.check(refused)
    assert is_loopback_host("::1") and is_loopback_host("127.0.0.1") and not is_loopback_host("0.0.0.0")


# ----------------------------------------------------------------------------- the token goes nowhere else


def test_by_default_the_token_is_never_sent_to_a_non_loopback_server(tmp_path):
    client = make_app(tmp_path).test_client()
    for server in ("http://10.255.255.1/fhir", "http://fhir.hospital.cn/fhir", "http://0x0a000001/fhir"):
        response = client.post("/cds-services/dip-order-sign", json=order_sign(server))
        assert response.status_code == 400, server
        assert "not an allowed FHIR server" in response.get_data(as_text=True)


def test_userinfo_cannot_smuggle_a_server_past_the_allowlist(tmp_path, fhir):
    client = make_app(
        tmp_path, prefetch={"allowed_fhir_servers": ["https://fhir.hospital.cn/"]}
    ).test_client()
    sneaky = f"https://fhir.hospital.cn:443@127.0.0.1:{fhir.port}/fhir"
    response = client.post("/cds-services/dip-order-sign", json=order_sign(sneaky))
    assert response.status_code == 400
    assert fhir.seen == []


def test_a_redirect_to_another_server_is_not_followed_and_the_token_stays_home(tmp_path, fhir, other):
    fhir.route("Patient/1288992", status=302, headers={"Location": f"{other.url}/Patient/1288992"})
    client = make_app(tmp_path).test_client()  # both are loopback: allowed to be named, not redirected to
    response = client.post("/cds-services/dip-order-sign", json=order_sign(fhir.url))
    assert response.status_code == 412
    assert other.seen == []


def test_a_redirect_within_the_same_server_is_followed(tmp_path, fhir):
    patient = fhir.routes["Patient/1288992"].body
    fhir.route("Patient/1288992", status=301, headers={"Location": "/fhir/Patient/moved"})
    fhir.route("Patient/moved", patient)
    client = make_app(tmp_path).test_client()
    response = client.post("/cds-services/dip-order-sign", json=order_sign(fhir.url))
    assert response.status_code == 200
    assert "Patient/moved" in fhir.paths()
    assert set(tokens_seen(fhir)) == {f"Bearer {TOKEN}"}


def test_an_issuer_may_name_only_its_own_fhir_servers(tmp_path, fhir, other):
    """Two hospitals' EHRs trusted by one service: each one's token opens only its own FHIR server."""
    key_a, key_b = ec_key(), ec_key()
    issuers = [
        {
            "iss": "https://emr-a.cn",
            "jwks": {"keys": [public_jwk(key_a, "a", "ES384")]},
            "fhir_servers": [fhir.url],
        },
        {
            "iss": "https://emr-b.cn",
            "jwks": {"keys": [public_jwk(key_b, "b", "ES384")]},
            "fhir_servers": [other.url],
        },
    ]
    client = make_app(
        tmp_path, server={"public_base_url": BASE}, security={"jwt": "required", "issuers": issuers}
    ).test_client()
    aud = f"{BASE}/cds-services/dip-order-sign"

    def call(key, iss, kid, server):
        jwt = make_token(key, aud=aud, iss=iss, kid=kid)
        return client.post(
            "/cds-services/dip-order-sign",
            json=order_sign(server),
            headers={"Authorization": f"Bearer {jwt}"},
        )

    assert call(key_a, "https://emr-a.cn", "a", other.url).status_code == 400
    assert call(key_b, "https://emr-b.cn", "b", fhir.url).status_code == 400
    assert fhir.seen == [] and other.seen == []
    assert call(key_a, "https://emr-a.cn", "a", fhir.url).status_code == 200
    assert call(key_b, "https://emr-b.cn", "b", other.url).status_code == 200
    assert set(tokens_seen(fhir)) == set(tokens_seen(other)) == {f"Bearer {TOKEN}"}


def test_the_fhir_client_ignores_proxy_settings_of_the_environment(tmp_path, fhir, other, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", other.url.removesuffix("/fhir"))
    monkeypatch.setenv("http_proxy", other.url.removesuffix("/fhir"))
    client = make_app(tmp_path).test_client()
    assert client.post("/cds-services/dip-order-sign", json=order_sign(fhir.url)).status_code == 200
    assert other.seen == []


def test_an_oversized_fhir_answer_is_refused_without_reading_it_all(fhir, monkeypatch):
    monkeypatch.setattr(outbound, "MAX_RESPONSE_BYTES", 10_000)
    fhir.route("Condition", searchset(*[{"resourceType": "Condition", "id": f"c{i}"} for i in range(2000)]))
    with pytest.raises(outbound.OutboundError, match="too large"):
        outbound.get(
            canonical_url(f"{fhir.url}/Condition"),
            headers={},
            deadline=time.monotonic() + 2,
            connect_timeout=1,
            read_timeout=1,
            max_bytes=outbound.MAX_RESPONSE_BYTES,
        )


# ----------------------------------------------------------------------------- the HIS cost client


def his_client(template: str, timeout: float = 2.0) -> HisCostClient:
    from cds_service.config import settings_from_mapping

    his = {"url_template": template, "timeout_seconds": timeout}
    config = settings_from_mapping({"costing": {"his": his}}).section("costing", CostingSettings).his
    assert config is not None
    return HisCostClient(config)


def test_the_his_client_follows_the_same_redirect_rules(fhir, other):
    fhir.route("cost/enc-1", status=302, headers={"Location": f"{other.url}/cost/enc-1"})
    other.route("cost/enc-1", {"total": "1.00"})
    with pytest.raises(HisCostError, match="another server"):
        his_client(f"{fhir.url}/cost/{{encounter_id}}").fetch(encounter_id="enc-1")
    assert other.seen == []


def test_the_his_client_ignores_proxy_settings_and_caps_the_answer(fhir, other, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", other.url.removesuffix("/fhir"))
    fhir.route("cost/enc-1", {"total": "12.50"})
    fhir.route("cost/enc-big", {"total": "1", "pad": "x" * 2_000_000})
    client = his_client(f"{fhir.url}/cost/{{encounter_id}}")
    assert str(client.fetch(encounter_id="enc-1").total) == "12.50"
    with pytest.raises(HisCostError, match="too large"):
        client.fetch(encounter_id="enc-big")
    assert other.seen == []


def test_the_his_client_keeps_the_hook_requests_deadline(fhir):
    fhir.route("cost/enc-slow", {"total": "1"}, delay=1.0)
    started = time.monotonic()
    with pytest.raises(HisCostError, match="in time"):
        his_client(f"{fhir.url}/cost/{{encounter_id}}", timeout=5).fetch(
            encounter_id="enc-slow", deadline=started + 0.2
        )
    assert time.monotonic() - started < 0.6


def test_a_his_template_with_a_placeholder_in_the_host_is_refused():
    from cds_service.config import ConfigError, settings_from_mapping

    with pytest.raises(ConfigError, match="path or the query"):
        settings_from_mapping({"costing": {"his": {"url_template": "http://{patient_id}.his.cn/cost"}}})
