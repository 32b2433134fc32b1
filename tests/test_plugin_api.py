"""The browser plugin's HTTP API over real HTTP: one check runs the hook's services through the core
pipeline, cards carry sanitised HTML, feedback is stored, browsers are limited to the configured HIS
origins, and with JWT required only a CDS client's JWT or a short-lived page token gets in."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
import zipfile
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jsonschema
import jwt
import pytest
import requests

from browser_plugin import tokens
from browser_plugin.render import detail_html
from cds_service.app import STATE_KEY, create_app
from cds_service.config import settings_from_mapping
from cds_service.plugins import Plugin, discover
from cds_service.registry import HookRequest, cds_service
from hooks.demo_fhir import create_app as create_demo_fhir_app
from tests.demo_fhir_helpers import demo_request, serving
from tests.hooks_helpers import pin_today
from tests.plugin_helpers import EXAMPLE, EXAMPLE_3101, ROOT, SCHEMAS, plugin_service
from tests.service_helpers import ec_key, free_port, make_token, public_jwk

HIS = "http://his.example.cn:8090"
DIP_ONLY = {"order-sign": ["dip-order-sign"]}
OTHER_HIS = "http://other-his.example.cn"


def schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / f"check-{name}.schema.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """The service (JWT off, HIS origins allowed, the DIP services only: these tests are about what a
    check does with them, whatever other plugins are installed) and the demo FHIR server, over HTTP."""
    home = tmp_path_factory.mktemp("home")
    app = plugin_service(home, plugin={"allowed_origins": [HIS, OTHER_HIS], "services": DIP_ONLY})
    with serving(app) as url, serving(create_demo_fhir_app()) as fhir_url:
        yield SimpleNamespace(url=url, fhir_url=fhir_url, home=home, app=app)


@pytest.fixture(autouse=True)
def pinned_today(monkeypatch):
    pin_today(monkeypatch)


def stroke(servers, **changes: Any) -> dict[str, Any]:
    body = demo_request("order-sign-stroke-high-cost")
    body.pop("prefetch")
    body["fhirServer"] = servers.fhir_url
    body.update(changes)
    return body


def check(servers, body: Any, headers: dict[str, str] | None = None, **kw: Any) -> requests.Response:
    return requests.post(f"{servers.url}/plugin/v1/check", json=body, headers=headers or {}, timeout=10, **kw)


# ----------------------------------------------------------------------------- the check


def test_a_check_answers_the_same_cards_as_the_hook_with_service_and_safe_html(servers):
    body = stroke(servers)
    hook = requests.post(f"{servers.url}/cds-services/dip-order-sign", json=body, timeout=10).json()
    answer = check(servers, body)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    jsonschema.validate(data, schema("response"))
    assert data["hookInstance"] == body["hookInstance"]
    assert data["services"] == [{"id": "dip-order-sign", "status": 200, "cards": 1}]
    (card,) = data["cards"]
    (expected,) = hook["cards"]
    for key in ("summary", "indicator", "detail", "source", "overrideReasons"):
        assert card[key] == expected[key]
    assert card["service"] == "dip-order-sign"
    assert card["indicator"] == "warning" and "高于支付标准" in card["summary"]
    assert "<table>" in card["detailHtml"] and "<td>¥7,795.20</td>" in card["detailHtml"]
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["Server-Timing"].startswith("app;dur=")


def test_the_documented_example_is_valid_and_is_what_the_service_answers(servers):
    example = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    jsonschema.validate(example["request"], schema("request"))
    jsonschema.validate(example["response"], schema("response"))
    body = dict(example["request"], fhirServer=servers.fhir_url)
    live = check(servers, body).json()
    jsonschema.validate(live, schema("response"))
    refresh_example(EXAMPLE, example, live)
    strip = lambda cards: [{k: v for k, v in c.items() if k != "uuid"} for c in cards]  # noqa: E731
    assert strip(live["cards"]) == strip(example["response"]["cards"])


def test_the_schemas_are_served_and_reject_what_the_service_rejects(servers):
    served = requests.get(f"{servers.url}/plugin/v1/schema/check-request.schema.json", timeout=5)
    assert served.status_code == 200 and served.json() == schema("request")
    validator = jsonschema.Draft202012Validator(schema("request"))
    no_orders = stroke(servers)
    del no_orders["context"]["draftOrders"]
    token_without_server = stroke(servers)
    del token_without_server["fhirServer"]
    for bad in (no_orders, token_without_server, {"hook": "order-sign"}):
        assert not validator.is_valid(bad)
        assert check(servers, bad).status_code == 400


@cds_service(
    id="test-needs-basic",
    hook="order-sign",
    title="test",
    description="needs Basic resources, a type the demo FHIR server does not serve",
    prefetch={"basic": "Basic?patient={{context.patientId}}"},
    required_prefetch={"basic"},
)
def needs_unserved(req: HookRequest) -> list[dict[str, Any]]:  # pragma: no cover - its prefetch fails
    return []


def test_a_service_that_cannot_answer_is_reported_while_the_others_cards_are_shown(servers, tmp_path):
    both = {"order-sign": ["dip-order-sign", "test-needs-basic"]}
    app = plugin_service(tmp_path, services=[needs_unserved], plugin={"services": both})
    with serving(app) as url:
        data = check(SimpleNamespace(url=url), stroke(servers)).json()
    statuses = {s["id"]: s for s in data["services"]}
    assert statuses["dip-order-sign"]["status"] == 200
    assert statuses["test-needs-basic"]["status"] == 412
    assert "basic" in statuses["test-needs-basic"]["problems"][0]
    assert [c["service"] for c in data["cards"]] == ["dip-order-sign"]
    jsonschema.validate(data, schema("response"))


@cds_service(id="test-broken", hook="order-sign", title="test", description="a handler with a bug")
def broken(req: HookRequest) -> list[dict[str, Any]]:
    raise ZeroDivisionError("a bug")


def test_a_bug_in_one_service_does_not_hide_the_others_cards(servers, tmp_path, caplog):
    app = plugin_service(
        tmp_path, services=[broken], plugin={"services": {"order-sign": ["test-broken", "dip-order-sign"]}}
    )
    with serving(app) as url:
        answer = check(SimpleNamespace(url=url), stroke(servers))
        only_broken = plugin_service(
            tmp_path / "b", services=[broken], plugin={"services": {"order-sign": ["test-broken"]}}
        )
        with serving(only_broken) as broken_url:
            alone = check(SimpleNamespace(url=broken_url), stroke(servers))
    assert answer.status_code == 200
    assert answer.json()["services"][0] == {
        "id": "test-broken",
        "status": 500,
        "problems": ["internal error; see service logs"],
    }
    assert [c["service"] for c in answer.json()["cards"]] == ["dip-order-sign"]
    assert alone.status_code == 500 and alone.json()["resourceType"] == "OperationOutcome"


@cds_service(id="test-critical", hook="order-sign", title="test", description="always a critical card")
def always_critical(req: HookRequest) -> list[dict[str, Any]]:
    return [{"summary": "测试：严重提醒", "indicator": "critical", "source": {"label": "测试"}}]


def test_by_default_a_check_runs_every_service_of_its_hook_most_severe_card_first(servers, tmp_path):
    app = plugin_service(tmp_path, services=[needs_unserved, always_critical])
    with serving(app) as url:
        data = check(SimpleNamespace(url=url), stroke(servers)).json()
    ran = {s["id"]: s["status"] for s in data["services"]}
    assert {"dip-order-sign": 200, "test-needs-basic": 412, "test-critical": 200}.items() <= ran.items()
    assert set(ran) == {svc.id for svc in app.extensions[STATE_KEY].registry if svc.hook == "order-sign"}
    indicators = [c["indicator"] for c in data["cards"]]
    assert indicators[0] == "critical" and data["cards"][0]["service"] == "test-critical"
    assert indicators == sorted(indicators, key=["critical", "warning", "info"].index)


def test_the_services_of_a_check_are_configurable_per_hook(servers, tmp_path):
    app = plugin_service(tmp_path, services=[always_critical], plugin={"services": DIP_ONLY})
    with serving(app) as url:
        data = check(SimpleNamespace(url=url), stroke(servers)).json()
    assert data["services"] == [{"id": "dip-order-sign", "status": 200, "cards": 1}]


def test_the_dip_assessment_of_a_plugin_check_is_published_with_the_plugin_channel(servers, tmp_path):
    events: list[dict[str, Any]] = []
    record = Plugin(name="test", events={"assessment": lambda _data, payload: events.append(dict(payload))})
    plugins = [*discover(), record]
    settings = settings_from_mapping({"logging": {"level": "WARNING"}}, plugins=plugins)
    with serving(create_app(settings=settings, home=tmp_path, plugins=plugins)) as url:
        body = stroke(servers)
        assert requests.post(f"{url}/plugin/v1/check", json=body, timeout=10).status_code == 200
        assert requests.post(f"{url}/cds-services/dip-order-sign", json=body, timeout=10).status_code == 200
    assert [(e["kind"], e["service"], e["channel"]) for e in events if e["kind"] == "dip"] == [
        ("dip", "dip-order-sign", "plugin"),
        ("dip", "dip-order-sign", "cds-hooks"),
    ]
    dip = next(e for e in events if e["kind"] == "dip")
    assert dip["patient_id"] == "demo-stroke" and dip["dip"]["group_code"] == "I63.9"


def test_when_no_service_can_answer_the_answer_is_its_error(servers):
    body = stroke(servers, fhirServer="http://127.0.0.1:9")  # nothing listens: the stay cannot be read
    answer = check(servers, body)
    assert answer.status_code == 412
    assert answer.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"{not json", 400, "malformed JSON"),
        (b"", 400, "empty"),
        (b"[]", 400, "JSON object"),
        (
            json.dumps({"hook": "no-such-hook", "hookInstance": "x", "context": {}}).encode(),
            400,
            "no service",
        ),
        (json.dumps({"hookInstance": "x", "context": {}}).encode(), 400, "hook"),
    ],
)
def test_bad_bodies_get_a_clear_4xx(servers, body, status, words):
    answer = requests.post(
        f"{servers.url}/plugin/v1/check", data=body, headers={"Content-Type": "application/json"}, timeout=5
    )
    assert answer.status_code == status
    assert words in json.dumps(answer.json(), ensure_ascii=False)


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_a_form_post_is_refused_so_no_page_can_send_a_check_without_cors(servers, content_type):
    body = json.dumps(stroke(servers))  # what a hostile page could send without a CORS preflight
    answer = requests.post(
        f"{servers.url}/plugin/v1/check", data=body, headers={"Content-Type": content_type}, timeout=5
    )
    assert answer.status_code == 415


def refresh_example(path: Path, example: dict[str, Any], live: dict[str, Any]) -> None:
    """``DIP_CDS_REFRESH_EXAMPLES=1``: write what the service answers into the documented example
    (after a deliberate change of the cards; review the diff)."""
    if os.environ.get("DIP_CDS_REFRESH_EXAMPLES") == "1":
        example["response"] = live
        path.write_text(json.dumps(example, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def national_example() -> dict[str, Any]:
    return json.loads(EXAMPLE_3101.read_text(encoding="utf-8"))


def test_a_national_3101_payload_gets_the_same_dip_card_built_from_its_own_data(servers):
    example = national_example()
    jsonschema.validate(example["request"], schema("request"))
    answer = check(servers, example["request"])
    assert answer.status_code == 200, answer.text
    data = answer.json()
    jsonschema.validate(data, schema("response"))
    (card,) = data["cards"]
    # by hand: charges given 320 + 900 + 1,800 = 3,020; the flagged order XY0005 on the price list 4,980
    rows = dict(
        line.strip("|").split("|")[:2] for line in card["detail"].splitlines() if line.startswith("| ")
    )
    assert (
        rows[" 目前费用 "].strip() == "¥3,020.00" and rows[" 本次医嘱（已定价 1 项） "].strip() == "¥4,980.00"
    )
    assert (
        card["summary"]
        == "I63.9 未特指的脑梗死：支付标准 ¥7,795.20，预计费用 ¥8,000.00（102.6%，高于支付标准）"
    )  # 1,280 points × 5.80 (insutype 310 → 职工's point value) × 1.05 (aged 65 and over)
    assert "参保类型 职工" in card["detail"]
    refresh_example(EXAMPLE_3101, example, data)
    strip = lambda cards: [{k: v for k, v in c.items() if k != "uuid"} for c in cards]  # noqa: E731
    assert strip(data["cards"]) == strip(example["response"]["cards"])


def test_a_3102_payload_checks_every_order_of_the_current_encounter(servers):
    body = national_example()["request"]
    body["infno"] = "3102"
    (card,) = check(servers, body).json()["cards"]
    assert "本次医嘱（已定价 4 项） | ¥8,000.00" in card["detail"]  # no order is a charge already given


def _encounter(body: dict[str, Any]) -> dict[str, Any]:
    return body["input"]["data"]["patient_dtos"][0]["fsi_encounter_dtos"][0]


@pytest.mark.parametrize(
    ("change", "problems"),
    [
        (
            lambda b: b["input"]["data"]["patient_dtos"][0].pop("patn_id"),
            ["data.patient_dtos[0].patn_id: required"],
        ),
        (
            lambda b: b["input"]["data"]["patient_dtos"][0].update(curr_mdtrt_id="other"),
            ["data.patient_dtos[0].curr_mdtrt_id: 'other' is not among fsi_encounter_dtos"],
        ),
        (
            lambda b: b["input"]["data"]["patient_dtos"].append(b["input"]["data"]["patient_dtos"][0]),
            ["data.patient_dtos: the panel checks one patient at a time, got 2"],
        ),
        (
            lambda b: (
                _encounter(b)["fsi_order_dtos"][0].update(cnt="八"),
                _encounter(b)["fsi_order_dtos"][1].pop("sumamt"),
            ),
            [
                "data.patient_dtos[0].fsi_encounter_dtos[0].fsi_order_dtos[0].cnt: not a number",
                "data.patient_dtos[0].fsi_encounter_dtos[0].fsi_order_dtos[1].sumamt: required for an order already given (a number)",
            ],
        ),
        (
            lambda b: _encounter(b).update(fsi_diagnose_dtos="I63.900"),
            ["data.patient_dtos[0].fsi_encounter_dtos[0].fsi_diagnose_dtos: must be an array"],
        ),
    ],
)
def test_a_3101_payload_with_missing_or_mistyped_fields_names_every_problem(servers, change, problems):
    body = national_example()["request"]
    change(body)
    answer = check(servers, body)
    assert answer.status_code == 400
    assert [i["diagnostics"] for i in answer.json()["issue"]] == problems


# ----------------------------------------------------------------------------- detail HTML


class _Elements(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))


def test_card_markdown_becomes_html_without_anything_executable():
    hostile = (
        "<script>alert(1)</script> <img src=x onerror=alert(1)> [x](javascript:alert(1)) "
        '<a href="https://evil.example" onclick="x()">y</a>\n\n| a | b |\n|--:|---|\n| 1 | <b>2</b> |'
    )
    html = detail_html(hostile)
    elements = _Elements(html).found
    assert {tag for tag, _ in elements} <= {"p", "table", "thead", "tbody", "tr", "th", "td"}
    assert all(not attrs for _, attrs in elements)  # no on*, no style (the right-aligned column), no href
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # shown as text, not dropped silently
    assert "<td>1</td>" in html and "<td>&lt;b&gt;2&lt;/b&gt;</td>" in html


def test_links_keep_only_http_targets_and_never_pass_the_opener():
    html = detail_html("[官网](https://www.nhsa.gov.cn) [文件](file:///etc/passwd) [数据](data:text/html,x)")
    assert '<a href="https://www.nhsa.gov.cn" rel="noopener noreferrer">官网</a>' in html
    links = [attrs.get("href") for tag, attrs in _Elements(html).found if tag == "a"]
    assert links == ["https://www.nhsa.gov.cn"]  # the others stay text


# ----------------------------------------------------------------------------- feedback


def test_dismissing_a_card_in_the_panel_stores_cds_hooks_feedback(servers):
    card = check(servers, stroke(servers)).json()["cards"][0]
    reason = card["overrideReasons"][0]
    item = {
        "card": card["uuid"],
        "outcome": "overridden",
        "overrideReason": {"reason": reason, "userComment": "家属要求继续治疗"},
        "outcomeTimestamp": "2026-12-03T08:00:00Z",
    }
    url = f"{servers.url}/plugin/v1/feedback"
    first = requests.post(url, json={"service": card["service"], "feedback": [item]}, timeout=5)
    again = requests.post(url, json={"service": card["service"], "feedback": [item]}, timeout=5)
    assert first.json() == {"stored": 1, "duplicates": 0}
    assert again.json() == {"stored": 0, "duplicates": 1}
    summary = requests.get(f"{servers.url}/cds-services/dip-order-sign/feedback/summary", timeout=5).json()
    assert {"code": reason["code"], "display": reason["display"], "count": 1}.items() <= next(
        r for r in summary["overrideReasons"] if r["code"] == reason["code"]
    ).items()


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"service": "no-such-service", "feedback": []}, 404),
        (
            {"feedback": [{"card": "c", "outcome": "accepted", "outcomeTimestamp": "2026-12-03T08:00:00Z"}]},
            404,
        ),
        ({"service": "dip-order-sign", "feedback": [{"card": "c", "outcome": "liked"}]}, 400),
        ({"service": "dip-order-sign"}, 400),
    ],
)
def test_bad_feedback_is_refused_with_the_reason(servers, body, status):
    answer = requests.post(f"{servers.url}/plugin/v1/feedback", json=body, timeout=5)
    assert answer.status_code == status
    assert answer.json()["issue"]


# ----------------------------------------------------------------------------- CORS and origins


def test_an_allowed_his_page_may_call_and_read_the_answer(servers):
    pre = requests.options(
        f"{servers.url}/plugin/v1/check",
        headers={
            "Origin": HIS,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,authorization",
        },
        timeout=5,
    )
    assert pre.headers["Access-Control-Allow-Origin"] == HIS
    assert "authorization" in pre.headers["Access-Control-Allow-Headers"].lower()
    answer = check(servers, stroke(servers), headers={"Origin": HIS})
    assert answer.status_code == 200
    assert answer.headers["Access-Control-Allow-Origin"] == HIS
    assert "Origin" in answer.headers["Vary"]


def test_any_other_page_is_refused_and_gets_no_cors_grant(servers):
    evil = "http://evil.example"
    pre = requests.options(
        f"{servers.url}/plugin/v1/check",
        headers={"Origin": evil, "Access-Control-Request-Method": "POST"},
        timeout=5,
    )
    assert "Access-Control-Allow-Origin" not in pre.headers
    answer = check(servers, stroke(servers), headers={"Origin": evil})
    assert answer.status_code == 403
    assert "Access-Control-Allow-Origin" not in answer.headers


def test_the_panel_script_is_public_and_the_hooks_keep_their_open_cors(servers):
    script = requests.get(
        f"{servers.url}/plugin/dip-cds.js", headers={"Origin": "http://x.example"}, timeout=5
    )
    assert script.status_code == 200 and script.headers["Content-Type"].startswith("text/javascript")
    assert script.headers["Access-Control-Allow-Origin"] == "*"
    cached = requests.get(
        f"{servers.url}/plugin/dip-cds.js", headers={"If-None-Match": script.headers["ETag"]}, timeout=5
    )
    assert cached.status_code == 304
    hooks = requests.get(f"{servers.url}/cds-services", headers={"Origin": "http://x.example"}, timeout=5)
    assert hooks.headers["Access-Control-Allow-Origin"] == "*"


def test_panel_script_and_styles_fit_in_40_kilobytes():
    size = sum((ROOT / "widget" / name).stat().st_size for name in ("dip-cds.js", "dip-cds.css"))
    assert size <= 40 * 1024, f"panel is {size} bytes"


def test_no_patient_identifier_reaches_the_log(servers, caplog):
    caplog.set_level(logging.DEBUG, logger="dip_cds")
    body = stroke(servers)
    assert check(servers, body, headers={"Origin": HIS}).status_code == 200
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert any(
        r.name == "dip_cds.access" and r.__dict__.get("endpoint") == "/plugin/v1/check"
        for r in caplog.records
    )
    for identifier in (body["context"]["patientId"], body["context"]["encounterId"], "demo-access-token"):
        assert identifier not in text


# ----------------------------------------------------------------------------- JWT and page tokens


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    """The service with JWT required; the HIS backend's EC key is a trusted issuer."""
    key = ec_key()
    home = tmp_path_factory.mktemp("secured")
    app = plugin_service(
        home,
        server={"public_base_url": "http://cds.example.cn"},
        security={
            "jwt": "required",
            "issuers": [
                {"iss": "https://his.example.cn", "jwks": {"keys": [public_jwk(key, "his-1", "ES384")]}}
            ],
        },
        plugin={"allowed_origins": [HIS, OTHER_HIS], "token_ttl_seconds": 60},
    )
    with serving(app) as url, serving(create_demo_fhir_app()) as fhir_url:
        yield SimpleNamespace(url=url, fhir_url=fhir_url, key=key, home=home)


def his_jwt(secured, path: str) -> str:
    return make_token(
        secured.key, aud=f"http://cds.example.cn{path}", iss="https://his.example.cn", kid="his-1"
    )


def page_token(secured, origin: str | None = HIS) -> dict[str, Any]:
    answer = requests.post(
        f"{secured.url}/plugin/v1/token",
        json={"origin": origin} if origin else None,
        headers={"Authorization": f"Bearer {his_jwt(secured, '/plugin/v1/token')}"},
        timeout=5,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_with_jwt_required_a_page_without_a_token_is_refused(secured):
    answer = check(secured, stroke(secured), headers={"Origin": HIS})
    assert answer.status_code == 401 and not answer.content


def test_the_his_server_obtains_a_short_lived_page_token_its_page_then_uses(secured):
    issued = page_token(secured)
    assert issued["token_type"] == "Bearer" and issued["expires_in"] == 60
    claims = jwt.decode(issued["access_token"], options={"verify_signature": False})
    assert (
        claims["exp"] - claims["iat"] == 60
        and claims["origin"] == HIS
        and claims["sub"] == "https://his.example.cn"
    )
    bearer = {"Authorization": f"Bearer {issued['access_token']}", "Origin": HIS}
    answer = check(secured, stroke(secured), headers=bearer)
    assert answer.status_code == 200 and answer.json()["cards"]
    card = answer.json()["cards"][0]
    item = {"card": card["uuid"], "outcome": "accepted", "outcomeTimestamp": "2026-12-03T08:00:00Z"}
    fed = requests.post(
        f"{secured.url}/plugin/v1/feedback",
        json={"service": card["service"], "feedback": [item]},
        headers=bearer,
        timeout=5,
    )
    assert fed.json() == {"stored": 1, "duplicates": 0}


def test_a_page_token_works_only_from_the_page_it_was_issued_for(secured):
    issued = page_token(secured, origin=HIS)
    stolen = {"Authorization": f"Bearer {issued['access_token']}", "Origin": OTHER_HIS}
    assert check(secured, stroke(secured), headers=stolen).status_code == 401


def test_expired_forged_and_foreign_tokens_are_refused(secured):
    secret = tokens.load_or_create_secret(secured.home, None)
    expired = jwt.encode(
        {
            "iss": tokens.ISSUER,
            "aud": tokens.AUDIENCE,
            "sub": "x",
            "iat": int(time.time()) - 900,
            "exp": int(time.time()) - 300,
        },
        secret,
        algorithm="HS256",
    )
    forged = tokens.issue(b"not-the-service-secret-but-long-enough!", subject="x", ttl_seconds=60)[
        "access_token"
    ]
    wrong_audience = his_jwt(
        secured, "/cds-services/dip-order-sign"
    )  # a CDS client JWT minted for another URL
    for token in (expired, forged, wrong_audience, "garbage"):
        assert (
            check(secured, stroke(secured), headers={"Authorization": f"Bearer {token}"}).status_code == 401
        )


def test_a_his_backend_may_call_the_check_with_its_own_cds_client_jwt(secured):
    bearer = {"Authorization": f"Bearer {his_jwt(secured, '/plugin/v1/check')}"}
    assert check(secured, stroke(secured), headers=bearer).status_code == 200


def test_page_tokens_are_issued_only_to_a_verified_server_never_to_a_browser(secured):
    url = f"{secured.url}/plugin/v1/token"
    assert requests.post(url, timeout=5).status_code == 401
    page = page_token(secured)["access_token"]
    assert requests.post(url, headers={"Authorization": f"Bearer {page}"}, timeout=5).status_code == 401
    from_browser = requests.post(
        url,
        headers={"Authorization": f"Bearer {his_jwt(secured, '/plugin/v1/token')}", "Origin": HIS},
        timeout=5,
    )
    assert from_browser.status_code == 403
    unknown_origin = requests.post(
        url,
        json={"origin": "http://evil.example"},
        headers={"Authorization": f"Bearer {his_jwt(secured, '/plugin/v1/token')}"},
        timeout=5,
    )
    assert unknown_origin.status_code == 400


def test_the_token_key_is_created_once_private_to_the_service_and_shared_by_workers(tmp_path):
    first = tokens.load_or_create_secret(tmp_path, None)
    assert tokens.load_or_create_secret(tmp_path, None) == first
    assert oct((tmp_path / tokens.KEY_FILE).stat().st_mode & 0o777) == "0o600"
    assert tokens.load_or_create_secret(tmp_path, "x" * 40) == b"x" * 40


# ----------------------------------------------------------------------------- packaging


@pytest.mark.filterwarnings("ignore")  # setuptools' notes about the pyproject style of other sections
def test_a_plain_pip_install_ships_the_panel_the_demo_his_and_the_schemas(tmp_path, monkeypatch):
    """The Dockerfile runs ``pip install .`` (not editable): the wheel must carry the browser files."""
    from setuptools import build_meta

    had_build_dir = (ROOT / "build").exists()
    monkeypatch.chdir(ROOT)
    try:
        wheel = tmp_path / build_meta.build_wheel(str(tmp_path))
    finally:
        if not had_build_dir:
            shutil.rmtree(ROOT / "build", ignore_errors=True)
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "widget/dip-cds.js",
        "widget/dip-cds.css",
        "browser_plugin/demo_his/his.js",
        "browser_plugin/demo_his/workstation.html",
        "browser_plugin/schemas/check-request.schema.json",
        "browser_plugin/schemas/check-response.schema.json",
    ):
        assert needed in names


def test_dip_cds_demo_his_serves_the_workstation_and_a_service_that_allows_it(tmp_path):
    """The command as an integrator runs it: the pages, the demo FHIR data and its own service."""
    his_port, service_port = free_port(), free_port()
    his = f"http://127.0.0.1:{his_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIP_CDS_")}
    command = [str(Path(sys.executable).with_name("dip-cds")), "--home", str(tmp_path), "demo-his",
               "--port", str(his_port), "--service-port", str(service_port)]  # fmt: skip
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for _ in range(150):
            try:
                page = requests.get(f"{his}/workstation/", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        assert page.status_code == 200
        assert f'<script type="module" src="http://127.0.0.1:{service_port}/plugin/dip-cds.js">' in page.text
        assert "script-src 'self' http://127.0.0.1:" in page.headers["Content-Security-Policy"]
        plain = requests.get(f"{his}/plain/", timeout=5)
        assert "dip-cds.js" not in plain.text and "dip-cds-panel" not in plain.text
        assert requests.get(f"{his}/fhir/Patient/demo-stroke", timeout=5).json()["id"] == "demo-stroke"
        pre = requests.options(
            f"http://127.0.0.1:{service_port}/plugin/v1/check",
            headers={"Origin": his, "Access-Control-Request-Method": "POST"},
            timeout=5,
        )
        assert pre.headers["Access-Control-Allow-Origin"] == his
    finally:
        proc.terminate()
        proc.wait(timeout=10)
