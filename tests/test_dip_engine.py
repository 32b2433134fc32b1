"""Engine, pricing, rules, importer and CLI on the built-in sample catalog and hand-made files."""

from __future__ import annotations

import csv
import json
import pickle
from decimal import Decimal

import pytest
from click.testing import CliRunner
from dip_helpers import case
from hypothesis import given, settings
from hypothesis import strategies as st

from dip_engine import load_catalogs, sample_catalog
from dip_engine.engine import Engine
from dip_engine.importer import import_catalog
from dip_engine.pricing import Band
from dip_engine.rules import RulesError, load_rules, parse_rules
from grouper import GroupType


@pytest.fixture(scope="module")
def engine():
    return Engine.from_home(None)


def test_sample_catalog_is_clearly_labelled_and_complete():
    catalogs = load_catalogs(None)
    c = catalogs.get()
    assert c.is_sample and c.region == "999999" and "样例" in c.label
    counts = c.counts()
    assert (
        60 <= counts[GroupType.CORE] + counts[GroupType.COMPREHENSIVE] <= 120
        and counts[GroupType.CHAPTER] >= 4
    )
    yamu = c.groups_for_yamu("K35.3")
    assert yamu[0].code == "K35.3" and {g.code for g in yamu} >= {"K35.3:47.0100"}
    assert {g.code for g in c.groups_for_leimu("K35")} >= {"K35.3", "K35:SS", "K35:BSZL"}


def test_point_value_hospital_and_aux_coefficients_from_the_region_rules(engine):
    c = case("K35.300", "47.0100", insurance_type="职工", hospital_level="3", age=40)
    r, p = engine.evaluate(c)
    assert r.dip_code == "K35.3:47.0100"
    assert p.point_value == Decimal("5.80") and p.point_value_kind == "budget"
    assert p.hospital_coefficient == Decimal("1.05")
    assert p.case_score == Decimal("1522.5000") and p.payment_standard == Decimal("8830.50")
    old = engine.price(case("K35.300", "47.0100", insurance_type="居民", age=70, icu_days=9), r)
    assert old.aux_coefficient == Decimal("1.2") and old.point_value == Decimal("5.40")


def test_primary_care_groups_get_no_hospital_coefficient(engine):
    r, p = engine.evaluate(case("J18.900", hospital_level="3", insurance_type="职工"))
    assert r.group_type == GroupType.PRIMARY and p.hospital_coefficient == 1


def _priced(engine, cost: str):
    c = case("K35.300", "47.0100", total_cost=Decimal(cost), insurance_type="职工")
    r = engine.group(c)
    return engine.price(c, r)


@pytest.mark.parametrize(
    ("ratio", "band"),
    [
        ("0.4999", Band.LOW),
        ("0.5", Band.NORMAL),
        ("2", Band.NORMAL),
        ("2.0001", Band.HIGH),
        ("5", Band.HIGH),
        ("5.0001", Band.SPECIAL),
    ],
)
def test_deviation_bands_at_the_50_200_and_500_percent_edges(engine, ratio, band):
    reference = engine.catalog.group("K35.3:47.0100").avg_cost  # 1450 × 6000/1000 = 8700.00
    assert reference == Decimal("8700.00")
    p = _priced(engine, str(reference * Decimal(ratio)))
    assert p.deviation_band == band
    score = Decimal("1450")
    expected = {Band.LOW: score * Decimal(ratio), Band.NORMAL: score}.get(band, score * (Decimal(ratio) - 1))
    assert p.adjusted_case_score == expected.quantize(Decimal("0.0001"))
    assert p.special_review == (band == Band.SPECIAL)


def test_deviation_rule_3_0_keeps_the_score_for_high_cases():
    rules = parse_rules("x", {"deviation": {"rule": "3.0"}})
    e = Engine(sample_catalog(), rules=rules)
    c = case("K35.300", "47.0100", total_cost=Decimal("30000"))
    p = e.price(c, e.group(c))
    assert (
        p.deviation_band == Band.SPECIAL
        and p.adjusted_case_score == Decimal("1450.0000")
        and p.special_review
    )


def test_remaining_budget_and_projected_position(engine):
    c = case("K35.300", "47.0100", insurance_type="职工")
    r = engine.group(c)
    p = engine.price(c, r, cost_so_far=Decimal("5000"), additional_cost=Decimal("2500"))
    assert p.payment_standard == Decimal("8410.00")
    assert p.remaining_budget == Decimal("3410.00") and p.projected_cost == Decimal("7500.00")
    assert "接近" in p.projected_position
    p = engine.price(c, r, cost_so_far=Decimal("8000"), additional_cost=Decimal("1000"))
    assert "亏损" in p.projected_position


def test_gl_codes_are_mapped_through_the_terminology_and_flagged():
    from terminology import load_terminology

    e = Engine(sample_catalog(), terminology=load_terminology(None))
    r = e.group(case("K35.000x004", "47.0100"))
    assert "mapped_from_gl" in r.flags and r.trace.diagnosis == "K35.201"
    assert r.dip_code == "K35:SS"
    unknown = e.group(case("K35.399x999", "47.0100"))  # well-formed but in no code list: never guessed
    assert unknown.dip_code is None and unknown.trace.rule == "ungrouped.dx.not_in_table"
    assert [f.key for f in unknown.qc] == ["dx.not_in_table:K35.399x999"] and "K35.300" in unknown.reason


def test_bad_codes_give_a_clear_ungrouped_result_not_an_error(engine):
    r = engine.group(case("not a code", "47.0100"))
    assert r.group_type == GroupType.UNGROUPED and "无效" in r.reason
    r = engine.group(case("J17.0*"))
    assert r.group_type == GroupType.UNGROUPED and "星号" in r.reason
    r = engine.group(case("K35.300", "zz", "47.0100"))
    assert r.dip_code == "K35.3:47.0100" and "invalid_procedure_dropped" in r.flags


def test_excluded_principal_from_the_sample_rules(engine):
    assert engine.group(case("Z51.800")).group_type == GroupType.UNGROUPED


def test_engine_pickles_for_worker_processes(engine):
    clone = pickle.loads(pickle.dumps(engine))
    c = case("C34.100x004", "32.4100", "33.3903", "40.5914")
    assert clone.group(c).dip_code == engine.group(c).dip_code == "C34.1:32.4100_33.3903+40.5914"


def test_alternative_principal_diagnoses_are_grouped_side_by_side(engine):
    alts = engine.group_alternatives(
        case("R10.400", "47.0100", other_diagnoses=("K35.300",)), ["R10.400", "K35.300"]
    )
    assert [r.dip_code for _, r in alts] == ["CP18:SS", "K35.3:47.0100"]


def test_rules_files_with_bad_values_are_rejected_with_the_key(tmp_path):
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "123456.toml").write_text('[deviation]\nrule = "4.0"\n', encoding="utf-8")
    with pytest.raises(RulesError, match="deviation"):
        load_rules("123456", tmp_path)
    with pytest.raises(RulesError, match="tie"):
        parse_rules("x", {"grouping": {"tie_break": ["coin_flip"]}})


def test_messy_catalog_with_header_variants_is_imported_with_a_report(tmp_path):
    f = tmp_path / "cat.csv"
    rows = [
        ["DIP编码", "病种类别", "主要诊断编码", "主要诊断名称", "分值", "次均费用"],
        ["A09.9:44.1300X001_45.2302", "核心病种", "A09.9", "胃肠炎\n和结肠炎", "676.62", "3869.0"],
        ["C56.X", "1", "C56.X", "卵巢恶性肿瘤", "1500", ""],
        ["C56.X", "1", "C56.X", "卵巢恶性肿瘤", "1500", ""],
        ["K35.3:zz.99", "1", "K35.3", "坏的操作", "100", ""],
        ["K35.3", "1", "K35.3", "没有分值", "abc", ""],
        ["Q9", "1", "Q9", "坏的诊断", "100", ""],
        ["K35:SS", "0", "K35", "阑尾炎", "1400", ""],
    ]
    with f.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(rows)
    catalog, report = import_catalog(f, "000001", "测试", 2025)
    assert {g.code for g in catalog.groups} == {"A09.9:44.1300X001_45.2302", "C56.X", "K35:SS"}
    g = catalog.group("a09.9:44.1300x001_45.2302")
    assert g.procedures == (("44.1300x001",), ("45.2302",)) and g.name == "胃肠炎和结肠炎"
    assert catalog.group("C56.X").dx_key == "C56.x"
    assert [d["line"] for d in report.duplicates] == [5]
    assert sorted(r["line"] for r in report.rejected) == [6, 7, 8]


def test_xlsx_formula_scores_without_cached_values_come_from_the_statistics_sheet(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "目录"
    ws.append(["序号", "病种编码", "病种类型", "主诊断代码", "主诊断名称", "病种分值"])
    ws.append([1, "K35.3", 1, "K35.3", "阑尾炎", "=VLOOKUP(B:B,中间结果!A:B,2,FALSE)"])
    st = wb.create_sheet("中间结果")
    st.append(["DIP_CODE", "WEIGHT_SCORE", "DIP_AVG_FEE", "REGION_AVE_VAL"])
    st.append(["K35.3", 551.485545, 3153.48, 5718.153489])
    st.append(["CP11:BSZL", 1000, 5718.153489, 5718.153489])
    path = tmp_path / "cat.xlsx"
    wb.save(path)
    catalog, report = import_catalog(path, "000002", "公式", 2025)
    assert catalog.group("K35.3").score == Decimal("551.485545")
    assert report.score_check["from_stats"] == 1
    assert catalog.group("CP11:BSZL").type == GroupType.CHAPTER


def _run(args, home):
    from cds_service.cli import main

    return CliRunner().invoke(main, ["--home", str(home), *args], catch_exceptions=False)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_group_command_processes_good_rows_and_reports_bad_ones(tmp_path, workers):
    src = tmp_path / "cases.csv"
    with src.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "case_id",
                "main_diagnosis",
                "other_diagnoses",
                "procedures",
                "total_cost",
                "insurance_type",
                "age",
            ]
        )
        w.writerow(["1", "C34.100x004", "", "32.4100|33.3903|40.5914", "50000", "职工", "60"])
        w.writerow(["2", "", "", "47.0100", "1", "", ""])
        w.writerow(["3", "K35.300", "R10.400", "47.0100", "abc", "", ""])
        w.writerow(["4", "K35.300", "", "47.0100", "8000", "居民", "-3"])
        w.writerow(["5", "K35.300", "", "", "3000", "居民", "30"])
    out = tmp_path / "out.jsonl"
    res = _run(
        ["group", "--input", str(src), "--output", str(out), "--workers", workers, "--no-terminology"],
        tmp_path / "home",
    )
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["case_id"] for r in rows] == ["1", "5"]
    assert (
        rows[0]["dip_code"] == "C34.1:32.4100_33.3903+40.5914" and rows[0]["payment_standard"] == "49068.00"
    )
    assert rows[1]["dip_code"] == "K35.3" and rows[1]["deviation_band"] == Band.NORMAL
    for line in ("第 3 行", "第 4 行", "第 5 行"):
        assert line in res.output


def test_group_output_has_the_deviation_corrected_score_the_case_payment_and_the_quality_findings(tmp_path):
    src = tmp_path / "cases.csv"
    src.write_text(
        "case_id,main_diagnosis,procedures,total_cost,insurance_type,hospital_level\n"
        "low,K35.300,47.0100,2610.00,职工,1\n"  # 30 % of the reference cost: 费用超低
        "high,K35.300,47.0100,20880.00,职工,1\n"  # 300 %: 费用超高
        "nocost,K35.300,47.0100,,职工,1\n"
        "fall,W19.x00,,3000.00,职工,1\n",
        encoding="utf-8",
    )
    out = tmp_path / "out.csv"
    assert _run(["group", "--input", str(src), "--output", str(out)], tmp_path / "home").exit_code == 0
    rows = {r["case_id"]: r for r in csv.DictReader(out.open(encoding="utf-8"))}
    # sample catalog and rules: K35.3:47.0100 score 1450, average cost 8700; 一级 coefficient 0.8,
    # 职工 budget point value 5.80 (dip_engine/config/rules/999999.toml)
    case_score = Decimal("1450") * Decimal("0.8")
    reference = Decimal("8700") * Decimal("0.8")
    low_ratio = Decimal("2610.00") / reference
    low = (case_score * low_ratio).quantize(Decimal("0.0001"))
    assert rows["low"]["case_score"] == "1160.0000" and rows["low"]["deviation_band"] == Band.LOW
    assert rows["low"]["adjusted_case_score"] == str(low)
    assert rows["low"]["case_payment"] == str((low * Decimal("5.80")).quantize(Decimal("0.01")))
    high = (case_score * (Decimal("20880.00") / reference - 1)).quantize(Decimal("0.0001"))  # 2.0 rule
    assert rows["high"]["adjusted_case_score"] == str(high) and rows["high"]["deviation_band"] == Band.HIGH
    assert rows["nocost"]["adjusted_case_score"] == rows["nocost"]["case_payment"] == ""
    assert rows["nocost"]["payment_standard"] == str((case_score * Decimal("5.80")).quantize(Decimal("0.01")))
    assert {r["payment_basis"] for k, r in rows.items() if k != "fall"} == {"DIP"}
    assert rows["fall"]["qc_flags"] == "dx.never_principal:W19.x00" and rows["fall"]["group_type"] == "未入组"
    assert rows["fall"]["case_payment"] == "0.00" and rows["fall"]["payment_basis"] == "不予支付"


def test_pricing_says_whether_the_hospital_coefficient_was_configured_and_which_deviation_rule_applies():
    catalog = sample_catalog()
    plain = Engine(catalog, rules=parse_rules("000005", {}))
    r, p = plain.evaluate(case("K35.300", "47.0100"))
    assert p.hospital_coefficient == 1 and not p.hospital_coefficient_configured
    assert "未配置医院系数" in p.hospital_coefficient_source
    assert (p.deviation_rule, p.deviation_low, p.deviation_high) == ("2.0", Decimal("0.5"), Decimal("2.0"))
    draft = Engine(catalog, rules=parse_rules("000006", {"deviation": {"rule": "3.0", "high": "3.0"}}))
    p = draft.evaluate(case("K35.300", "47.0100", hospital_level="3"))[1]
    assert (p.deviation_rule, p.deviation_high, p.deviation_special) == (
        "3.0",
        Decimal("3.0"),
        Decimal("3.0"),
    )
    configured = Engine(catalog, rules=parse_rules("000007", {"hospital_coefficient": {"default": "1.0"}}))
    assert configured.evaluate(case("K35.300", "47.0100"))[1].hospital_coefficient_configured
    assert Engine.from_home(None).evaluate(case("J18.900"))[1].hospital_coefficient_basis == "not_applicable"


def test_import_commands_store_catalog_and_optypes(tmp_path):
    from dip_engine import SAMPLE_DIR

    home = tmp_path / "home"
    res = _run(["data", "import-catalog", str(SAMPLE_DIR / "sample-catalog.csv"), "--region", "888888", "--name", "测试市", "--year", "2024",
                "--stats", str(SAMPLE_DIR / "sample-stats.csv")], home)  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "接受" in res.output
    res = _run(["data", "import-optypes", str(SAMPLE_DIR / "optypes.csv")], home)
    assert res.exit_code == 0, res.output
    catalogs = load_catalogs(home)
    assert catalogs.regions() == ["888888"] and catalogs.get().label == "DIP 测试市2024"
    res = _run(
        ["data", "import-catalog", str(tmp_path / "missing.csv"), "--region", "1", "--name", "x"], home
    )
    assert res.exit_code != 0


@pytest.fixture(scope="module")
def engine_with_terminology():
    from terminology import load_terminology

    return Engine(sample_catalog(), terminology=load_terminology(None))


_raw_codes = st.one_of(
    st.sampled_from(
        [
            "K35.300",
            "k35.3",
            "47.0100",
            "47.0100X",
            "C34.100x004",
            "32.4100",
            "J17.0*",
            "A01.000x005+J17.0*",
            "ｋ３５．３",
        ]
    ),
    st.text(max_size=20),
)


@settings(max_examples=200, deadline=None)
@given(dx=_raw_codes, procs=st.lists(_raw_codes, max_size=6), others=st.lists(_raw_codes, max_size=3),
       cost=st.one_of(st.none(), st.decimals(min_value=0, max_value=10**7, places=2)))  # fmt: skip
def test_engine_never_raises_on_arbitrary_raw_codes(engine_with_terminology, dx, procs, others, cost):
    c = case(dx, *procs, other_diagnoses=tuple(others), total_cost=cost)
    r, p = engine_with_terminology.evaluate(c, cost_so_far=cost, additional_cost=Decimal("10"))
    assert r.group_type in set(vars(GroupType).values())
    assert (p.payment_standard is None) == (r.score is None)


def test_jsonl_input_and_csv_output_neutralise_bad_lines_and_formulas(tmp_path):
    src = tmp_path / "cases.jsonl"
    src.write_text(
        "\n".join(
            [
                json.dumps(
                    {
                        "case_id": '=HYPERLINK("http://x")',
                        "main_diagnosis": "K35.300",
                        "procedures": ["47.0100"],
                    }
                ),
                "{not json",
                json.dumps(["a", "list"]),
                json.dumps(
                    {"case_id": "2", "main_diagnosis": "I21.000", "procedures": "00.6600|36.0700|88.5500"}
                ),
            ]
        ),
        encoding="utf-8",
    )
    out = tmp_path / "out.csv"
    errors = tmp_path / "errors.csv"
    res = _run(
        ["group", "--input", str(src), "--output", str(out), "--workers", "1", "--errors", str(errors)],
        tmp_path / "h",
    )
    assert res.exit_code == 0, res.output
    with out.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["case_id"].startswith("'=") and rows[0]["dip_code"] == "K35.3:47.0100"
    assert rows[1]["dip_code"] == "I21.0:00.6600_36.0700+88.5500"
    with errors.open(encoding="utf-8") as fh:
        assert [r["line"] for r in csv.DictReader(fh)] == ["2", "3"]


def test_unknown_region_is_a_clear_cli_error(tmp_path):
    src = tmp_path / "c.csv"
    src.write_text("case_id,main_diagnosis\n1,K35.300\n", encoding="utf-8")
    res = _run(
        ["group", "--region", "123456", "--input", str(src), "--output", str(tmp_path / "o.csv")],
        tmp_path / "h",
    )
    assert res.exit_code != 0 and "123456" in res.output and "999999" in res.output


def test_reimport_replaces_a_region_year_and_catalogs_know_their_home(tmp_path):
    from dip_engine import SAMPLE_DIR
    from dip_engine.store import save_catalog

    home = tmp_path / "home"
    home.mkdir()
    for _ in range(2):
        catalog, report = import_catalog(
            SAMPLE_DIR / "sample-catalog.csv",
            "999999",
            "示例",
            2024,
            stats_path=SAMPLE_DIR / "sample-stats.csv",
        )
        save_catalog(home, catalog, report.as_dict())
    (home / "rules").mkdir()
    (home / "rules" / "999999.toml").write_text('[point_value."职工"]\nbudget = "7.00"\n', encoding="utf-8")
    catalogs = load_catalogs(home)
    stored = catalogs.get("999999")
    assert len(stored.groups) == len(sample_catalog().groups) and stored.home == home
    e = catalogs.engine("999999")
    assert e is catalogs.engine("999999")
    _, p = e.evaluate(case("K35.300", "47.0100", insurance_type="职工"))
    assert p.point_value == Decimal("7.00")


def test_catalog_in_force_on_a_date_is_chosen_over_the_newest():
    from datetime import date

    from dip_engine import CatalogSet
    from dip_engine.catalog import Catalog

    groups = sample_catalog().groups
    old = Catalog(
        "1", "甲", groups, year=2024, effective_from=date(2024, 1, 1), effective_to=date(2024, 12, 31)
    )
    new = Catalog("1", "甲", groups, year=2025, effective_from=date(2025, 1, 1))
    cs = CatalogSet([old, new])
    assert cs.get("1") is new and cs.get("1", on=date(2024, 6, 1)) is old and cs.get("1", year=2024) is old
    with pytest.raises(KeyError):
        cs.get("1", year=2023)


def test_auxiliary_coefficients_take_the_highest_applicable():
    rules = parse_rules(
        "x",
        {
            "aux": {
                "age": [{"min_years": 65, "coefficient": "1.05"}],
                "severity": [{"codes": ["J96.0"], "coefficient": "1.2", "label": "呼吸衰竭"}],
                "cci": {
                    "weights": {"I50": 2, "N18.5": 3},
                    "bands": [{"min": 4, "coefficient": "1.3", "label": "CCI≥4"}],
                },
            }
        },
    )
    e = Engine(sample_catalog(), rules=rules)
    c = case("J18.900", age=80, other_diagnoses=("J96.000",))
    assert e.price(c, e.group(c)).aux_coefficient == Decimal("1.2")
    c = case("J18.900", age=80, other_diagnoses=("I50.900", "N18.500", "J96.000"))
    p = e.price(c, e.group(c))
    assert (p.aux_coefficient, p.aux_reason) == (Decimal("1.3"), "CCI≥4")
    c = case("J18.900", age=30)
    assert e.price(c, e.group(c)).aux_coefficient == 1


def test_region_header_aliases_extend_the_packaged_table(tmp_path):
    f = tmp_path / "cat.csv"
    f.write_text("组合编码,组合分值,基层标志\nK35.3,600,1\nK35.3:47.0100,1500,0\n", encoding="utf-8")
    from dip_engine.importer import CatalogImportError

    with pytest.raises(CatalogImportError):
        import_catalog(f, "000004", "别名", 2025, home=tmp_path)
    (tmp_path / "headers.toml").write_text(
        '[catalog]\ncode = ["组合编码"]\nscore = ["组合分值"]\nprimary_care = ["基层标志"]\n',
        encoding="utf-8",
    )
    catalog, _ = import_catalog(f, "000004", "别名", 2025, home=tmp_path)
    assert catalog.group("K35.3").type == GroupType.PRIMARY
    e = Engine(catalog, rules=parse_rules("000004", {"hospital_coefficient": {"default": "1.2"}}))
    r, p = e.evaluate(case("K35.300"))
    assert r.group_type == GroupType.PRIMARY and p.hospital_coefficient == 1
    assert e.evaluate(case("K35.300", "47.0100"))[1].hospital_coefficient == Decimal("1.2")


@pytest.mark.parametrize("workers", [1, 2])
def test_blocks_never_split_a_quoted_multiline_field_and_lines_stay_exact(tmp_path, engine, workers):
    from dip_engine.batch import group_file

    src = tmp_path / "cases.csv"
    with src.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["case_id", "main_diagnosis", "procedures", "note"])
        w.writerow(["1", "K35.300", "47.0100", "ok"])
        w.writerow(["2", "K35.300", "", "第一行\n第二行\n第三行"])  # file lines 3–5
        w.writerow(["3", "K35.300", "47.0100", '引号 "x" 与\n换行'])  # lines 6–7
        w.writerow(["4", "", "47.0100", "bad"])  # line 8
        for i in range(5, 12):
            w.writerow([str(i), "C34.100x004", "32.4100", ""])
    out = tmp_path / "out.csv"
    summary = group_file(engine, src, out, workers=workers, chunk_size=2)
    with out.open(encoding="utf-8") as fh:
        ids = [r["case_id"] for r in csv.DictReader(fh)]
    assert ids == ["1", "2", "3"] + [str(i) for i in range(5, 12)]
    assert summary.errors == [(8, "缺少 main_diagnosis")] and summary.rows == 11


def test_a_corrupt_catalog_store_gives_a_clear_error(tmp_path):
    from dip_engine.store import StoreError

    (tmp_path / "catalogs.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="catalogs.sqlite"):
        load_catalogs(tmp_path)
    src = tmp_path / "c.csv"
    src.write_text("case_id,main_diagnosis\n1,K35.300\n", encoding="utf-8")
    res = _run(["group", "--input", str(src), "--output", str(tmp_path / "o.csv")], tmp_path)
    assert res.exit_code != 0 and "catalogs.sqlite" in res.output


def test_region_codes_cannot_escape_the_rules_directory(tmp_path):
    with pytest.raises(RulesError, match="region"):
        load_rules("../../etc/passwd", tmp_path)
    from dip_engine import SAMPLE_DIR

    res = _run(
        ["data", "import-catalog", str(SAMPLE_DIR / "sample-catalog.csv"), "--region", "../x", "--name", "x"],
        tmp_path,
    )
    assert res.exit_code != 0 and "region" in res.output


def test_range_and_any_of_codes_parse_from_a_catalog(tmp_path):
    f = tmp_path / "cat.csv"
    f.write_text(
        "病种编码,病种分值\nC00-C14:SS,3000\nC14-C00:SS,1\nI25.1:36.0700|36.0600_37.2200,4300\n",
        encoding="utf-8",
    )
    catalog, report = import_catalog(f, "000005", "范围", 2025)
    assert catalog.group("C00-C14:SS").dx_key == "C00-C14"
    assert catalog.group("I25.1:36.0700|36.0600_37.2200").slots[0] == frozenset({"36.0700", "36.0600"})
    assert [r["line"] for r in report.rejected] == [3]
    e = Engine(catalog, rules=parse_rules("000005", {}))
    assert e.group(case("C02.900", "30.0900")).dip_code == "C00-C14:SS"
    assert [g.code for g in catalog.groups_for_leimu("C02")] == ["C00-C14:SS"]
