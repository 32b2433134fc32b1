"""One assessment per request (issue 13 item 4): every DIP service builds exactly one
:class:`hooks.assessment.Assessment` and hands it to its card and to exactly one ``assessment`` event
— so the event carries the numbers the doctor or coder saw, and nothing is computed twice."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest

import hooks.encounter_discharge
import hooks.encounter_start
import hooks.order_sign
import hooks.patient_view
from cds_service.app import create_app, preload
from cds_service.config import settings_from_mapping
from cds_service.plugins import Plugin, discover
from hooks.demo_fhir import create_app as create_demo_fhir_app
from tests.demo_fhir_helpers import demo_request, serving
from tests.hooks_helpers import pin_today

SERVICES = {
    "dip-order-sign": ("order-sign-appendicitis", hooks.order_sign),
    "dip-order-select": ("order-select-stroke", hooks.order_sign),
    "dip-patient-view": ("patient-view-stroke", hooks.patient_view),
    "dip-encounter-start": ("encounter-start-appendicitis", hooks.encounter_start),
    "dip-encounter-discharge": ("encounter-discharge-lungcancer", hooks.encounter_discharge),
}
MONEY = re.compile(r"¥([\d,]+\.\d\d)")


@pytest.fixture(autouse=True)
def pinned_today(monkeypatch):
    pin_today(monkeypatch)


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    """The real app with every installed plugin but the console, plus a probe recording the events."""
    received: list[dict[str, Any]] = []
    recorder = Plugin(name="probe", events={"assessment": lambda data, event: received.append(dict(event))})
    plugins = [p for p in discover() if p.name != "console"] + [recorder]
    settings = settings_from_mapping({"logging": {"level": "WARNING"}}, plugins=plugins)
    app = create_app(settings, tmp_path_factory.mktemp("home"), plugins=plugins)
    assert preload(app) == []
    with serving(create_demo_fhir_app()) as fhir_url:
        yield app.test_client(), received, fhir_url


def answer(probe, service: str, body: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    client, received, fhir_url = probe
    body["fhirServer"] = fhir_url
    received.clear()
    response = client.post(f"/cds-services/{service}", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["cards"], list(received)


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_each_service_assesses_once_and_publishes_once(probe, monkeypatch, service):
    name, module = SERVICES[service]
    calls: list[str] = []
    real = module.assess

    def counting(*args, **kwargs):
        calls.append(service)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "assess", counting)
    cards, events = answer(probe, service, demo_request(name))
    assert calls == [service]
    (event,) = events
    assert (event["kind"], event["service"], event["channel"]) == ("dip", service, "cds-hooks")
    assert [c["uuid"] for c in event["cards"]] == [c["uuid"] for c in cards]
    patient = demo_request(name)["prefetch"]["patient"]
    names = [
        part
        for n in patient["name"]
        for part in (n.get("text"), n.get("family"), *n.get("given", ()))
        if part
    ]
    assert names and not [n for n in names if n in str(event)]  # never a patient name


def test_the_event_carries_the_numbers_on_the_card(probe):
    cards, (event,) = answer(probe, "dip-order-sign", demo_request("order-sign-appendicitis"))
    (card,) = cards
    dip = event["dip"]
    assert dip["group_code"] == "K35.3:47.0100" and card["summary"].split()[1] == "K35.3:47.0100"
    standard, projected = (Decimal(m.replace(",", "")) for m in MONEY.findall(card["summary"])[:2])
    assert (Decimal(dip["standard"]), Decimal(dip["projected"])) == (standard, projected)
    assert Decimal(dip["cost_so_far"]) + Decimal(dip["order_cost"]) == projected
    assert dip["band"] == "normal" and dip["projected_ratio"] == str(
        (projected / standard).quantize(Decimal("0.0001"))
    )


def test_encounter_start_publishes_no_cost_it_did_not_read(probe):
    _, (event,) = answer(probe, "dip-encounter-start", demo_request("encounter-start-appendicitis"))
    assert event["dip"]["group_code"] == "K35.3" and event["dip"]["cost_so_far"] is None


def test_no_card_no_event(probe):
    cards, events = answer(probe, "dip-patient-view", demo_request("patient-view-no-open-encounter"))
    assert cards == [] and events == []
    body = demo_request("order-sign-appendicitis")
    body["extension"] = {"dip-cds-region": "000000"}  # a region without a catalog: a warning card only
    cards, events = answer(probe, "dip-order-sign", body)
    assert cards[0]["indicator"] == "warning" and events == []
