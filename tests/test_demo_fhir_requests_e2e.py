"""Every demo CDS Hooks request is accepted by the real service, with missing prefetch fetched over
HTTP from the demo FHIR server (what an integrator does with the Sandbox)."""

from __future__ import annotations

import threading

import pytest

from hooks.demo_fhir import create_app as create_fhir_app
from tests.demo_fhir_helpers import DEMO_REQUESTS, demo_request, serving

create_service_app = pytest.importorskip("cds_service.app").create_app
settings_from_mapping = pytest.importorskip("cds_service.config").settings_from_mapping


class CountingFhir:
    """The demo FHIR app, counting the requests it answers (to see prefetch being fetched)."""

    def __init__(self) -> None:
        self.app = create_fhir_app()
        self.paths: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self._lock:
            self.paths.append(environ.get("PATH_INFO", ""))
        return self.app(environ, start_response)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    # the default prefetch deadline (0.4 s): the first request of a cold app loads the reference data
    # before the deadline starts, so it finds the stay like every later one
    settings = settings_from_mapping({"logging": {"level": "WARNING"}})
    return create_service_app(settings=settings, home=tmp_path_factory.mktemp("home")).test_client()


# the DIP services' demo requests (the 医保智能审核 ones, yb-audit-*, are tested in test_yb_audit_hooks.py)
@pytest.mark.parametrize(
    "name", sorted(p.stem for p in DEMO_REQUESTS.glob("*.json") if not p.stem.startswith("yb-audit-"))
)
def test_each_demo_request_is_accepted_by_its_service(service, name):
    fhir = CountingFhir()
    with serving(fhir) as url:
        request = demo_request(name)
        request["fhirServer"] = url
        response = service.post(f"/cds-services/dip-{request['hook']}", json=request)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert isinstance(response.get_json()["cards"], list)
    stay_reads = {"/Condition", "/Procedure", "/ChargeItem"}
    if "prefetch" not in request:  # everything the prefetch templates ask for is fetched
        assert {"/Patient/demo-appendicitis", "/Encounter/demo-enc-appendicitis", "/ChargeItem"} <= set(
            fhir.paths
        )
    elif "encounterId" in request["context"]:
        assert fhir.paths == []  # the examples carry everything the service's prefetch templates ask for
    elif request["context"]["patientId"] == "demo-no-open-encounter":
        assert not stay_reads & set(fhir.paths)  # no open inpatient stay: nothing more to read
    else:  # no encounterId (the Sandbox, patient-view): the open stay's data is looked up
        assert stay_reads <= set(fhir.paths)


@pytest.mark.parametrize(
    ("name", "prefetch_fetched"),
    [
        ("order-sign-appendicitis", 0),  # everything prefetched: no read at all
        ("order-sign-appendicitis-no-prefetch", 6),  # every template fetched by the service
        ("order-sign-sandbox-shape", 0),  # no encounterId: the service looks the open stay up itself
        ("patient-view-stroke", 0),
    ],
)
def test_the_access_log_counts_prefetch_fetches_and_every_fhir_read(service, name, prefetch_fetched):
    """``prefetch_fetched`` counts only the prefetch keys the client did not send; ``fhir_reads``
    counts every read the request made, so a stay looked up without prefetch is not invisible."""
    import logging

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    access = logging.getLogger("dip_cds.access")
    handler, level = Keep(), access.level
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        fhir = CountingFhir()
        with serving(fhir) as url:
            request = demo_request(name)
            request["fhirServer"] = url
            assert service.post(f"/cds-services/dip-{request['hook']}", json=request).status_code == 200
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    (entry,) = [r for r in records if r.getMessage() == "request"]
    assert entry.prefetch_fetched == prefetch_fetched
    assert entry.fhir_reads == len(fhir.paths)  # no retries here: one HTTP request per read
    assert entry.fhir_reads >= prefetch_fetched
    if name == "order-sign-sandbox-shape":
        assert entry.fhir_reads == 4  # open encounter, its conditions, procedures and charges


def test_the_first_request_of_a_cold_app_finds_the_stay_within_the_default_deadline(tmp_path):
    """Loading the reference data (terminology, catalogs) is not charged to the prefetch deadline:
    a request without an encounterId, first after start, still looks the open stay up."""
    cold = create_service_app(
        settings=settings_from_mapping({"logging": {"level": "WARNING"}}), home=tmp_path
    )
    assert not any(cold.extensions["dip_cds.app_data"].is_loaded(n) for n in ("terminology", "catalogs"))
    fhir = CountingFhir()
    with serving(fhir) as url:
        request = demo_request("order-sign-sandbox-shape")
        request["fhirServer"] = url
        response = cold.test_client().post("/cds-services/dip-order-sign", json=request)
    assert response.status_code == 200
    assert {"/Condition", "/Procedure", "/ChargeItem"} <= set(fhir.paths)
    (card,) = response.get_json()["cards"]
    assert "FHIR" not in card["summary"] and "未能" not in card["summary"], card["summary"]
