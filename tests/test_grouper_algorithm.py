"""The pure grouping algorithm (DIP-RULES §2) on small hand-built catalogs."""

from __future__ import annotations

import pytest
from dip_helpers import comprehensive, core
from hypothesis import given, settings
from hypothesis import strategies as st

from grouper import GroupIndex, GroupingPolicy, GroupType, group_case

TYPES = {
    "32.4100": "SS",
    "33.3903": "SS",
    "40.5914": "SS",
    "99.2500": "ZLXCZ",
    "88.3800": "ZDXCZ",
    "47.0100": "SS",
    "36.0700": "SS",
    "96.0400": "ZLXCZ",
    "96.7101": "ZLXCZ",
}


def classify(code: str):
    t = TYPES.get(code.upper())
    return (t, False) if t else ("SS", True)


LUNG = GroupIndex(
    [
        core("C34.1", "1100"),
        core("C34.1:32.4100", "8662.10"),
        core("C34.1:32.4100_33.3903", "8500"),
        core("C34.1:32.4100_33.3903+40.5914", "8439.06"),
        core("C34.1:99.2500", "1200"),
        core("C34.1:88.3800", "900"),
        comprehensive("C34:SS", "7000"),
        comprehensive("C34:ZLXCZ", "1600"),
        comprehensive("C34:BSZL", "1000"),
        comprehensive("CP02:ZDXCZ", "1000"),
        comprehensive("CP02:SS", "1000"),
    ]
)


def run(index, dx, *procs, policy=None, chapter=2):
    yamu = dx[:5] if len(dx) >= 5 else None
    return group_case(index, policy or GroupingPolicy(), classify, dx, yamu, dx[:3], chapter, procs)


def test_worked_example_the_full_match_of_the_principal_procedure_wins():
    r = run(LUNG, "C34.100x001", "32.4100", "33.3903", "40.5914")
    assert r.dip_code == "C34.1:32.4100_33.3903+40.5914"
    assert r.group_type == GroupType.CORE
    assert r.trace.rule == "core.full_match" and r.trace.principal_procedure == "32.4100"
    assert r.trace.candidates == (  # best first
        "C34.1:32.4100_33.3903+40.5914",
        "C34.1:32.4100_33.3903",
        "C34.1:32.4100",
    )


HEART = GroupIndex(
    [
        core("I21.9", "987.14"),
        core("I21.9:36.0700", "3646.54"),
        core("I21.9:36.0700_00.6600x004", "4427.52"),
        core("I21.9:96.0400_96.7101", "1168.02"),
        core("I21.9:96.7101", "1811.51"),
        comprehensive("I21:SS", "3000"),
        comprehensive("I21:ZLXCZ", "1500"),
    ]
)


def test_principal_procedure_comes_before_the_most_related_procedures():
    """DIP-RULES §2 example: the PCI listed first is the principal procedure; the ventilation pair
    matches more related procedures but its 主操作 is not the case's principal one."""
    r = run(HEART, "I21.900", "36.0700", "96.0400", "96.7101")
    assert r.dip_code == "I21.9:36.0700" and r.trace.rule == "core.single_match"
    assert r.trace.later_main == ("I21.9:96.0400_96.7101", "I21.9:96.7101")
    assert "I21.9:36.0700_00.6600x004" in r.trace.partial


def test_a_principal_procedure_that_is_no_candidates_main_procedure_goes_to_the_comprehensive_group():
    r = run(HEART, "I21.900", "99.2500", "36.0700")  # a 治疗性操作 listed first: never re-ordered
    assert (r.dip_code, r.trace.rule) == ("I21:ZLXCZ", "comprehensive")
    assert r.trace.principal_procedure == "99.2500"
    assert r.trace.later_main == ("I21.9:36.0700",)


def test_a_principal_procedure_whose_groups_lack_their_related_procedures_is_no_core_case():
    r = run(HEART, "I21.900", "96.0400")
    assert r.dip_code == "I21:ZLXCZ" and r.trace.partial == ("I21.9:96.0400_96.7101",)
    assert "缺少相关操作" in r.reason


def test_extra_unrelated_procedures_do_not_prevent_a_match():
    r = run(LUNG, "C34.100x001", "32.4100", "33.3903", "40.5914", "45.2302", "89.5200")
    assert r.dip_code == "C34.1:32.4100_33.3903+40.5914"


def test_partial_related_match_falls_back_to_the_best_complete_pattern():
    r = run(LUNG, "C34.100x001", "32.4100", "40.5914")
    assert r.dip_code == "C34.1:32.4100"
    assert "C34.1:32.4100_33.3903+40.5914" in r.trace.partial


def test_no_procedure_goes_to_the_conservative_core_group_else_bszl():
    assert run(LUNG, "C34.100x001").dip_code == "C34.1"
    r = run(LUNG, "C34.900")
    assert (r.dip_code, r.group_type) == ("C34:BSZL", GroupType.COMPREHENSIVE)


def test_unmatched_procedure_goes_to_the_comprehensive_group_of_its_type():
    r = run(LUNG, "C34.100x001", "32.2000")
    assert r.dip_code == "C34:SS"
    assert "optype_default" in r.flags  # 32.2000 is not in the type table


def test_chapter_fallback_when_the_leimu_has_no_group_of_that_type():
    r = run(LUNG, "C34.900", "88.3800", chapter=2)
    assert r.dip_code == "CP02:ZDXCZ" and r.group_type == GroupType.CHAPTER


def test_ungrouped_with_reason_when_nothing_matches():
    r = run(LUNG, "D12.000", "88.3800", chapter=3)
    assert r.dip_code is None and r.group_type == GroupType.UNGROUPED
    assert "未入组" in r.reason and r.trace.rule == "ungrouped.no_group"


def test_the_first_listed_procedure_decides_between_core_groups_of_different_main_procedures():
    r = run(LUNG, "C34.100x001", "99.2500", "88.3800")
    assert r.dip_code == "C34.1:99.2500" and r.trace.later_main == ("C34.1:88.3800",)
    r = run(LUNG, "C34.100x001", "88.3800", "99.2500")
    assert r.dip_code == "C34.1:88.3800" and r.trace.later_main == ("C34.1:99.2500",)


ALTERNATIVES = GroupIndex(
    [
        core("I25.1:36.0700", "3000", avg_cost=None),
        core("I25.1:36.0700|36.0600", "3500"),
        core("I25.1:36.0700_37.2200", "4000"),
        core("I25.1:36.0700|36.0600_37.2200", "3900"),
    ]
)


def test_remaining_ties_are_local_higher_score_then_code_by_default_and_recorded():
    r = run(ALTERNATIVES, "I25.103", "36.0700")
    assert r.dip_code == "I25.1:36.0700|36.0600" and r.trace.rule == "core.higher_score"
    assert "分值较高" in r.reason
    r = run(ALTERNATIVES, "I25.103", "36.0700", "37.2200")
    assert r.dip_code == "I25.1:36.0700_37.2200" and r.trace.rule == "core.higher_score"
    by_lower = GroupingPolicy(tie_break=("lower_score", "code"))
    r = run(ALTERNATIVES, "I25.103", "36.0700", policy=by_lower)
    assert r.dip_code == "I25.1:36.0700" and r.trace.rule == "core.lower_score"
    by_code = GroupingPolicy(tie_break=("code",))
    r = run(ALTERNATIVES, "I25.103", "36.0700", policy=by_code)
    assert r.dip_code == "I25.1:36.0700" and r.trace.rule == "core.code"


def test_the_national_order_is_not_a_local_tie_break():
    with pytest.raises(ValueError, match="principal_procedure"):
        GroupingPolicy(tie_break=("principal_procedure", "code"))


def test_ignored_procedures_group_as_conservative():
    policy = GroupingPolicy(ignored_procedures=frozenset({"88.3800"}))
    r = run(LUNG, "C34.100x001", "88.3800", policy=policy)
    assert r.dip_code == "C34.1" and r.trace.ignored_procedures == ("88.3800",)
    r = run(LUNG, "C34.100x001", "88.3800", "99.2500", policy=policy)
    assert r.dip_code == "C34.1:99.2500" and r.trace.principal_procedure == "99.2500"
    assert any("88.3800" in n for n in r.trace.notes)


def test_excluded_principal_diagnosis_is_not_grouped():
    policy = GroupingPolicy(excluded_principal=frozenset({"C34.1"}))
    r = run(LUNG, "C34.100x001", "32.4100", policy=policy)
    assert r.group_type == GroupType.UNGROUPED and r.trace.rule == "ungrouped.excluded_principal"


def test_exclusions_may_be_leimu_ranges_and_name_their_rule():
    policy = GroupingPolicy(excluded_principal={"V01-Y98": "损伤中毒的外部原因"})
    r = run(LUNG, "W01.x00", policy=policy, chapter=20)
    assert r.group_type == GroupType.UNGROUPED and "损伤中毒的外部原因 V01-Y98" in r.reason
    assert run(LUNG, "C34.100x001", policy=policy).dip_code == "C34.1"


def test_simple_operations_do_not_count_and_the_next_procedure_is_principal():
    policy = GroupingPolicy(simple_operations={"57.9400": "留置导尿"})
    r = run(LUNG, "C34.100x001", "57.9400", policy=policy)
    assert r.dip_code == "C34.1" and r.trace.ignored_procedures == ("57.9400",)
    r = run(LUNG, "C34.100x001", "57.9400", "32.4100", policy=policy)
    assert r.dip_code == "C34.1:32.4100" and r.trace.principal_procedure == "32.4100"
    assert any("57.9400" in n and "简单操作" in n for n in r.trace.notes)


def test_a_simple_operation_counts_where_the_catalog_names_it_for_the_diagnosis():
    index = GroupIndex([core("N18.5"), core("N18.5:38.9501"), core("C34.1"), comprehensive("C34:ZLXCZ")])
    policy = GroupingPolicy(simple_operations={"38.9501": "静脉置管"})
    assert run(index, "N18.500", "38.9501", policy=policy).dip_code == "N18.5:38.9501"
    assert run(index, "C34.100x001", "38.9501", policy=policy).dip_code == "C34.1"


def test_any_of_slots_express_dip3_alternatives():
    index = GroupIndex([core("I25.1:36.0700|36.0600_37.2200"), core("I25.1")])
    assert run(index, "I25.103", "36.0600", "37.2200").dip_code == "I25.1:36.0700|36.0600_37.2200"
    assert run(index, "I25.103", "36.0700", "37.2200").dip_code == "I25.1:36.0700|36.0600_37.2200"
    listed_second = run(index, "I25.103", "37.2200", "36.0700")  # the 主操作 is not listed first
    assert listed_second.dip_code is None and listed_second.trace.later_main == (
        "I25.1:36.0700|36.0600_37.2200",
    )


def test_type_selection_highest_uses_the_best_ranked_procedure_type():
    policy = GroupingPolicy(type_selection="highest")
    assert run(LUNG, "C34.900", "99.2500", "32.2000", policy=policy).dip_code == "C34:SS"
    assert run(LUNG, "C34.900", "99.2500", "32.2000").dip_code == "C34:ZLXCZ"


def test_primary_care_groups_are_typed_as_such():
    policy = GroupingPolicy(primary_care=frozenset({"C34.1"}))
    assert run(LUNG, "C34.100x001", policy=policy).group_type == GroupType.PRIMARY


codes = st.one_of(
    st.sampled_from(["32.4100", "33.3903", "40.5914", "99.2500", "88.3800", "47.0100", "32.4100".lower()]),
    st.text(max_size=12),
)


@settings(max_examples=300, deadline=None)
@given(
    dx=st.one_of(st.sampled_from(["C34.100x001", "C34.900", "K35.300"]), st.text(max_size=10)),
    procs=st.lists(codes, max_size=8),
)
def test_grouping_never_raises_on_arbitrary_code_lists(dx, procs):
    r = group_case(LUNG, GroupingPolicy(), classify, dx or None, dx[:5] or None, dx[:3] or None, None, procs)
    assert r.group_type in {GroupType.CORE, GroupType.COMPREHENSIVE, GroupType.CHAPTER, GroupType.UNGROUPED}


@settings(max_examples=300, deadline=None)
@given(
    procs=st.lists(st.sampled_from(list(TYPES) + ["45.2302", "89.5200"]), min_size=1, max_size=7),
    data=st.data(),
)
def test_result_is_independent_of_the_order_of_non_principal_procedures(procs, data):
    rest = data.draw(st.permutations(procs[1:]))
    a = run(LUNG, "C34.100x001", *procs)
    b = run(LUNG, "C34.100x001", procs[0], *rest)
    assert (a.dip_code, a.trace.rule, a.trace.candidates, a.trace.partial, a.trace.later_main) == (
        b.dip_code,
        b.trace.rule,
        b.trace.candidates,
        b.trace.partial,
        b.trace.later_main,
    )


def test_comprehensive_groups_may_be_keyed_by_a_leimu_range():
    index = GroupIndex(
        [comprehensive("C00-C14:SS", "3000"), comprehensive("C10-C11:SS", "3500"), comprehensive("C10:BSZL")]
    )
    assert run(index, "C10.000", "32.4100").dip_code == "C10-C11:SS"  # the narrower range wins
    assert run(index, "C03.900", "32.4100").dip_code == "C00-C14:SS"
    assert run(index, "C10.000").dip_code == "C10:BSZL"
    assert run(index, "C15.900", "32.4100").group_type == GroupType.UNGROUPED
