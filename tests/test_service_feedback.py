"""Feedback: stored in a real SQLite file, idempotent on duplicates, summarised for the 医保办."""

from __future__ import annotations

import sqlite3

import pytest

from tests.service_helpers import make_app

FEEDBACK = "/cds-services/dip-order-sign/feedback"
SUMMARY = "/cds-services/dip-order-sign/feedback/summary"


def accepted(card: str, ts: str = "2026-03-01T08:00:00Z") -> dict:
    return {
        "card": card,
        "outcome": "accepted",
        "acceptedSuggestions": [{"id": f"{card}-s1"}],
        "outcomeTimestamp": ts,
    }


def overridden(
    card: str, code: str | None, ts: str = "2026-03-01T08:00:00Z", comment: str | None = None
) -> dict:
    item = {"card": card, "outcome": "overridden", "outcomeTimestamp": ts}
    reason = {}
    if code:
        reason["reason"] = {"system": "http://dip-cds.cn/override-reason", "code": code}
    if comment:
        reason["userComment"] = comment
    if reason:
        item["overrideReason"] = reason
    return item


@pytest.fixture
def client(tmp_path):
    return make_app(tmp_path).test_client()


def test_feedback_round_trip_lands_in_the_sqlite_file_under_the_home(tmp_path, client):
    response = client.post(FEEDBACK, json={"feedback": [accepted("card-1")]})
    assert response.status_code == 200
    assert response.get_json() == {"stored": 1, "duplicates": 0}
    rows = (
        sqlite3.connect(tmp_path / "feedback.sqlite")
        .execute("select service_id, card_uuid, outcome, accepted_suggestions from cds_feedback")
        .fetchall()
    )
    assert rows == [("dip-order-sign", "card-1", "accepted", '["card-1-s1"]')]


def test_duplicate_feedback_is_stored_once(client):
    body = {"feedback": [accepted("card-1"), overridden("card-2", "clinical")]}
    assert client.post(FEEDBACK, json=body).get_json() == {"stored": 2, "duplicates": 0}
    assert client.post(FEEDBACK, json=body).get_json() == {"stored": 0, "duplicates": 2}
    assert client.get(SUMMARY).get_json()["total"] == 2


def test_same_timestamp_in_another_timezone_is_the_same_feedback(client):
    client.post(FEEDBACK, json={"feedback": [accepted("c", "2026-03-01T16:00:00+08:00")]})
    again = client.post(FEEDBACK, json={"feedback": [accepted("c", "2026-03-01T08:00:00Z")]})
    assert again.get_json()["duplicates"] == 1


def test_summary_gives_counts_rates_and_override_reasons(client):
    items = [
        accepted("a"),
        accepted("b"),
        overridden("c", "patient-refused"),
        overridden("d", "patient-refused", comment="家属拒绝"),
        overridden("e", "clinical"),
        overridden("f", None),  # the Sandbox may send no reason at all
    ]
    client.post(FEEDBACK, json={"feedback": items})
    summary = client.get(SUMMARY).get_json()
    assert summary["service"] == "dip-order-sign"
    assert (summary["total"], summary["accepted"], summary["overridden"], summary["cards"]) == (6, 2, 4, 6)
    assert summary["acceptRate"] == pytest.approx(2 / 6, abs=1e-4)
    assert summary["overrideRate"] == pytest.approx(4 / 6, abs=1e-4)
    assert summary["overridesWithComment"] == 1
    assert [(r["code"], r["count"]) for r in summary["overrideReasons"]] == [
        ("patient-refused", 2),
        ("clinical", 1),
    ]


def test_summary_is_per_service_and_filters_by_time(client):
    client.post(
        FEEDBACK,
        json={"feedback": [accepted("a", "2026-01-01T00:00:00Z"), accepted("b", "2026-06-01T00:00:00Z")]},
    )
    client.post("/cds-services/dip-patient-view/feedback", json={"feedback": [accepted("z")]})
    assert client.get(SUMMARY).get_json()["total"] == 2
    assert client.get(SUMMARY + "?since=2026-03-01").get_json()["total"] == 1
    assert client.get(SUMMARY + "?until=2026-03-01T00:00:00Z").get_json()["total"] == 1
    assert client.get(SUMMARY + "?since=yesterday").status_code == 400


def test_empty_summary_has_no_rates(client):
    summary = client.get(SUMMARY).get_json()
    assert summary["total"] == 0 and summary["acceptRate"] is None


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"feedback": []},
        {"feedback": [{"card": "x", "outcome": "maybe", "outcomeTimestamp": "2026-01-01T00:00:00Z"}]},
        {"feedback": [{"outcome": "accepted", "outcomeTimestamp": "2026-01-01T00:00:00Z"}]},
        {"feedback": [{"card": "x", "outcome": "accepted", "outcomeTimestamp": "not a time"}]},
        {"feedback": "accepted"},
    ],
)
def test_invalid_feedback_is_400_and_nothing_is_stored(client, body):
    response = client.post(FEEDBACK, json=body)
    assert response.status_code == 400
    assert response.get_json()["resourceType"] == "OperationOutcome"
    assert client.get(SUMMARY).get_json()["total"] == 0


def test_feedback_for_an_unknown_service_is_404(client):
    assert client.post("/cds-services/nope/feedback", json={"feedback": [accepted("a")]}).status_code == 404
    assert client.get("/cds-services/nope/feedback/summary").status_code == 404


def test_database_url_setting_selects_another_database(tmp_path):
    db = tmp_path / "elsewhere" / "fb.db"
    db.parent.mkdir()
    client = make_app(tmp_path, feedback={"database_url": f"sqlite:///{db}"}).test_client()
    client.post(FEEDBACK, json={"feedback": [accepted("a")]})
    assert db.exists() and not (tmp_path / "feedback.sqlite").exists()
