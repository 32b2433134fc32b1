"""Search: code prefix, Chinese names (substring, fuzzy) and pinyin initials, ranked, both systems."""

from __future__ import annotations

import random

import pytest
from pypinyin import Style, lazy_pinyin

from terminology.loader import load_terminology
from tests.terminology_helpers import real_terminology


def typed_initials(name: str) -> str:
    """What a coder types for a name: the first pinyin letter of every Chinese character."""
    letters = "".join(lazy_pinyin(name, style=Style.FIRST_LETTER))
    return "".join(c for c in letters.upper() if c.isascii() and c.isalnum())


@pytest.fixture(scope="module")
def sample_term():
    return load_terminology(None)


def codes(hits) -> list[str]:
    return [h.code for _kind, h in hits]


def test_pinyin_initials_find_the_disease(sample_term) -> None:
    hits = sample_term.search("JXLWY", kind="dx", limit=5)
    assert hits[0][1].display == "急性阑尾炎"
    assert all("急性阑尾炎" in h.display for _k, h in hits)
    assert sample_term.search("jxlwy", kind="dx", limit=1)[0][1].code == "K35.800x001"


def test_code_prefix_lists_codes_under_it_in_order(sample_term) -> None:
    hits = sample_term.search("K35.3", kind="dx", limit=10)
    assert codes(hits) == ["K35.300", "K35.301"]
    assert sample_term.search("k353", kind="dx")[0][1].code.startswith("K35.3")
    assert sample_term.search("47.01", kind="px", limit=1)[0][1].code == "47.0100"


def test_name_substring_ranks_exact_then_shorter_names_first(sample_term) -> None:
    hits = sample_term.search("急性阑尾炎", kind="dx", limit=5)
    assert hits[0][1].display == "急性阑尾炎" and hits[0][1].match == "name"
    scores = [h.score for _k, h in hits]
    assert scores == sorted(scores, reverse=True)


def test_a_typo_still_finds_the_disease_by_fuzzy_match(sample_term) -> None:
    hits = sample_term.search("慢性阻赛性肺病", kind="dx", limit=3)
    assert hits and hits[0][1].code.startswith("J44")
    assert hits[0][1].match == "fuzzy"


def test_both_systems_are_searched_when_no_kind_is_given(sample_term) -> None:
    kinds = {k for k, _h in sample_term.search("阑尾", limit=50)}
    assert kinds == {"dx", "px"}


@pytest.mark.parametrize(
    "query", ["", "   ", "!!!", "😀", "x" * 10_000, "阑" * 10_000, "K35' OR 1=1 --", "\x00"]
)
def test_hostile_or_empty_queries_return_a_list_never_raise(sample_term, query) -> None:
    hits = sample_term.search(query, limit=5)
    assert isinstance(hits, list) and len(hits) <= 5


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["dx", "px"])
def test_1000_official_names_are_found_at_rank_1_and_by_initials_in_the_top_10(kind) -> None:
    term = real_terminology()
    table = term.table(kind)
    rng = random.Random(20_240_601)
    picked = rng.sample(range(len(table)), 1000)
    misses_name, misses_initials = [], []
    for i in picked:
        name = table.names[i]
        top = term.search(name, kind=kind, limit=1)
        if not top or top[0][1].display != name:
            misses_name.append(name)
        top10 = [h.display for _k, h in term.search(typed_initials(name), kind=kind, limit=10)]
        if name not in top10:
            misses_initials.append(name)
    assert misses_name == []
    assert misses_initials == []


def test_clinical_shorthand_is_searched_in_its_official_wording(sample_term) -> None:
    hits = sample_term.search("急性心梗", kind="dx", limit=3)
    assert hits[0][1].display == "急性心肌梗死"
    assert hits[0][1].match == "name+synonym"
    assert sample_term.search("慢阻肺", kind="dx", limit=1)[0][1].code.startswith("J44")


def test_words_separated_by_spaces_must_all_appear_in_any_order(sample_term) -> None:
    spaced = [(h.code, h.match) for _k, h in sample_term.search("阑尾 切除", kind="px", limit=10)]
    assert spaced == [(h.code, h.match) for _k, h in sample_term.search("阑尾切除", kind="px", limit=10)]
    hits = [h for _k, h in sample_term.search("切除 阑尾", kind="px", limit=10)]
    assert (hits[0].display, hits[0].match) == ("阑尾切除术", "name-reordered")
    assert len(hits) >= 2 and all("阑尾" in h.display and "切除" in h.display for h in hits)


def test_search_postings_packed_at_import_equal_freshly_built_ones(sample_term) -> None:
    from terminology.search import char_postings, pack_postings, unpack_postings

    names = sample_term.dx.names
    assert unpack_postings(pack_postings(names)) == char_postings(names)
    assert sample_term.dx.search_index._char_index == char_postings(names)  # the loaded ones


def test_several_shorthands_in_one_phrase_are_expanded_together() -> None:
    from terminology.model import expand_synonyms

    assert expand_synonyms("冠脉支架植入") == ["冠状动脉支架置入", "冠状动脉支架植入", "冠脉支架置入"]
    assert expand_synonyms("急性心梗") == ["急性心肌梗死"]  # the longer shorthand wins, once
    assert expand_synonyms("心肌梗死") == []
