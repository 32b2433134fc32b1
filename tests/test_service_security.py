"""JWT security with real keys generated here: only valid ES384/RS384 tokens for the exact URL pass."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import uuid

import jwt
import pytest

from cds_service.config import SANDBOX_ISSUER, SANDBOX_JKU, ConfigError, settings_from_mapping
from cds_service.security import AuthError, JwtVerifier, RedisReplayCache
from tests.service_helpers import (
    FhirServer,
    ec_key,
    free_port,
    hook_request,
    make_app,
    make_token,
    public_jwk,
    rsa_key,
)

BASE = "https://cds.hospital.cn/dip"
URL = f"{BASE}/cds-services/dip-order-sign"
ISS = "https://ehr.example.cn"
EC = ec_key()
RSA = rsa_key()
JWKS = {"keys": [public_jwk(EC, "ec-1", "ES384"), public_jwk(RSA, "rsa-1", "RS384")]}


def security(**extra):
    issuer = {"iss": ISS, "jwks": JWKS, "jku": ["https://ehr.example.cn/jwks.json"]}
    issuer.update(extra.pop("issuer", {}))
    return {"jwt": "required", "issuers": [issuer], **extra}


@pytest.fixture
def client(tmp_path):
    return make_app(tmp_path, server={"public_base_url": BASE}, security=security()).test_client()


def post(client, token: str | None, path: str = "/cds-services/dip-order-sign", body=None):
    headers = {"Origin": "https://ehr.example.cn"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return client.post(path, json=body if body is not None else hook_request("order-sign"), headers=headers)


def assert_bare_401(response):
    assert response.status_code == 401
    assert response.data == b""
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_valid_es384_token_passes(client):
    assert post(client, make_token(EC, aud=URL, kid="ec-1", alg="ES384")).status_code == 200


def test_valid_rs384_token_passes(client):
    assert post(client, make_token(RSA, aud=URL, kid="rsa-1", alg="RS384")).status_code == 200


def test_feedback_endpoint_is_protected_with_its_own_audience(client):
    body = {"feedback": [{"card": "c1", "outcome": "accepted", "outcomeTimestamp": "2026-01-01T00:00:00Z"}]}
    path = "/cds-services/dip-order-sign/feedback"
    assert_bare_401(post(client, make_token(EC, aud=URL, kid="ec-1"), path, body))
    assert post(client, make_token(EC, aud=BASE + path, kid="ec-1"), path, body).status_code == 200


def test_missing_authorization_header_is_401(client):
    assert_bare_401(post(client, None))


def test_not_a_bearer_token_is_401(client):
    response = client.post(
        "/cds-services/dip-order-sign", json={}, headers={"Authorization": "Basic dXNlcjpwdw=="}
    )
    assert_bare_401(response)


def test_garbage_token_is_401(client):
    assert_bare_401(post(client, "not.a.jwt"))


def _unsigned(header: dict, claims: dict) -> str:
    def b64(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{b64(header)}.{b64(claims)}."


def test_alg_none_is_401(client):
    now = int(time.time())
    claims = {"iss": ISS, "aud": URL, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())}
    assert_bare_401(post(client, _unsigned({"alg": "none", "typ": "JWT", "kid": "ec-1"}, claims)))


def test_hs256_signed_with_the_public_key_is_401(client):
    import hmac
    from hashlib import sha256

    now = int(time.time())
    claims = {"iss": ISS, "aud": URL, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())}
    header = {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}
    signing_input = _unsigned(header, claims)[:-1]
    from cryptography.hazmat.primitives import serialization

    pem = RSA.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    sig = (
        base64.urlsafe_b64encode(hmac.new(pem, signing_input.encode(), sha256).digest()).rstrip(b"=").decode()
    )
    assert_bare_401(post(client, f"{signing_input}.{sig}"))


def test_rs384_header_on_an_ec_key_is_401(client):
    other = rsa_key()
    assert_bare_401(post(client, make_token(other, aud=URL, kid="ec-1", alg="RS384")))


def test_es256_is_not_allowed(client):
    from cryptography.hazmat.primitives.asymmetric import ec

    p256 = ec.generate_private_key(ec.SECP256R1())
    assert_bare_401(post(client, make_token(p256, aud=URL, kid="ec-1", alg="ES256")))


def test_signature_by_another_key_is_401(client):
    assert_bare_401(post(client, make_token(ec_key(), aud=URL, kid="ec-1")))


def test_wrong_audience_is_401(client):
    assert_bare_401(post(client, make_token(EC, aud=f"{BASE}/cds-services/dip-patient-view", kid="ec-1")))
    assert_bare_401(
        post(client, make_token(EC, aud="http://localhost/cds-services/dip-order-sign", kid="ec-1"))
    )


def test_jwt_required_without_public_base_url_refuses_to_start():
    """The audience is never derived from the request (its Host header is the caller's choice)."""
    with pytest.raises(ConfigError, match="server.public_base_url: required"):
        settings_from_mapping({"security": security()})


def test_a_token_for_another_hospital_sent_with_its_host_header_is_401(client):
    other = "https://cds.other-hospital.cn"
    token = make_token(EC, aud=f"{other}/cds-services/dip-order-sign", kid="ec-1")
    response = client.post(
        "/cds-services/dip-order-sign",
        json=hook_request("order-sign"),
        headers={"Authorization": f"Bearer {token}", "Host": "cds.other-hospital.cn"},
        base_url=other,
    )
    assert_bare_401(response)
    assert post(client, make_token(EC, aud=URL, kid="ec-1")).status_code == 200


def test_expired_token_is_401(client):
    assert_bare_401(post(client, make_token(EC, aud=URL, kid="ec-1", iat_offset=-1000, lifetime=300)))


@pytest.mark.parametrize("claim", ["exp", "iat", "jti", "aud", "iss"])
def test_token_missing_a_required_claim_is_401(client, claim):
    assert_bare_401(post(client, make_token(EC, aud=URL, kid="ec-1", drop=(claim,))))


def test_replayed_jti_is_401(client):
    token = make_token(EC, aud=URL, kid="ec-1")
    assert post(client, token).status_code == 200
    assert_bare_401(post(client, token))


def test_unknown_issuer_is_401(client):
    assert_bare_401(post(client, make_token(EC, aud=URL, kid="ec-1", iss="https://evil.example")))


def test_unknown_kid_is_401(client):
    assert_bare_401(post(client, make_token(EC, aud=URL, kid="nobody")))


def test_jku_off_the_allowlist_is_401(client):
    token = make_token(EC, aud=URL, kid="ec-1", jku="https://evil.example/jwks.json")
    assert_bare_401(post(client, token))


def test_jku_on_the_allowlist_passes(client):
    token = make_token(EC, aud=URL, kid="ec-1", jku="https://ehr.example.cn/jwks.json")
    assert post(client, token).status_code == 200


def test_tenant_is_checked_when_configured(tmp_path):
    client = make_app(
        tmp_path, server={"public_base_url": BASE}, security=security(issuer={"tenant": "hosp-1"})
    ).test_client()
    assert_bare_401(post(client, make_token(EC, aud=URL, kid="ec-1")))
    assert_bare_401(post(client, make_token(EC, aud=URL, kid="ec-1", extra={"tenant": "hosp-2"})))
    assert post(client, make_token(EC, aud=URL, kid="ec-1", extra={"tenant": "hosp-1"})).status_code == 200


def test_overlong_token_lifetime_is_401(client):
    assert_bare_401(post(client, make_token(EC, aud=URL, kid="ec-1", lifetime=86400)))


def test_discovery_and_health_stay_open_when_jwt_is_required(client):
    assert client.get("/cds-services").status_code == 200
    assert client.get("/healthz").status_code == 200


def test_jwt_off_accepts_requests_without_a_token(tmp_path):
    assert post(make_app(tmp_path).test_client(), None).status_code == 200


def test_tokens_are_never_logged(tmp_path, capfd):
    client = make_app(
        tmp_path, server={"public_base_url": BASE}, security=security(), logging={"level": "DEBUG"}
    ).test_client()
    token = make_token(EC, aud="https://wrong.example/", kid="ec-1")
    assert_bare_401(post(client, token))
    out, err = capfd.readouterr()
    assert "wrong audience" in err
    assert token not in out + err and token.split(".")[2] not in out + err


# ----------------------------------------------------------------------------- JWKS fetched from the issuer


@pytest.fixture
def jwks_server():
    server = FhirServer()
    yield server
    server.close()


def test_jwks_is_fetched_from_an_allowlisted_jku_and_refreshed_once_on_unknown_kid(tmp_path, jwks_server):
    jku = f"http://127.0.0.1:{jwks_server.port}/fhir/jwks.json"
    jwks_server.route("jwks.json", {"keys": [public_jwk(EC, "old", "ES384")]})
    sec = {
        "jwt": "required",
        "jwks_refresh_min_interval_seconds": 0,
        "issuers": [{"iss": ISS, "jku": [jku]}],
    }
    client = make_app(tmp_path, server={"public_base_url": BASE}, security=sec).test_client()
    assert post(client, make_token(EC, aud=URL, kid="old", jku=jku)).status_code == 200
    assert post(client, make_token(EC, aud=URL, kid="old", jku=jku)).status_code == 200
    assert jwks_server.paths() == ["jwks.json"]  # cached
    rotated = ec_key()
    jwks_server.route("jwks.json", {"keys": [public_jwk(rotated, "new", "ES384")]})
    assert post(client, make_token(rotated, aud=URL, kid="new", jku=jku)).status_code == 200
    assert jwks_server.paths() == ["jwks.json", "jwks.json"]  # one refresh for the unknown kid


def test_unknown_kid_refresh_is_rate_limited(tmp_path, jwks_server):
    jku = f"http://127.0.0.1:{jwks_server.port}/fhir/jwks.json"
    jwks_server.route("jwks.json", {"keys": [public_jwk(EC, "k", "ES384")]})
    sec = {
        "jwt": "required",
        "jwks_refresh_min_interval_seconds": 60,
        "issuers": [{"iss": ISS, "jku": [jku]}],
    }
    client = make_app(tmp_path, server={"public_base_url": BASE}, security=sec).test_client()
    for _ in range(5):
        assert_bare_401(post(client, make_token(EC, aud=URL, kid=f"attacker-{uuid.uuid4()}", jku=jku)))
    assert jwks_server.paths() == ["jwks.json"]


# ----------------------------------------------------------------------------- the CDS Hooks Sandbox


# The Sandbox's key pair is public (cds-hooks/sandbox keys/jwk-keypair.json): anyone can sign as it does.
SANDBOX_PRIVATE = {
    "kty": "EC",
    "crv": "P-384",
    "kid": "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f",
    "d": "yOcYl9QzMKnBFUiPZKBijDV_lsEtn6oWFVOqtFyXbY_-V63WCBYYdxsLo9Pclr84",
    "x": "dw_JGR8nB2I6XveNxUOl2qk699ZPLM2nYI5STSdiEl9avAkrm3CkfYMbrrjr8laB",
    "y": "Sm3mLE-n1zYNla_aiE3cb3nZsL51RbC7ysw3q8aJLxGm-hx79RPMYpITDjp7kgzy",
}
SANDBOX_SETTINGS = {
    "server": {"public_base_url": BASE},
    "security": {"jwt": "required", "trust_sandbox": True},
}


def sandbox_token() -> str:
    key = jwt.PyJWK(SANDBOX_PRIVATE, algorithm="ES384").key
    return make_token(
        key, aud=URL, iss=SANDBOX_ISSUER, kid=SANDBOX_PRIVATE["kid"], jku=SANDBOX_JKU, alg="ES384"
    )


def test_trust_sandbox_is_refused_unless_the_service_binds_to_loopback(tmp_path):
    for host in ("0.0.0.0", "::", "10.1.2.3", "cds.hospital.cn"):
        with pytest.raises(ConfigError, match="trust_sandbox: refused"):
            make_app(tmp_path, bind_host=host, **SANDBOX_SETTINGS)
    for host in ("127.0.0.1", "::1", "localhost"):
        make_app(tmp_path, bind_host=host, **SANDBOX_SETTINGS)


def test_trust_sandbox_logs_a_loud_warning(tmp_path, caplog):
    make_app(tmp_path, **SANDBOX_SETTINGS)
    assert any("SECURITY" in r.getMessage() and "trust_sandbox" in r.getMessage() for r in caplog.records)


def test_a_sandbox_token_from_a_non_loopback_client_is_401(tmp_path):
    """Even when the bind address is unknown (another WSGI server): a forged Sandbox token from
    the network is refused; the Sandbox runs in a browser on the same machine."""
    client = make_app(tmp_path, **SANDBOX_SETTINGS).test_client()
    response = client.post(
        "/cds-services/dip-order-sign",
        json=hook_request("order-sign"),
        headers={"Authorization": f"Bearer {sandbox_token()}"},
        environ_overrides={"REMOTE_ADDR": "10.20.30.40"},
    )
    assert_bare_401(response)
    assert post(client, sandbox_token()).status_code == 200  # from 127.0.0.1


def test_trust_sandbox_accepts_a_token_signed_with_the_sandbox_key(tmp_path):
    sandbox_private = SANDBOX_PRIVATE
    key = jwt.PyJWK(sandbox_private, algorithm="ES384").key
    token = make_token(
        key, aud=URL, iss=SANDBOX_ISSUER, kid=sandbox_private["kid"], jku=SANDBOX_JKU, alg="ES384"
    )
    trusting = make_app(
        tmp_path, server={"public_base_url": BASE}, security={"jwt": "required", "trust_sandbox": True}
    )
    assert post(trusting.test_client(), token).status_code == 200
    other = make_app(tmp_path, server={"public_base_url": BASE}, security=security())
    assert_bare_401(
        post(other.test_client(), make_token(key, aud=URL, iss=SANDBOX_ISSUER, kid=sandbox_private["kid"]))
    )


# ----------------------------------------------------------------------------- Redis replay cache


@pytest.fixture(scope="module")
def redis_url():
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server binary not installed (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(5)


def test_redis_replay_cache_is_shared_between_verifiers(redis_url):
    settings = settings_from_mapping(
        {"server": {"public_base_url": BASE}, "security": security(redis_url=redis_url)}
    ).security
    worker_a, worker_b = JwtVerifier(settings), JwtVerifier(settings)
    assert isinstance(worker_a.replay, RedisReplayCache)
    token = make_token(EC, aud=URL, kid="ec-1")
    assert worker_a.verify(f"Bearer {token}", URL)["iss"] == ISS
    with pytest.raises(AuthError, match="replayed"):
        worker_b.verify(f"Bearer {token}", URL)


def test_redis_jti_entries_expire_with_the_token(redis_url):
    import redis

    settings = settings_from_mapping(
        {"server": {"public_base_url": BASE}, "security": security(redis_url=redis_url, leeway_seconds=0)}
    ).security
    jti = str(uuid.uuid4())
    JwtVerifier(settings).verify(f"Bearer {make_token(EC, aud=URL, kid='ec-1', jti=jti, lifetime=60)}", URL)
    ttl = redis.Redis.from_url(redis_url).ttl(f"dip-cds:jti:{ISS}|{jti}")
    assert 0 < ttl <= 61


def test_redis_down_fails_closed(tmp_path):
    settings = settings_from_mapping(
        {
            "server": {"public_base_url": BASE},
            "security": security(redis_url=f"redis://127.0.0.1:{free_port()}/0"),
        }
    ).security
    with pytest.raises(AuthError, match="replay cache unavailable"):
        JwtVerifier(settings).verify(f"Bearer {make_token(EC, aud=URL, kid='ec-1')}", URL)
