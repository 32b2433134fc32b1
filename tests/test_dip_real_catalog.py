"""The engine against the real 平顶山 2025 catalog, imported once per session into a tmp data home."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from dip_helpers import OPTYPES, PDS_DIR, PDS_XLSX, case, need_real_data
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dip_engine import load_catalogs, load_optype_table
from dip_engine.engine import Engine
from dip_engine.importer import import_catalog, import_optypes, terminology_checker
from dip_engine.store import save_catalog, save_optypes
from grouper import GroupType

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def pds(tmp_path_factory):
    """(home, import report) with the published workbook and the reference procedure-type table imported."""
    need_real_data()
    home = tmp_path_factory.mktemp("dip-home")
    catalog, report = import_catalog(PDS_XLSX, "410400", "平顶山", 2025)
    save_catalog(home, catalog, report.as_dict())
    entries, _ = import_optypes(OPTYPES)
    save_optypes(home, entries, OPTYPES.name)
    return home, report


@pytest.fixture(scope="session")
def engine(pds):
    return Engine.from_home(pds[0], "410400")


def test_the_published_workbook_imports_cleanly_with_a_validation_report(pds):
    _, report = pds
    assert report.rows_read == 4444 and not report.rejected and not report.duplicates
    assert report.accepted[GroupType.CORE] == 3877
    assert report.accepted[GroupType.COMPREHENSIVE] == 567 + 3  # + U07:* only in 中间结果
    assert report.accepted[GroupType.CHAPTER] == 88
    assert report.score_check["checked"] == 4444 and report.score_check["mismatches"] == 0
    assert report.score_check["formula_mismatches"] == 0
    assert report.region_avg_cost == "5718.153489"
    assert any(w["code"] == "KBBZ" for w in report.warnings)


def test_csv_with_a_separate_statistics_file_gives_the_same_catalog(pds):
    xlsx = load_catalogs(pds[0]).get("410400")
    csv_catalog, report = import_catalog(
        PDS_DIR / "目录.csv", "410400", "平顶山", 2025, stats_path=PDS_DIR / "中间结果.csv"
    )
    assert not report.rejected
    assert {g.code: (g.score, g.slots, g.avg_cost) for g in csv_catalog.groups} == {
        g.code: (g.score, g.slots, g.avg_cost) for g in xlsx.groups
    }


def test_catalog_loads_from_the_store_within_a_second(pds):
    start = time.perf_counter()
    catalogs = load_catalogs(pds[0])
    elapsed = time.perf_counter() - start
    catalog = catalogs.get()
    assert catalog.label == "DIP 平顶山2025" and not catalog.is_sample
    assert len(catalog.groups) == 4536
    assert elapsed < 1.5, f"catalog load took {elapsed:.2f}s"


def test_every_core_group_is_reached_by_its_defining_case(engine):
    failures = []
    for g in engine.catalog.groups:
        if g.type != GroupType.CORE:
            continue
        procs = [alts[0] for alts in g.procedures]
        r = engine.group(case(g.dx_key, *procs))
        if r.dip_code != g.code:
            failures.append((g.code, r.dip_code, r.reason))
    assert not failures, failures[:10]


def _unused_procedure_of_type(engine, optype: str) -> str:
    named = {c for g in engine.catalog.groups for s in g.slots for c in s}
    for code, entry in engine.optypes.entries.items():
        t = "SS" if entry.type_code == "JR" else entry.type_code
        if t == optype and entry.entry_option == "必选" and code not in named:
            return entry.code
    raise AssertionError(optype)


def test_every_comprehensive_group_is_reached_by_its_leimu_and_procedure_type(engine):
    proc = {t: _unused_procedure_of_type(engine, t) for t in ("SS", "ZLXCZ", "ZDXCZ")}
    failures = []
    for g in engine.catalog.groups:
        if g.type != GroupType.COMPREHENSIVE:
            continue
        procs = () if g.op_type == "BSZL" else (proc[g.op_type],)
        r = engine.group(case(g.dx_key, *procs))  # a 类目-level code: no 亚目, so no core group
        if r.dip_code != g.code:
            failures.append((g.code, r.dip_code, r.reason))
    assert not failures, failures[:10]


def test_every_chapter_group_is_reached_by_a_diagnosis_without_a_leimu_group(engine):
    from terminology.structure import icd10_chapters

    proc = {t: _unused_procedure_of_type(engine, t) for t in ("SS", "ZLXCZ", "ZDXCZ")}
    comp = {(g.dx_key.upper(), g.op_type) for g in engine.catalog.groups if g.type == GroupType.COMPREHENSIVE}
    reached = set()
    chapter_groups = [g for g in engine.catalog.groups if g.type == GroupType.CHAPTER]
    for g in chapter_groups:
        number = int(g.dx_key[2:])
        ch = next(c for c in icd10_chapters() if int(c.number) == number)
        leimu = next(
            f"{letter}{n:02d}"
            for letter in sorted({ch.first[0], ch.last[0]})
            for n in range(100)
            if ch.first <= f"{letter}{n:02d}" <= ch.last and (f"{letter}{n:02d}", g.op_type) not in comp
        )
        procs = () if g.op_type == "BSZL" else (proc[g.op_type],)
        r = engine.group(case(leimu, *procs))
        if number == 20:  # external causes (V01–Y98) may never be principal: their CP20 groups stay unused
            assert r.group_type == GroupType.UNGROUPED and r.trace.rule == "ungrouped.dx.never_principal"
            continue
        assert r.group_type == GroupType.CHAPTER, (g.code, leimu, r.reason)
        reached.add(r.dip_code)
    assert reached == {g.code for g in chapter_groups if g.dx_key != "CP20"} and len(reached) == 84


def test_worked_examples_from_the_rule_book(engine):
    r = engine.group(case("C34.100x001", "32.4100", "33.3903", "40.5914"))
    assert r.dip_code == "C34.1:32.4100_33.3903+40.5914" and r.score == Decimal("8439.055697")
    assert engine.group(case("C34.100x001", "32.4100")).dip_code == "C34.1:32.4100"
    r = engine.group(case("K35.300x001", "47.0100", "89.5200"))
    assert r.dip_code == "K35.3:47.0100"
    assert engine.group(case("K35.300x001")).dip_code == "K35.3"
    # messy spellings of the same codes group the same way, and say so
    r = engine.group(case("k35.300X001", "47.0100"))
    assert r.dip_code == "K35.3:47.0100" and "code_normalised" in r.flags


def test_payment_standard_equals_the_catalogs_average_cost_with_the_estimated_point_value(engine):
    bad = []
    for g in engine.catalog.groups:
        if g.avg_cost is None or g.type not in (GroupType.CORE, GroupType.COMPREHENSIVE):
            continue
        r = engine.group(case(g.dx_key, *[a[0] for a in g.procedures]))
        if r.dip_code != g.code:
            continue
        p = engine.price(case(g.dx_key), r)
        if abs(p.payment_standard - g.avg_cost) > Decimal("0.01"):
            bad.append((g.code, p.payment_standard, g.avg_cost))
    assert not bad, bad[:5]
    r = engine.group(case("K35.300x001", "47.0100"))
    p = engine.price(case("K35.300x001"), r)
    assert p.payment_standard == Decimal("8490.51") and p.point_value_estimated
    assert p.point_value == Decimal("5.718153489") and "REGION_AVE_VAL" in p.point_value_source


def test_without_a_procedure_type_table_results_are_flagged_as_default_typed(pds):
    catalog = load_catalogs(pds[0]).get()
    bare = Engine(catalog, optypes=load_optype_table(None))
    r = bare.group(case("E11.900", "99.6000"))
    assert r.group_type in (GroupType.COMPREHENSIVE, GroupType.CHAPTER) and "optype_default" in r.flags
    typed = Engine.from_home(pds[0])
    assert "optype_default" not in typed.group(case("E11.900", "99.6000")).flags


TERMINOLOGY_FILES = (
    "icd10-yb2.0.tsv",
    "icd9cm3-yb2.0.tsv",
    "icd10-gl2.0-to-yb2.0.csv",
    "icd9cm3-gl3.0-to-yb2.0.csv",
)


@pytest.fixture(scope="session")
def pds_with_terminology(tmp_path_factory):
    """A data home with the full 医保版 terminology and maps, then the catalog imported against it."""
    need_real_data()
    from terminology import import_files, load_terminology

    home = tmp_path_factory.mktemp("dip-home-term")
    files = [OPTYPES.parent / name for name in TERMINOLOGY_FILES]
    if not all(f.is_file() for f in files):
        pytest.skip("terminology files absent")
    import_files(home, files)
    term = load_terminology(home)
    catalog, report = import_catalog(PDS_XLSX, "410400", "平顶山", 2025, known_code=terminology_checker(term))
    save_catalog(home, catalog, report.as_dict())
    entries, _ = import_optypes(OPTYPES)
    save_optypes(home, entries, OPTYPES.name)
    return home, term, report


def test_import_reports_catalog_codes_missing_from_the_terminology(pds_with_terminology, tmp_path):
    _, term, report = pds_with_terminology
    assert report.unknown_codes == []  # 平顶山 2025 is built on the same 医保版 2.0 code lists
    f = tmp_path / "cat.csv"
    f.write_text("病种编码,病种分值\nK35.3:47.0100,1484.8\nK35.3:47.0199,1500\nK39.9,300\n", encoding="utf-8")
    _, small = import_catalog(f, "000003", "小", 2025, known_code=terminology_checker(term))
    assert [(u["line"], u["code"]) for u in small.unknown_codes] == [(3, "47.0199"), (4, "K39.9")]


def test_clinical_version_codes_are_mapped_before_grouping(pds_with_terminology):
    home, term, _ = pds_with_terminology
    engine = Engine.from_home(home, "410400", terminology=term)
    gl_dx, yb_dx = next(
        (code, m.target_code)
        for code in term.dx_map.entries
        if (m := term.translate("dx", code)).target_code.startswith("K35.3") and term.dx.get(code) is None
    )
    r = engine.group(case(gl_dx, "47.0100"))
    assert r.dip_code == "K35.3:47.0100" and "mapped_from_gl" in r.flags and r.trace.diagnosis == yb_dx


@pytest.fixture(scope="session")
def core_groups(engine):
    return [g for g in engine.catalog.groups if g.type == GroupType.CORE and len(g.slots) > 1]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_real_catalog_result_is_independent_of_non_principal_order(engine, core_groups, data):
    g = data.draw(st.sampled_from(core_groups))
    procs = [a[0] for a in g.procedures] + data.draw(
        st.lists(st.sampled_from(["89.5200", "47.0100", "88.3800", "99.2500"]), max_size=3)
    )
    policy = engine.policy
    countable = [
        p for p in procs if p.upper() not in policy.ignored_procedures | policy.simple_operations.keys()
    ]
    principal = data.draw(st.sampled_from(countable))  # the first procedure that counts for grouping
    rest = [p for p in procs if p != principal]
    shuffled = data.draw(st.permutations(rest))
    a = engine.group(case(g.dx_key, principal, *rest))
    b = engine.group(case(g.dx_key, principal, *shuffled))
    assert (a.dip_code, a.trace.rule) == (b.dip_code, b.trace.rule)


# =============================================================================== DIP-RULES §2 as now written
# With the full 医保版 terminology: codes are read strictly, exclusions and the quality gate apply.


@pytest.fixture(scope="session")
def strict(pds_with_terminology):
    home, term, _ = pds_with_terminology
    return Engine.from_home(home, "410400", terminology=term)


def test_the_principal_procedure_decides_before_the_most_related_procedures(strict):
    """DIP-RULES §2: the PCI listed first is the 主要操作; the ventilation pair matches more related
    procedures but its 主操作 is not the case's principal procedure."""
    r = strict.group(case("I21.900", "36.0700", "96.0400", "96.7101"))
    assert (r.dip_code, r.score) == ("I21.9:36.0700", Decimal("3646.535448"))
    assert r.trace.principal_procedure == "36.0700" and "I21.9:96.0400_96.7101" in r.trace.later_main
    listed_first = strict.group(case("I21.900", "96.0400", "96.7101", "36.0700"))  # never re-ordered
    assert listed_first.dip_code == "I21.9:96.0400_96.7101"


def test_the_full_match_of_the_principal_procedure_wins(strict):
    r = strict.group(case("C34.100x004", "32.4100", "33.3903", "40.5914"))
    assert (r.dip_code, r.score) == ("C34.1:32.4100_33.3903+40.5914", Decimal("8439.055697"))
    assert r.trace.rule == "core.full_match" and r.trace.candidates[-1] == "C34.1:32.4100"
    assert strict.group(case("C34.100x004", "32.4100")).dip_code == "C34.1:32.4100"
    # an unrelated extra procedure: no full match, the most related procedures decide
    r = strict.group(case("C34.100x004", "32.4100", "33.3903", "40.5914", "45.2302"))
    assert r.dip_code == "C34.1:32.4100_33.3903+40.5914" and r.trace.rule == "core.most_related"


def test_a_principal_procedure_without_a_core_group_goes_to_the_comprehensive_group_of_its_type(strict):
    r = strict.group(case("I21.900", "37.2200", "36.0700"))  # left heart catheterisation listed first
    assert r.dip_code == "I21:ZDXCZ" and r.group_type == GroupType.COMPREHENSIVE
    assert "I21.9:36.0700" in r.trace.later_main  # what the coder card points at


@pytest.mark.parametrize(
    ("dx", "rule"),
    [
        ("W01.x00", "dx.never_principal"),  # external cause (V01–Y98)
        ("Y90.000", "dx.never_principal"),
        ("K35.399", "dx.not_in_table"),  # no such 医保版 code: never completed to K35.3
        ("K35.3", "dx.not_in_table"),  # a 亚目 is not a code either
        ("J17.0*", "dx.asterisk"),
        ("not a code", "dx.invalid"),
        ("", "dx.missing"),
    ],
)
def test_never_principal_diagnoses_are_ungrouped_with_the_rule_and_the_code(strict, dx, rule):
    r = strict.group(case(dx, "47.0100"))
    assert r.group_type == GroupType.UNGROUPED and r.dip_code is None and r.rejected
    assert r.qc[0].rule == rule and r.trace.rule == f"ungrouped.{rule}"
    assert rule in r.reason and (r.qc[0].code in r.reason)
    p = strict.price(case(dx, "47.0100", total_cost=Decimal("3000")), r)
    assert p.payment_standard is None and p.case_payment == Decimal("0.00") and p.payment_basis == "不予支付"


def test_invalid_procedure_codes_are_ignored_and_flagged(strict):
    r = strict.group(case("K35.300", "zz.9", "47.01", "47.0100"))
    assert r.dip_code == "K35.3:47.0100" and r.trace.principal_procedure == "47.0100"
    assert [f.key for f in r.qc] == ["px.invalid:zz.9", "px.not_in_table:47.01"]
    assert all(f.severity == "warning" for f in r.qc)


@pytest.mark.parametrize("simple", ["57.9400", "38.9301", "93.9601", "89.5400"])
def test_a_simple_operation_on_a_stroke_stay_does_not_change_the_group(strict, simple):
    assert strict.group(case("I63.900", simple)).dip_code == "I63.9"
    r = strict.group(case("I63.900", simple, "99.1005"))  # the thrombolysis becomes the principal one
    assert r.dip_code == "I63.9:99.1005" and r.trace.ignored_procedures == (simple,)


def test_every_default_simple_operation_is_a_real_procedure_code(pds_with_terminology):
    _, term, _ = pds_with_terminology
    from dip_engine.rules import load_rules

    simple = load_rules("410400").grouping["simple_operations"]
    assert len(simple) >= 40 and all(why for why in simple.values())
    assert [code for code in simple if term.px.get(code) is None] == []


def test_gl_yb_collisions_are_computed_from_the_tables_and_flagged_only_without_a_system(strict):
    collisions = strict._collisions["dx"]
    assert len(collisions) == 245  # codes in both tables whose 国临版 meaning maps elsewhere
    code, entry = "A19.000x001", collisions["A19.000x001"]
    as_typed = strict.group(case(code))
    (finding,) = [f for f in as_typed.qc if f.rule == "code.collision"]
    assert finding.code == code and entry.target_code in finding.message and as_typed.trace.diagnosis == code
    assert not strict.group(case(code, code_system="yb")).qc
    as_gl = strict.group(case(code, code_system="gl"))
    assert as_gl.trace.diagnosis == entry.target_code and "mapped_from_gl" in as_gl.flags


def test_the_engine_from_a_data_home_checks_codes_against_its_imported_terminology(pds_with_terminology):
    home, _, _ = pds_with_terminology
    engine = Engine.from_home(home, "410400")
    assert engine.terminology is not None and not engine.terminology.is_sample
    assert engine.group(case("K35.399", "47.0100")).group_type == GroupType.UNGROUPED


def test_region_rules_add_exclusions_and_replace_the_simple_operations(pds_with_terminology, tmp_path):
    home, term, _ = pds_with_terminology
    rules = tmp_path / "410400.toml"
    rules.write_text(
        '[grouping]\nexcluded_principal = ["Z51.8"]\nreplace_simple_operations = true\n'
        '[grouping.simple_operations]\n"99.1005" = "本地区视为简单操作"\n',
        encoding="utf-8",
    )
    engine = Engine.from_home(home, "410400", terminology=term, rules_path=rules)
    r = engine.group(case("Z51.800", "47.0100"))
    assert r.rejected and r.qc[0].rule == "dx.region_excluded" and "Z51.8" in r.reason
    assert engine.group(case("I63.900", "57.9400")).dip_code == "I63:ZLXCZ"  # no longer simple here
    assert engine.group(case("I63.900", "99.1005")).dip_code == "I63.9:99.1005"  # named by the catalog
