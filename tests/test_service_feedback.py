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


# --------------------------------------------------------------- override reasons named by code alone
# The CDS Hooks Sandbox sends back only the reason's code and system; the 医保办 reads displays.

OFFERED = "http://dip-cds.example.cn/CodeSystem/dip-cds"  # the system of the reasons our cards offer


def sandbox_override(card: str, code: str, ts: str = "2026-03-01T08:00:00Z") -> dict:
    return {
        "card": card,
        "outcome": "overridden",
        "outcomeTimestamp": ts,
        "overrideReason": {"reason": {"code": code, "system": OFFERED}},
    }


def _stored_displays(home) -> list[tuple[str, str | None]]:
    db = sqlite3.connect(home / "feedback.sqlite")
    return db.execute("select override_code, override_display from cds_feedback order by id").fetchall()


def test_a_reason_sent_by_code_alone_is_stored_and_summarised_with_the_display_the_card_offered(
    tmp_path, client
):
    client.post(FEEDBACK, json={"feedback": [sandbox_override("a", "cost-data-wrong")]})
    assert _stored_displays(tmp_path) == [("cost-data-wrong", "费用数据有误")]
    assert client.get(SUMMARY).get_json()["overrideReasons"] == [
        {"system": OFFERED, "code": "cost-data-wrong", "display": "费用数据有误", "count": 1}
    ]


def test_the_same_code_reads_as_the_service_that_offered_it(client):
    client.post(FEEDBACK, json={"feedback": [sandbox_override("a", "grouping-wrong")]})
    discharge = "/cds-services/dip-encounter-discharge/feedback"
    client.post(discharge, json={"feedback": [sandbox_override("b", "grouping-wrong")]})
    assert [r["display"] for r in client.get(SUMMARY).get_json()["overrideReasons"]] == ["分组预测不正确"]
    assert [r["display"] for r in client.get(discharge + "/summary").get_json()["overrideReasons"]] == [
        "分组结果不正确"
    ]


def test_a_display_the_client_sent_is_kept_and_a_reason_the_service_never_offered_has_none(tmp_path, client):
    own = sandbox_override("a", "cost-data-wrong")
    own["overrideReason"]["reason"]["display"] = "费用不对"
    other_system = sandbox_override("b", "cost-data-wrong")
    other_system["overrideReason"]["reason"]["system"] = "http://emr.example.cn/reasons"
    client.post(FEEDBACK, json={"feedback": [own, sandbox_override("c", "no-such-reason"), other_system]})
    assert _stored_displays(tmp_path) == [
        ("cost-data-wrong", "费用不对"),
        ("no-such-reason", None),
        ("cost-data-wrong", None),
    ]


def test_the_hospitals_wording_names_new_feedback_and_feedback_stored_without_a_display(tmp_path, client):
    client.post(FEEDBACK, json={"feedback": [accepted("warm-up")]})  # creates the table
    db = sqlite3.connect(tmp_path / "feedback.sqlite")
    with db:  # a row stored before the service named its reasons
        db.execute(
            "insert into cds_feedback (service_id, card_uuid, outcome, outcome_timestamp, override_system,"
            " override_code, received_at) values ('dip-order-sign', 'old', 'overridden',"
            " '2026-02-01T00:00:00+00:00', ?, 'cost-data-wrong', '2026-02-01 00:00:00')",
            (OFFERED,),
        )
    overrides = tmp_path / "card_templates"
    overrides.mkdir()
    (overrides / "override_reasons.toml").write_text(
        '[[order_sign]]\ncode = "cost-data-wrong"\ndisplay = "费用未及时上账"\n', encoding="utf-8"
    )
    client.post(FEEDBACK, json={"feedback": [sandbox_override("new", "cost-data-wrong")]})
    assert _stored_displays(tmp_path)[-1] == ("cost-data-wrong", "费用未及时上账")
    assert client.get(SUMMARY).get_json()["overrideReasons"] == [
        {"system": OFFERED, "code": "cost-data-wrong", "display": "费用未及时上账", "count": 2}
    ]
