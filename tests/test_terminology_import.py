"""Importing published terminology tables: recognised headers, per-row rejects, versions, sample."""

from __future__ import annotations

import openpyxl
import pytest

from terminology.importer import TableFormatError, read_table
from terminology.loader import SAMPLE_DIR, import_files, load_terminology
from terminology.store import TerminologyStore
from tests.terminology_helpers import (
    DX_LIST,
    DX_MAP,
    DX_MAP_XLSX,
    PX_LIST,
    PX_MAP,
    PX_MAP_XLSX,
    read_map_rows,
    read_tsv_codes,
    real_home,
    real_terminology,
    require_real_data,
    write,
)

# --- the real national tables ------------------------------------------------------------------


@pytest.mark.slow
def test_the_four_real_tables_import_without_loss() -> None:
    term = real_terminology()
    assert not term.is_sample
    assert len(term.dx) == len(read_tsv_codes(DX_LIST)) == 33_304
    assert len(term.px) == len(read_tsv_codes(PX_LIST)) == 13_686
    assert len(term.dx_map) == len(read_map_rows(DX_MAP)) == 35_587
    assert len(term.px_map) == len(read_map_rows(PX_MAP)) == 13_653
    versions = {(v.kind, v.version): v for v in TerminologyStore.in_home(real_home()).versions()}
    assert all(v.reject_count == 0 and v.active for v in versions.values())


@pytest.mark.slow
def test_every_published_code_and_name_is_stored_verbatim() -> None:
    term = real_terminology()
    for code, name in read_tsv_codes(DX_LIST):
        assert term.display("dx", code) == name
    for code, name in read_tsv_codes(PX_LIST):
        assert term.display("px", code) == name


@pytest.mark.slow
@pytest.mark.parametrize(("xlsx", "csv_file"), [(DX_MAP_XLSX, DX_MAP), (PX_MAP_XLSX, PX_MAP)])
def test_xlsx_import_equals_csv_import(xlsx, csv_file) -> None:
    require_real_data()
    if not xlsx.exists():
        pytest.skip("published Excel file absent")
    from_xlsx, from_csv = read_table(xlsx), read_table(csv_file)
    assert from_xlsx.kind == from_csv.kind
    assert from_xlsx.rows == from_csv.rows
    assert from_xlsx.rejects == from_csv.rejects == []
    assert from_xlsx.sheet is not None


def test_the_procedure_type_table_is_refused_with_a_clear_reason() -> None:
    optypes = DX_LIST.parent / "icd9cm3-yb2.0-optypes.csv"
    if not optypes.exists():
        pytest.skip("real reference data absent")
    with pytest.raises(TableFormatError, match="手术操作类型表"):
        read_table(optypes)


# --- headers, encodings, bad rows ---------------------------------------------------------------


def test_bad_rows_are_rejected_with_line_numbers_and_the_rest_imported(tmp_path) -> None:
    path = write(
        tmp_path / "dx.csv",
        "疾病编码,疾病名称\n"
        "K35.300,急性阑尾炎伴局限性腹膜炎\n"  # line 2 ok
        "not-a-code,坏行\n"  # line 3
        "K35.301,\n"  # line 4 empty name
        "K35.300,重复的一行\n"  # line 5 duplicate
        "\n"  # line 6 blank
        "k35800X001,急性阑尾炎\n"  # line 7 ok after normalisation
        "K35.2\n"  # line 8 too few columns
        f"K35.201,{'长' * 400}\n",  # line 9 name too long
    )
    table = read_table(path)
    assert table.kind == "dx"
    assert [r[0] for r in table.rows] == ["K35.300", "K35.800x001"]
    assert table.normalised == 1
    assert [(r.line, r.reason.split("：")[0].split("（")[0]) for r in table.rejects] == [
        (3, "编码格式错误"),
        (4, "缺少“名称”"),
        (5, "重复编码 K35.300"),
        (8, "缺少“名称”"),  # a row too short is missing the same value
        (9, "名称过长"),
    ]


def test_map_rows_with_conflicting_or_missing_targets_are_rejected(tmp_path) -> None:
    path = write(
        tmp_path / "map.csv",
        "国临版编码,国临版名称,医保版2.0编码,医保版2.0名称\n"
        "A19.000x001,急性粟粒性肺结核,A19.001,急性血行播散型肺结核\n"
        "A19.000X001,同一编码另一种写法,A19.002,冲突\n"
        "B99.x00,无目标,,\n"
        "garbage,坏,A00.000,霍乱\n",
    )
    table = read_table(path)
    assert table.kind == "dx-map"
    assert [r[0] for r in table.rows] == ["A19.000x001"]
    assert [r.line for r in table.rejects] == [3, 4, 5]
    assert "冲突" in table.rejects[0].reason and "第 2 行" in table.rejects[0].reason
    assert table.rejects[1].reason == "缺少“医保版编码”"


def test_common_header_variants_gbk_encoding_and_title_rows_are_recognised(tmp_path) -> None:
    gbk = write(
        tmp_path / "手术.csv", "手术操作编码,手术操作名称\n47.0100,腹腔镜下阑尾切除术\n", encoding="gb18030"
    )
    assert read_table(gbk).kind == "px"
    tsv = write(tmp_path / "list.tsv", "code\tname\n47.0100\t腹腔镜下阑尾切除术\n")
    assert read_table(tsv).kind == "px"  # decided by the codes themselves
    headerless = write(
        tmp_path / "bare.tsv", "K35.300\t急性阑尾炎伴局限性腹膜炎\nK35.301\t急性阑尾炎伴腹膜脓肿\n"
    )
    bare = read_table(headerless)
    assert (bare.kind, len(bare.rows)) == ("dx", 2)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["ICD-9-CM-3 国临版3.0 对照 医保版2.0（2022年发布）"])  # a title row above the header
    ws.append(["国临3.0手术代码", "国临3.0手术名称", "医保2.0手术代码", "医保2.0手术名称"])
    ws.append(["47.0100", "腹腔镜下阑尾切除术", "47.0100", "腹腔镜下阑尾切除术"])
    ws.append([None, None, None, None])
    ws.append(["47.0900X001", "内镜下经盲肠阑尾切除术", "47.0900x001", "内镜下经盲肠阑尾切除术"])
    wb.save(tmp_path / "map.xlsx")
    table = read_table(tmp_path / "map.xlsx")
    assert table.kind == "px-map"
    assert [r[0] for r in table.rows] == ["47.0100", "47.0900x001"]
    assert table.blank_lines == 1


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("x.json", "{}", "不支持的文件类型"),
        ("x.xls", "", "xls"),
        ("x.csv", "foo,bar\n1,2\n", "无法识别表头"),
        ("x.xlsx", "not a zip", "无法打开 Excel"),
    ],
)
def test_unusable_files_fail_alone_with_a_reason(tmp_path, name, content, message) -> None:
    bad = write(tmp_path / name, content)
    good = write(tmp_path / "ok.tsv", "code\tname\nK35.300\t急性阑尾炎伴局限性腹膜炎\n")
    reports = import_files(tmp_path / "home", [bad, good])
    assert message in reports[0].error
    assert reports[1].error is None and reports[1].accepted == 1


# --- versions -----------------------------------------------------------------------------------


def test_versions_coexist_one_is_active_and_older_codes_are_reported_retired(tmp_path) -> None:
    home = tmp_path / "home"
    v1 = write(
        tmp_path / "v1.tsv", "code\tname\nK35.900\t急性阑尾炎（1.0 版）\nK35.300\t急性阑尾炎伴局限性腹膜炎\n"
    )
    v2 = write(
        tmp_path / "v2.tsv", "code\tname\nK35.300\t急性阑尾炎伴局限性腹膜炎\nK35.800x001\t急性阑尾炎\n"
    )
    import_files(home, [v1], version="1.0")
    import_files(home, [v2], version="2.0")
    term = load_terminology(home)
    assert term.dx.version == "2.0"
    assert term.is_sample  # procedures and maps still come from the sample, and it says so
    assert "未导入" in term.label
    retired = term.validate("dx", "K35.900")
    assert retired.status == "retired"
    assert retired.display == "急性阑尾炎（1.0 版）"
    assert any("已停用" in r for r in retired.reasons)
    assert "K35.300" in [s.code for s in retired.suggestions]
    assert term.validate("dx", "k35.300").status == "exists"
    assert term.validate("dx", "Z99.999").status == "unknown"

    store = TerminologyStore.in_home(home)
    store.activate("dx", "1.0")
    store.close()
    assert load_terminology(home).lookup("dx", "K35.900").display == "急性阑尾炎（1.0 版）"


def test_looking_for_an_unknown_code_in_other_versions_uses_an_index(tmp_path) -> None:
    # validate() asks this for every unknown code; without the index it scans the whole kind (ms/code)
    query = "EXPLAIN QUERY PLAN SELECT version, name FROM codes WHERE kind=? AND code=? AND version IS NOT ?"
    home = tmp_path / "home"
    import_files(home, [write(tmp_path / "v1.tsv", "code\tname\nK35.900\t急性阑尾炎\n")], version="1.0")
    store = TerminologyStore.in_home(home)
    plan = " ".join(str(row) for row in store._conn.execute(query, ("dx", "K35.900", "2.0")))
    assert "codes_by_code" in plan, plan
    assert store.find_in_other_versions("dx", "K35.900", "2.0") == [("1.0", "急性阑尾炎")]
    # a store written before the index existed gets it when it is next opened
    store._conn.execute("DROP INDEX codes_by_code")
    store.close()
    store = TerminologyStore.in_home(home)
    assert store._conn.execute("SELECT 1 FROM sqlite_master WHERE name='codes_by_code'").fetchone()
    store.close()


def test_import_without_activation_keeps_the_active_version(tmp_path) -> None:
    home = tmp_path / "home"
    first = write(tmp_path / "a.tsv", "code\tname\nK35.300\t甲\n")
    second = write(tmp_path / "b.tsv", "code\tname\nK35.300\t乙\n")
    import_files(home, [first], version="2.0")
    import_files(home, [second], version="3.0", activate=False)
    assert load_terminology(home).display("dx", "K35.300") == "甲"


# --- the built-in sample ------------------------------------------------------------------------


def test_without_an_import_the_labelled_sample_is_loaded(tmp_path) -> None:
    term = load_terminology(tmp_path)
    assert term.is_sample and "SAMPLE" in term.label
    assert term.lookup("dx", "K35.800x001").display == "急性阑尾炎"
    assert term.lookup("px", "47.0100").display == "腹腔镜下阑尾切除术"
    assert term.translate("dx", "I21.100x002").target_code == "I21.103"


def test_the_sample_covers_the_demo_categories_and_is_small() -> None:
    required = (
        "K35 K80 K81 J18 J44 C34 I63 I21 I25 I10 E11 S72 M16 O80 O82 P07 R10 R50 A01 X59 W19 Z51 N18".split()
    )
    term = load_terminology(None)
    present = {c[:3] for c in term.dx.codes}
    assert set(required) <= present
    assert len(term.dx) < 1000 and len(term.px) < 500
    assert {p.name for p in SAMPLE_DIR.iterdir()} >= {
        "icd10-yb2.0-sample.tsv",
        "icd9cm3-yb2.0-sample.tsv",
        "icd10-gl2.0-to-yb2.0-sample.csv",
        "icd9cm3-gl3.0-to-yb2.0-sample.csv",
        "build_sample.py",
    }


@pytest.mark.slow
def test_the_sample_is_exactly_what_build_sample_picks_from_the_real_data(tmp_path) -> None:
    require_real_data()
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_sample", SAMPLE_DIR / "build_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    counts = module.build(DX_LIST.parents[1], tmp_path)
    assert counts["px-missing"] == 0
    for name in (
        "icd10-yb2.0-sample.tsv",
        "icd9cm3-yb2.0-sample.tsv",
        "icd10-gl2.0-to-yb2.0-sample.csv",
        "icd9cm3-gl3.0-to-yb2.0-sample.csv",
    ):
        assert (tmp_path / name).read_bytes() == (SAMPLE_DIR / name).read_bytes(), name


def test_a_damaged_store_falls_back_to_the_sample_and_says_why(tmp_path) -> None:
    (tmp_path / "terminology.sqlite").write_bytes(b"this is not a database" * 100)
    term = load_terminology(tmp_path)
    assert term.is_sample
    assert "无法读取" in term.label and "SAMPLE" in term.label


def test_codes_excel_stored_as_numbers_are_rejected_not_silently_truncated(tmp_path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["手术操作编码", "手术操作名称"])
    ws.append(["47.0100", "腹腔镜下阑尾切除术"])
    ws.append([47.09, "其他阑尾切除术"])  # was 47.0900 before Excel made it a number
    wb.save(tmp_path / "px.xlsx")
    table = read_table(tmp_path / "px.xlsx")
    assert [r[0] for r in table.rows] == ["47.0100"]
    assert table.rejects[0].line == 3 and "存成了数字" in table.rejects[0].reason
