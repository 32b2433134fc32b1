"""Card, suggestion and action dicts follow CDS Hooks 2.0 and omit empty optional fields."""

from __future__ import annotations

import uuid

import pytest

from cards import (
    card,
    coding,
    create_action,
    delete_action,
    link,
    override_reason,
    source,
    suggestion,
    truncate_summary,
    update_action,
)


def is_uuid4(value: str) -> bool:
    return uuid.UUID(value).version == 4


def test_minimal_card_has_required_fields_a_uuid_and_nothing_empty():
    built = card("摘要", "info", source("DIP 平顶山2025"), detail="", suggestions=[], links=[])
    assert built.keys() == {"uuid", "summary", "indicator", "source"}
    assert is_uuid4(built["uuid"])
    assert built["source"] == {"label": "DIP 平顶山2025"}


def test_each_card_gets_its_own_uuid():
    assert card("a", "info", source("x"))["uuid"] != card("a", "info", source("x"))["uuid"]


def test_summary_is_cut_below_140_characters_with_an_ellipsis():
    long_summary = "费" * 300
    cut = card(long_summary, "warning", source("x"))["summary"]
    assert len(cut) < 140 and cut.endswith("…")
    assert truncate_summary("短") == "短"
    assert len(truncate_summary("x" * 139)) == 139
    assert truncate_summary("x" * 140).endswith("…")


def test_indicator_and_source_are_validated():
    with pytest.raises(ValueError):
        card("s", "danger", source("x"))
    with pytest.raises(ValueError):
        source("")
    with pytest.raises(ValueError):
        card("", "info", source("x"))


def test_source_topic_and_url():
    built = source("DIP 平顶山2025", url="https://example.cn/dip", topic=coding("dip-status", "DIP 结余"))
    assert built["topic"]["code"] == "dip-status" and built["topic"]["display"] == "DIP 结余"
    assert built["url"] == "https://example.cn/dip"


def test_suggestions_get_uuids_and_make_selection_behavior_required():
    condition = {"resourceType": "Condition", "id": "c1", "code": {"coding": [{"code": "K35.300"}]}}
    built = card(
        "s",
        "info",
        source("x"),
        suggestions=[
            suggestion(
                "补充医保版编码", [update_action("为诊断补充医保版编码", condition)], is_recommended=True
            )
        ],
    )
    assert built["selectionBehavior"] == "at-most-one"
    (only,) = built["suggestions"]
    assert is_uuid4(only["uuid"]) and only["isRecommended"] is True
    assert only["actions"][0] == {
        "type": "update",
        "description": "为诊断补充医保版编码",
        "resource": condition,
    }


def test_selection_behavior_is_dropped_without_suggestions_and_checked_with_them():
    assert "selectionBehavior" not in card("s", "info", source("x"), selection_behavior="any")
    with pytest.raises(ValueError):
        card("s", "info", source("x"), suggestions=[suggestion("l")], selection_behavior="all")


def test_actions_carry_what_their_type_needs():
    resource = {"resourceType": "ServiceRequest", "status": "draft"}
    assert create_action("新建", resource)["resource"] == resource
    assert delete_action("删除医嘱", "ServiceRequest/sr-1") == {
        "type": "delete",
        "description": "删除医嘱",
        "resourceId": "ServiceRequest/sr-1",
    }
    with pytest.raises(ValueError):
        update_action("缺少 id", resource)
    with pytest.raises(ValueError):
        create_action("", resource)
    with pytest.raises(ValueError):
        delete_action("删除", "")


def test_override_reasons_need_a_display():
    reason = override_reason("clinically-necessary", "临床需要")
    assert reason["display"] == "临床需要" and reason["code"] == "clinically-necessary" and reason["system"]
    with pytest.raises(ValueError):
        override_reason("x", "")


def test_links_are_typed():
    assert link("DIP 目录", "https://example.cn")["type"] == "absolute"
    with pytest.raises(ValueError):
        link("x", "https://example.cn", type="popup")


def test_label_text_cannot_carry_html():
    assert suggestion("<img src=x>")["label"] == "＜img src=x＞"
