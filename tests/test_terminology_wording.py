"""Wording keys: the same clinical concept written the ways clinicians write it (no tables needed)."""

from __future__ import annotations

import pytest

from terminology.loader import load_terminology
from terminology.wording import aliases, concept_keys, relation


@pytest.mark.parametrize(
    ("kind", "typed", "official"),
    [
        ("dx", "高血压病", "高血压"),
        ("dx", "高血压心脏病", "高血压性心脏病"),
        ("dx", "不稳定性心绞痛", "不稳定型心绞痛"),
        ("dx", "慢性阻塞性肺疾病", "慢性阻塞性肺病"),
        ("dx", "支气管扩张症", "支气管扩张（症）"),
        ("dx", "心房颤动", "心房颤动[心房纤颤]"),
        ("dx", "胃 食管反流", "胃-食管反流"),
        ("px", "阑尾切除", "阑尾切除术"),
        ("px", "腹腔镜阑尾切除术", "腹腔镜下阑尾切除术"),
        ("px", "胃镜", "胃镜检查"),
        ("px", "冠状动脉造影", "其他和未特指的冠状动脉造影术"),
    ],
)
def test_wordings_of_one_concept_share_a_key(kind, typed, official) -> None:
    assert concept_keys(typed, kind)[2] == concept_keys(official, kind)[2]


@pytest.mark.parametrize(
    ("kind", "one", "other"),
    [
        ("dx", "高血压", "高血压脑病"),
        ("dx", "2型糖尿病", "1型糖尿病"),
        ("dx", "性病", "病"),  # a leading 性 is a word, not an attribute
        ("px", "阑尾切除术", "阑尾切开术"),
    ],
)
def test_different_concepts_keep_different_keys(kind, one, other) -> None:
    assert concept_keys(one, kind)[2] != concept_keys(other, kind)[2]


@pytest.mark.parametrize(
    ("query", "name", "expected"),
    [
        ("高血压", "原发性高血压", "narrower"),  # same head, a modifier before it
        ("高血压", "高血压3级", "narrower"),  # a grade after it
        ("高血压", "高血压急症", "narrower"),
        ("胆囊结石", "胆囊结石伴慢性胆囊炎", "narrower"),  # a comorbidity
        ("慢性阻塞性肺", "慢性阻塞性肺病急性加重", "narrower"),  # head, then a phase
        ("高血压", "高血压脑病", "prefix"),  # another head: a different disease
        ("肺炎", "肺炎性假瘤", "prefix"),
        ("阑尾切除", "其他阑尾切除术", "sibling"),
        ("冠心病", "可疑冠心病观察", "contains"),
    ],
)
def test_relation_tells_a_narrower_concept_from_another_disease(query, name, expected) -> None:
    kind = "px" if "切除" in query else "dx"
    assert relation(concept_keys(query, kind)[2], concept_keys(name, kind)[2]) == expected


def test_aliases_are_read_from_brackets() -> None:
    assert aliases("心房颤动[心房纤颤]") == ["心房纤颤"]
    assert aliases("经皮冠状动脉腔内血管成形术[PTCA]") == ["PTCA"]
    assert aliases("经尿道前列腺切除术（TURP）") == ["TURP"]
    assert aliases("高血压心脏病伴有（充血性）心力衰竭") == []


def test_a_trailing_disease_word_does_not_let_a_longer_name_win() -> None:
    """On the built-in sample: 高血压病 is 高血压 (then its narrower forms), and an acronym written in
    a name's brackets finds it."""
    term = load_terminology(None)
    hits = [h for _k, h in term.search("高血压病", kind="dx", limit=5)]
    assert (hits[0].display, hits[0].match) == ("高血压", "name-variant")
    assert all(h.match == "name-narrower" for h in hits[1:])
    ercp = [h for _k, h in term.search("ercp", kind="px", limit=3)]
    assert (ercp[0].display, ercp[0].match) == ("内镜逆行胰胆管造影[ERCP]", "name-variant")
