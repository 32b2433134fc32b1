"""The HIS cost endpoint client against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import pytest
from werkzeug.wrappers import Request, Response

from cds_service.config import settings_from_mapping
from costing import HisCostClient, HisCostConfig, HisCostError, parse_his_cost
from costing.settings import CostingSettings
from tests.demo_fhir_helpers import serving

ANSWERS = {
    "/cost/enc-1": (
        200,
        {
            "total": "12345.67",
            "currency": "CNY",
            "by_category": {"01": "345.67", "手术费": 12000},
            "as_of": "2026-11-22T08:00:00+08:00",
            "item_count": 57,
        },
    ),
    "/cost/enc-sum": (200, {"by_category": {"03": 100, "04": "20.50"}}),
    "/cost/enc-500": (500, {"error": "boom"}),
    "/cost/enc-usd": (200, {"total": 10, "currency": "USD"}),
    "/cost/enc-empty": (200, {}),
}


@Request.application
def his_app(request: Request) -> Response:
    his_app.seen.append((request.environ.get("RAW_URI", request.path), request.headers.get("X-Api-Key")))
    if request.path == "/cost/enc-slow":
        time.sleep(1.0)
    if request.path == "/cost/enc-garbage":
        return Response("<html>oops</html>", content_type="text/html")
    status, body = ANSWERS.get(request.path, (404, {"error": "unknown"}))
    return Response(json.dumps(body, ensure_ascii=False), status=status, content_type="application/json")


his_app.seen = []


@pytest.fixture(scope="module")
def his_url():
    with serving(his_app) as url:
        yield url


def client(base, timeout=2.0):
    """The client a hook handler builds from ``[costing.his]`` (loaded the way the service loads it)."""
    his = {
        "url_template": f"{base}/cost/{{encounter_id}}",
        "timeout_seconds": timeout,
        "headers": {"X-Api-Key": "k"},
    }
    config = settings_from_mapping({"costing": {"his": his}}).section("costing", CostingSettings).his
    assert config is not None
    return HisCostClient(config)


def test_documented_answer_becomes_cost_so_far(his_url):
    cost = client(his_url).fetch(encounter_id="enc-1", patient_id="p1")
    assert cost.total == Decimal("12345.67") and cost.source == "HIS"
    assert cost.by_category == {"01": Decimal("345.67"), "06": Decimal("12000.00")}
    assert cost.as_of.startswith("2026-11-22") and cost.item_count == 57
    assert his_app.seen[-1] == ("/cost/enc-1", "k")


def test_total_is_the_sum_of_categories_when_absent(his_url):
    assert client(his_url).fetch(encounter_id="enc-sum").total == Decimal("120.50")


def test_ids_are_url_encoded_into_the_template(his_url):
    assert client(his_url).fetch(encounter_id="../enc-1") is None
    assert his_app.seen[-1][0] == "/cost/..%2Fenc-1"


def test_unknown_stay_is_none(his_url):
    assert client(his_url).fetch(encounter_id="nobody") is None


@pytest.mark.parametrize(
    ("encounter", "message"),
    [("enc-500", "HTTP 500"), ("enc-garbage", "not JSON"), ("enc-usd", "USD"), ("enc-empty", "neither")],
)
def test_bad_answers_raise_a_clear_error(his_url, encounter, message):
    with pytest.raises(HisCostError, match=message):
        client(his_url).fetch(encounter_id=encounter)


def test_a_slow_his_times_out_quickly(his_url):
    started = time.perf_counter()
    with pytest.raises(HisCostError, match="did not answer"):
        client(his_url, timeout=0.2).fetch(encounter_id="enc-slow")
    assert time.perf_counter() - started < 0.9


def test_an_unreachable_his_is_an_error_not_a_crash():
    with serving(his_app) as url:
        dead = url
    with pytest.raises(HisCostError, match="unreachable"):
        client(dead, timeout=0.5).fetch(encounter_id="enc-1")


def test_missing_ids_and_bad_configuration_are_refused():
    config = HisCostConfig("http://127.0.0.1:9/cost/{patient_id}/{encounter_id}")
    with pytest.raises(HisCostError, match="encounter_id"):
        HisCostClient(config).url_for(encounter_id=None, patient_id="p")
    for template in ("ftp://x/{encounter_id}", "http://x/cost", "http://x/{bed}"):
        with pytest.raises(ValueError):
            HisCostConfig(template)
    assert settings_from_mapping({"costing": {}}).section("costing", CostingSettings).his is None


def test_parse_rejects_non_amounts():
    with pytest.raises(HisCostError):
        parse_his_cost({"total": "abc"})
    with pytest.raises(HisCostError):
        parse_his_cost([1, 2])
    assert parse_his_cost({"total": 5, "by_category": {"01": 1}}).notes
