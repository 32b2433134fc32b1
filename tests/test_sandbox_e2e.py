"""The official CDS Hooks Sandbox plays the EHR against dip-cds, in a real browser.

Three real servers on free loopback ports: the prebuilt Sandbox (../shared/tools/cds-hooks-sandbox,
served as static files), ``dip-cds demo-fhir`` and ``dip-cds serve`` — once with JWT off and once
with ``security.jwt = "required"`` + ``trust_sandbox`` (the Sandbox signs every call with its
published ES384 key). Every demo patient loads; for two of them patient-view and order-sign (Rx Sign)
show our cards; a card dismissed with a reason is stored and summarised with the reason's display,
although the Sandbox sends back only its code and system. The browser is offline (requests to other
hosts are aborted) and any console error but the Sandbox's two known harmless ones fails the test.
Screenshots: tests/artifacts/sandbox/.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
import requests
from playwright.sync_api import ConsoleMessage, Page, Response, expect
from werkzeug.exceptions import NotFound
from werkzeug.middleware.shared_data import SharedDataMiddleware

from hooks.demo_fhir import DEMO_DATA_DIR, FhirStore
from tests.chromium_helpers import ARTIFACTS, chromium, needs_chromium
from tests.demo_fhir_helpers import serving
from tests.service_helpers import dip_cds_server

SANDBOX = Path(__file__).resolve().parents[2] / "shared" / "tools" / "cds-hooks-sandbox" / "build"
SHOTS = ARTIFACTS / "sandbox"
DEFAULT_SERVICES = "https://sandbox-services.cds-hooks.org/"  # the Sandbox's built-in service list
NO_OPEN_STAY = {"demo-lungcancer", "demo-no-open-encounter"}  # patient-view answers no card for them
GROUP = {"demo-appendicitis": "K35.3", "demo-stroke": "I63.9"}  # the two patients driven end to end
# the reason each of them dismisses its order-sign card with (cards/templates/override_reasons.toml)
DISMISS = {
    "demo-appendicitis": ("grouping-wrong", "分组预测不正确"),
    "demo-stroke": ("cost-data-wrong", "费用数据有误"),
}

pytestmark = [
    needs_chromium,
    pytest.mark.skipif(not (SANDBOX / "index.html").is_file(), reason=f"the CDS Hooks Sandbox is not at {SANDBOX}"),
]  # fmt: skip


# ----------------------------------------------------------------------------- the three servers


def static_files(directory: Path):
    """A WSGI app serving ``directory`` as a static site (``/`` is its index.html). The build has no
    favicon, which some Chromium versions ask for: no content rather than a 404 console error."""
    files = SharedDataMiddleware(NotFound(), {"/": str(directory)})

    def app(environ, start_response):
        if environ.get("PATH_INFO") == "/favicon.ico":
            start_response("204 No Content", [])
            return [b""]
        if environ.get("PATH_INFO") in ("", "/"):
            environ["PATH_INFO"] = "/index.html"
        return files(environ, start_response)

    return app


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    with serving(static_files(SANDBOX)) as url:
        yield url


@pytest.fixture(scope="module")
def fhir(tmp_path_factory) -> Iterator[str]:
    logs = tmp_path_factory.mktemp("demo-fhir")
    with dip_cds_server(lambda port: ["demo-fhir", "--host", "127.0.0.1", "--port", str(port)],
                        ready="/metadata", log=logs / "demo-fhir.log") as url:  # fmt: skip
        yield url


@pytest.fixture(scope="module", params=["off", "required"])
def service(request, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """``dip-cds serve`` on a fresh data home; ``required``: JWT verified, the Sandbox's key trusted
    (allowed only on loopback, hence 127.0.0.1 and an explicit public URL for the audience)."""
    home = tmp_path_factory.mktemp(f"home-jwt-{request.param}")
    config = home / "config.toml"

    def command(port: int) -> list[str]:
        security = 'jwt = "required"\ntrust_sandbox = true' if request.param == "required" else 'jwt = "off"'
        config.write_text(
            f'[server]\npublic_base_url = "http://127.0.0.1:{port}"\n\n[security]\n{security}\n\n'
            '[logging]\nlevel = "WARNING"\n',
            encoding="utf-8",
        )
        return ["--home", str(home), "serve", "--host", "127.0.0.1", "--port", str(port),
                "--workers", "1", "--config", str(config)]  # fmt: skip

    with dip_cds_server(command, ready="/readyz", log=home / "serve.log") as url:
        yield {"url": url, "home": home, "jwt": request.param}


@pytest.fixture(scope="module")
def browser():
    SHOTS.mkdir(parents=True, exist_ok=True)
    with chromium() as b:
        yield b


# ----------------------------------------------------------------------------- the EHR in the browser


class Ehr:
    """One fresh browser profile on the Sandbox: offline, with every console error and every failed
    answer of our servers recorded."""

    def __init__(self, browser, site: str, fhir: str, service: dict[str, Any]) -> None:
        self.site, self.fhir, self.service = site, fhir, service
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.context.route("**/*", self._offline)
        self.page: Page = self.context.new_page()
        self.blocked: list[str] = []
        self.errors: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        self.page.on("response", self._response)

    def _offline(self, route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort()

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"{message.text} @ {message.location.get('url')}")

    def _response(self, response: Response) -> None:
        if response.url.startswith((self.fhir, self.service["url"])) and response.status >= 400:
            self.errors.append(f"HTTP {response.status} from {response.request.method} {response.url}")

    def unexpected_errors(self) -> list[str]:
        """Console errors other than the Sandbox's known harmless ones: its index.html links a
        styles.css the build does not have, and its default service list is on the internet."""
        blocked_lists = sum(url.startswith(DEFAULT_SERVICES) for url in self.blocked)
        unexpected = []
        for error in self.errors:
            if error.endswith(f"@ {self.site}/styles.css") and "404" in error:
                continue
            if error.startswith("Failed to load resource") and f"@ {DEFAULT_SERVICES}" in error:
                continue
            if error.startswith("Could not retrieve any services at discovery endpoint") and blocked_lists:
                blocked_lists -= 1  # the Sandbox's own message about that list: once per blocked fetch
                continue
            unexpected.append(error)
        return unexpected

    def hook_call(self, service_id: str) -> Callable[[Response], bool]:
        url = f"{self.service['url']}/cds-services/{service_id}"
        return lambda r: r.url == url and r.request.method == "POST"

    def open_patient(self, patient_id: str) -> Response:
        """Open the patient in Patient View; returns the answer to the patient-view call it fires."""
        query = {"fhirServiceUrl": self.fhir, "patientId": patient_id, "hook": "patient-view",
                 "serviceDiscoveryURL": f"{self.service['url']}/cds-services", "screen": "patient-view"}  # fmt: skip
        with self.page.expect_response(self.hook_call("dip-patient-view")) as answer:
            self.page.goto(f"{self.site}/?{urlencode(query)}")
        return answer.value

    def cards(self, text: str | None = None):
        return self.page.locator("[class*='decision-card']", has_text=text)

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(SHOTS / f"jwt-{self.service['jwt']}-{name}.png"), full_page=True)


@pytest.fixture
def ehr(browser, site, fhir, service) -> Iterator[Ehr]:
    session = Ehr(browser, site, fhir, service)
    try:
        yield session
    finally:
        session.context.close()
    assert session.unexpected_errors() == []


def _answer(response: Response) -> dict[str, Any]:
    assert response.status == 200, response.text()
    return response.json()


def _name(patient: dict[str, Any]) -> str:
    """How the Sandbox shows a HumanName: given names, then the family name."""
    name = patient["name"][0]
    return f"{' '.join(name['given'])} {name['family']}"


# ----------------------------------------------------------------------------- the specification


@pytest.mark.parametrize("service", ["off"], indirect=True)
def test_every_demo_patient_is_listed_loads_and_gets_its_patient_view_answer(ehr) -> None:
    """Through the Sandbox's own patient picker (Settings → Change Patient), which lists every
    Patient of the FHIR server by name and birth date."""
    patients = FhirStore.from_directory(DEMO_DATA_DIR).by_type["Patient"]
    dip = sorted(
        p for p in patients if not p.startswith("demo-audit-")
    )  # the 智能审核 stays: test_yb_audit_*
    assert len(dip) == 6
    first, *others = dip
    answers = {first: ehr.open_patient(first)}
    for patient_id in others:
        ehr.page.locator("header button:has([data-testid=SettingsIcon])").click()
        ehr.page.get_by_role("menuitem", name="Change Patient").click()
        dialog = ehr.page.get_by_role("dialog")
        dialog.locator("[class*='-control']").click()
        listed = ehr.page.locator("[id*='-option-']")
        expect(listed).to_have_text([f"{_name(p)}, {p['birthDate']}" for p in patients.values()])
        listed.filter(has_text=f"{_name(patients[patient_id])}, ").click()
        with ehr.page.expect_response(ehr.hook_call("dip-patient-view")) as answer:
            dialog.get_by_role("button", name="Save").click()
        answers[patient_id] = answer.value
        dialog.get_by_role("button", name="close").click()  # this Sandbox build leaves it open after Save
        expect(dialog).to_be_hidden()
        expect(ehr.page.get_by_text(_name(patients[patient_id]), exact=True)).to_be_visible()
        cards = _answer(answers[patient_id])["cards"]
        if patient_id in NO_OPEN_STAY:
            assert cards == []
            expect(ehr.page.get_by_text("No recommendations to display")).to_be_visible()
        else:
            assert len(cards) == 1
            expect(ehr.cards(cards[0]["summary"])).to_have_count(1)
        ehr.shot(f"{patient_id}-patient-view")
    assert sorted(answers) == dip


@pytest.mark.parametrize("patient_id", sorted(GROUP))
def test_patient_view_then_rx_sign_show_our_cards_and_a_dismissal_keeps_its_reason(
    ehr, service, patient_id
) -> None:
    # Patient View: the open stay's group, standard and cost so far, the detail's table rendered
    answer = ehr.open_patient(patient_id)
    if service["jwt"] == "required":
        assert answer.request.headers["authorization"].startswith("Bearer ")
    (card,) = _answer(answer)["cards"]
    assert card["summary"].startswith(f"本次住院 {GROUP[patient_id]} ")
    shown = ehr.cards(card["summary"])
    expect(shown).to_have_count(1)
    expect(shown.locator("table")).to_have_count(1)
    ehr.shot(f"{patient_id}-patient-view")

    # Rx Sign: "Treating" lists the coded Conditions by their code.text; a drug from the Sandbox's
    # RxNorm list is signed and the order-sign card names the stay's group
    ehr.page.get_by_role("button", name="Rx Sign").click()
    ehr.page.locator("label:has-text('Treating') + div input").click()
    coded = [c for c in FhirStore.from_directory(DEMO_DATA_DIR).by_type["Condition"].values()
             if c["subject"]["reference"] == f"Patient/{patient_id}" and c["code"].get("coding")]  # fmt: skip
    expect(ehr.page.locator("[id*='-option-']")).to_have_text(sorted(c["code"]["text"] for c in coded))
    ehr.page.keyboard.press("Escape")
    ehr.page.fill("input[name=medication-input]", "aspirin")
    ehr.page.get_by_role("button", name="Aspirin 81 MG Oral Tablet", exact=True).click()
    with ehr.page.expect_response(ehr.hook_call("dip-order-sign")) as signed:
        ehr.page.get_by_role("button", name="Sign Order").click()
    (order,) = json.loads(signed.value.request.post_data or "{}")["context"]["draftOrders"]["entry"]
    assert order["resource"]["medicationCodeableConcept"]["text"] == "Aspirin 81 MG Oral Tablet"
    (card,) = _answer(signed.value)["cards"]
    assert card["summary"].startswith(f"{GROUP[patient_id]} ")
    shown = ehr.cards(card["summary"])
    expect(shown).to_have_count(1)
    ehr.shot(f"{patient_id}-rx-sign")

    # Dismiss with a reason: the Sandbox sends only its code and system; we store and report the
    # display the card offered
    code, display = DISMISS[patient_id]
    assert {"code": code, "display": display} in [
        {"code": r["code"], "display": r["display"]} for r in card["overrideReasons"]
    ]
    shown.get_by_role("button", name="select dismiss reason").click()
    with ehr.page.expect_response(ehr.hook_call("dip-order-sign/feedback")) as sent:
        ehr.page.get_by_role("menuitem", name=display).click()
    assert json.loads(sent.value.request.post_data or "{}")["feedback"][0]["overrideReason"] == {
        "reason": {"code": code, "system": card["overrideReasons"][0]["system"]}
    }
    assert _answer(sent.value) == {"stored": 1, "duplicates": 0}
    expect(shown).to_have_count(0)
    ehr.shot(f"{patient_id}-dismissed")

    with sqlite3.connect(service["home"] / "feedback.sqlite") as db:
        stored = db.execute(
            "select outcome, override_code, override_display from cds_feedback where card_uuid = ?",
            (card["uuid"],),
        ).fetchall()
    assert stored == [("overridden", code, display)]
    summary = requests.get(
        f"{service['url']}/cds-services/dip-order-sign/feedback/summary", timeout=10
    ).json()
    assert [(r["display"], r["count"]) for r in summary["overrideReasons"] if r["code"] == code] == [
        (display, 1)
    ]


def test_with_jwt_required_the_same_call_without_the_sandboxs_token_is_refused(fhir, service) -> None:
    """The JWT run is no formality: the Sandbox's patient-view call, sent without its token, gets 401."""
    request = {"hook": "patient-view", "hookInstance": "5c1f4a56-4c8e-4d5c-9d1c-0a1d5c3a9e11", "fhirServer": fhir,
               "context": {"userId": "Practitioner/COREPRACTITIONER1", "patientId": "demo-stroke"}}  # fmt: skip
    answer = requests.post(f"{service['url']}/cds-services/dip-patient-view", json=request, timeout=30)
    assert answer.status_code == (401 if service["jwt"] == "required" else 200)
