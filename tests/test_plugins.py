"""The plugin seam: apps own their plugin set, sections, services, data, readiness and events."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import pytest
from marshmallow import fields, validate

from cds_service.app import create_app, preload
from cds_service.config import ConfigError, SectionSchema, load_settings, settings_from_mapping
from cds_service.plugins import Plugin, PluginError, PluginSet, discover
from cds_service.registry import cds_service
from terminology.plugin import plugin as terminology_plugin
from tests.service_helpers import hook_request


@dataclass(frozen=True)
class GreetingSettings:
    greeting: str = "你好"
    repeat: int = 1


class GreetingSchema(SectionSchema):
    settings_class = GreetingSettings
    greeting = fields.String(validate=validate.Length(min=1))
    repeat = fields.Integer(validate=validate.Range(min=1, max=3))


RECEIVED: list[dict] = []


def _record(data, payload):
    RECEIVED.append({"home": data.home, **payload})


def _explode(data, payload):
    raise RuntimeError(f"subscriber bug while reading patient {payload['patient_id']}")


@cds_service(id="greet", hook="patient-view", title="问候", description="d")
def greet(req):
    conf = req.settings.section("greeting", GreetingSettings)
    req.publish("assessment", {"kind": "dip", "service": "greet", "patient_id": req.patient_id})
    summary = conf.greeting * conf.repeat + f" ({req.app_data.counter})"
    return [{"summary": summary, "indicator": "info", "source": {"label": "test"}}]


def greeting_plugin(**overrides) -> Plugin:
    declared = {
        "name": "greeting",
        "settings": {"greeting": GreetingSchema},
        "services": lambda: [greet],
        "app_data": {"counter": lambda data: 41 + 1},
        "readiness": lambda data: {"counter": data.counter},
        "events": {"assessment": _record},
    }
    return Plugin(**{**declared, **overrides})


def app_with(tmp_path, *plugins: Plugin, **sections):
    settings = settings_from_mapping({"logging": {"level": "WARNING"}, **sections}, plugins=plugins)
    return create_app(settings, tmp_path, plugins=plugins)


@pytest.fixture(autouse=True)
def _clear():
    RECEIVED.clear()


def test_the_installed_plugins_are_the_domains():
    assert [p.name for p in discover()] == [
        "browser_plugin", "console", "costing", "dip_engine", "hooks", "settlement", "terminology", "yb_audit"
    ]  # fmt: skip


def test_apps_answer_only_their_own_plugins_services(tmp_path):
    only_terminology = app_with(tmp_path, terminology_plugin).test_client()
    assert only_terminology.get("/cds-services").get_json() == {"services": []}
    assert only_terminology.get("/fhir/CodeSystem/$lookup?code=K35.300").status_code == 200
    greeting = app_with(tmp_path, greeting_plugin()).test_client()
    assert [s["id"] for s in greeting.get("/cds-services").get_json()["services"]] == ["greet"]
    assert greeting.get("/fhir/CodeSystem/$lookup?code=K35.3").status_code == 404  # not mounted here


def test_a_plugin_section_is_validated_defaults_from_its_dataclass_and_env_overrides_it(tmp_path):
    plugins = [greeting_plugin()]
    assert (
        settings_from_mapping({}, plugins=plugins).section("greeting", GreetingSettings) == GreetingSettings()
    )
    env = {"DIP_CDS_GREETING__REPEAT": "2"}
    assert load_settings(environ=env, plugins=plugins).section("greeting", GreetingSettings).repeat == 2
    with pytest.raises(ConfigError) as err:
        settings_from_mapping({"greeting": {"repeat": 9, "colour": "red"}}, plugins=plugins)
    assert sorted(p.split(":")[0] for p in err.value.problems) == ["greeting.colour", "greeting.repeat"]
    # without the plugin the section is unknown, and asking for it is a programming error
    with pytest.raises(ConfigError, match="greeting: unknown section"):
        settings_from_mapping({"greeting": {}}, plugins=[])
    with pytest.raises(KeyError, match="no plugin declares"):
        settings_from_mapping({}, plugins=[]).section("greeting")


def test_handler_reads_typed_settings_and_lazily_loaded_data_and_publishes_the_assessment(tmp_path):
    app = app_with(tmp_path, greeting_plugin(), greeting={"greeting": "早", "repeat": 2})
    data = app.extensions["dip_cds.app_data"]
    assert not data.is_loaded("counter")
    body = app.test_client().post("/cds-services/greet", json=hook_request("patient-view")).get_json()
    assert body["cards"][0]["summary"] == "早早 (42)"
    assert RECEIVED == [
        {"home": tmp_path.resolve(), "kind": "dip", "service": "greet", "patient_id": "1288992"}
    ]


def test_a_failing_subscriber_never_breaks_the_response_nor_the_other_subscribers(tmp_path, caplog):
    from cds_service import metrics

    before = metrics.EVENT_FAILURES.labels("assessment", "broken")._value.get()
    broken = Plugin(name="broken", events={"assessment": _explode})
    app = app_with(tmp_path, broken, greeting_plugin())
    with caplog.at_level(logging.ERROR, logger="dip_cds.events"):
        response = app.test_client().post("/cds-services/greet", json=hook_request("patient-view"))
    assert response.status_code == 200 and response.get_json()["cards"]
    assert len(RECEIVED) == 1  # the healthy subscriber still got the event
    assert metrics.EVENT_FAILURES.labels("assessment", "broken")._value.get() == before + 1
    logged = [r for r in caplog.records if r.getMessage() == "event subscriber failed"]
    assert logged and "RuntimeError at" in logged[0].reason
    assert all("1288992" not in json.dumps(r.__dict__, default=str) for r in caplog.records)


def test_unknown_events_and_clashing_claims_are_refused():
    with pytest.raises(PluginError, match="unknown event 'assesment'"):
        PluginSet([Plugin(name="typo", events={"assesment": _record})])
    with pytest.raises(
        PluginError, match="configuration section 'greeting' claimed by both greeting and copy"
    ):
        PluginSet([greeting_plugin(), greeting_plugin(name="copy", app_data={})])
    with pytest.raises(PluginError, match="data 'counter'"):
        PluginSet([greeting_plugin(), greeting_plugin(name="copy", settings={})])
    with pytest.raises(ValueError, match="unknown event"):
        app_with_bus = PluginSet([]).event_bus(None)  # type: ignore[arg-type]
        app_with_bus.publish("assesment", {})


def test_readiness_reports_each_plugin_and_names_a_failing_one(tmp_path):
    ready = app_with(tmp_path, greeting_plugin()).test_client().get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["data"] == {"counter": 42, "feedback": "ok"}

    def broken_loader(data):
        raise OSError("catalogs.sqlite is not a database")

    app = app_with(tmp_path, greeting_plugin(app_data={"counter": broken_loader}))
    assert preload(app) == ["counter: OSError: catalogs.sqlite is not a database"]
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert "greeting: not ready (OSError: catalogs.sqlite is not a database)" in response.get_data(
        as_text=True
    )
