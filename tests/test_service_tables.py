"""The one table reader every importer uses (``cds_service.tables``): files, sheets, headers, rows."""

from __future__ import annotations

import re
from pathlib import Path

import openpyxl
import pytest

from cds_service.tables import (
    HeaderNotFound,
    TableError,
    TableSpec,
    header_key,
    open_table,
    read_sheets,
)
from tests.terminology_helpers import SHARED_DATA

# what a 智能审核 rule importer asks of an NHSA workbook: the code under any of its four spellings
RULE_SPEC = TableSpec.from_mapping(
    {
        "code": ["国标代码", "药品代码", "项目编码", "项目代码"],
        "name": ["药品通用名", "项目名称", "*名称"],
        "limit_type": ["限定类型"],
    },
    required=["code"],
)


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def workbook(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for title, rows in sheets.items():
        ws = wb.create_sheet(title)
        for row in rows:
            ws.append(row)
    wb.save(path)
    return path


# ---------------------------------------------------------------------------------- text files


@pytest.mark.parametrize(
    ("encoding", "text"),
    [
        ("utf-8-sig", "项目编码,项目名称\n001,甲\n"),
        ("gb18030", "项目编码,项目名称\n001,甲\n"),
        ("utf-8", "项目编码\t项目名称\n001\t甲\n"),  # tab separated, even as .csv
        ("utf-8", "项目编码;项目名称\n001;甲\n"),
    ],
)
def test_csv_in_either_encoding_and_any_common_delimiter(tmp_path, encoding, text) -> None:
    with open_table(write(tmp_path / "t.csv", text, encoding), RULE_SPEC) as table:
        rows = list(table)
    assert [(r.line, r.text("code"), r.text("name")) for r in rows] == [(2, "001", "甲")]
    assert table.columns == {"code": 0, "name": 1}


def test_title_rows_above_the_header_are_skipped_and_lines_stay_physical(tmp_path) -> None:
    text = '国家医保局 智能审核知识库\n\n项目代码,项目名称,备注\n001,"甲\n（两行）",x\n\n002,乙,y\n'
    with open_table(write(tmp_path / "t.csv", text), RULE_SPEC) as table:
        rows = list(table)
    assert table.header_line == 3 and table.header == ("项目代码", "项目名称", "备注")
    assert [(r.line, r.text("code")) for r in rows] == [(4, "001"), (7, "002")]  # 001 spans lines 4–5
    assert table.blank_lines == 1 and table.absent == ["limit_type"]


def test_rows_without_a_required_value_and_the_importers_rejects_are_one_list(tmp_path) -> None:
    text = "国标代码,药品通用名\n,缺代码\nXL01,甲\nbad code,乙\n"
    with open_table(write(tmp_path / "t.csv", text), RULE_SPEC) as table:
        for row in table:
            if " " in row.text("code"):
                table.reject(row, f"国标代码格式错误：{row.text('code')}")
    assert [(p.line, p.message) for p in table.problems] == [
        (2, "缺少“国标代码”"),
        (4, "国标代码格式错误：bad code"),
    ]
    assert str(table.problems[0]) == "第 2 行：缺少“国标代码”"


def test_a_missing_required_column_is_one_file_level_error_naming_it(tmp_path) -> None:
    path = write(tmp_path / "t.csv", "药品通用名,限定类型\n甲,限定年龄\n")
    with pytest.raises(HeaderNotFound) as info:
        open_table(path, RULE_SPEC)
    assert info.value.missing == ("code",)
    assert "缺少列 “国标代码”" in str(info.value) and "药品通用名、限定类型" in str(info.value)


def test_a_file_in_the_documented_column_order_may_have_no_header(tmp_path) -> None:
    path = write(tmp_path / "t.csv", "001,甲\n002,乙\n")
    with open_table(path, RULE_SPEC, headerless={"code": 0, "name": 1}) as table:
        assert [(r.line, r.text("code")) for r in table] == [(1, "001"), (2, "002")]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("t.csv", b"\xff\xfe\x00\xd8 broken", "无法识别文件编码"),
        ("t.xls", b"old", "不支持旧版 .xls"),
        ("t.pdf", b"x", "不支持的文件类型"),
        ("t.xlsx", b"not a workbook", "无法打开 Excel 文件"),
    ],
)
def test_unreadable_files_are_refused_with_the_reason(tmp_path, name, content, message) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(TableError, match=message):
        list(open_table(path, RULE_SPEC))
    with pytest.raises(TableError, match="文件不存在"):
        open_table(tmp_path / "absent.csv", RULE_SPEC)


def test_a_csv_that_breaks_part_way_names_the_line(tmp_path) -> None:
    import csv

    limit = csv.field_size_limit(1000)  # settlement raises the process-wide limit; pin it here
    try:
        path = write(tmp_path / "t.csv", "项目代码\n001\n" + "x" * 2000 + "\n")
        table = open_table(path, RULE_SPEC)
        with pytest.raises(TableError, match="第 3 行无法解析"):
            list(table)
    finally:
        csv.field_size_limit(limit)


# ---------------------------------------------------------------------------------- workbooks


@pytest.fixture
def nhsa_like(tmp_path) -> Path:
    """Two sheets as the NHSA publishes them: rules without codes, then the codes."""
    return workbook(
        tmp_path / "【第一批】药品规则库.xlsx",
        {
            "Sheet1": [["药品通用名", "药品说明", "限定类型"], ["儿童清肺口服液", "清肺", "限定年龄对象"]],
            "Sheet2": [
                ["药品通用名", "序号", "国标代码", "限定类型"],
                ["儿童清肺口服液", 1, "ZA04CAE00230", "限定年龄对象"],
            ],
            "“医疗服务项目重复收费”规则对应知识点明细": [
                ["序号", "主项名称", "主项编码"],
                [1, "急诊监护费", "001103000010"],
            ],
        },
    )


def test_the_sheet_is_found_by_its_header_when_not_named(nhsa_like) -> None:
    with open_table(nhsa_like, RULE_SPEC) as table:
        rows = list(table)
    assert table.sheet == "Sheet2" and table.columns["code"] == 2
    assert [(r.line, r.text("code"), r["limit_type"]) for r in rows] == [(2, "ZA04CAE00230", "限定年龄对象")]


def test_a_sheet_is_chosen_by_name_or_by_a_pattern_of_its_sentence(nhsa_like) -> None:
    items = TableSpec.from_mapping({"code": ["主项编码"], "name": ["主项名称"]}, required=["code"])
    with open_table(nhsa_like, items, sheet=re.compile("重复收费")) as table:
        assert [r.text("code") for r in table] == ["001103000010"]
        assert table.sheet == "“医疗服务项目重复收费”规则对应知识点明细"
    with pytest.raises(TableError, match="没有工作表“Sheet9”.*Sheet1"):
        open_table(nhsa_like, RULE_SPEC, sheet="Sheet9")
    with pytest.raises(HeaderNotFound, match="工作表“Sheet1”"):
        open_table(nhsa_like, RULE_SPEC, sheet="Sheet1")


def test_read_sheets_gives_every_sheet_with_its_first_row_as_header(nhsa_like) -> None:
    sheets = read_sheets(nhsa_like)
    assert [s.name for s in sheets][:2] == ["Sheet1", "Sheet2"]
    assert sheets[1].header[2] == "国标代码" and sheets[1].rows == [
        (2, ["儿童清肺口服液", 1, "ZA04CAE00230", "限定年龄对象"])
    ]


def test_numbers_and_dates_from_excel_read_as_text_people_expect(tmp_path) -> None:
    from datetime import datetime

    path = workbook(tmp_path / "t.xlsx", {"S": [["项目编码", "项目名称"], [1850.0, datetime(2026, 1, 2)]]})
    (row,) = list(open_table(path, RULE_SPEC))
    assert (row.text("code"), row.text("name"), row["code"]) == ("1850", "2026-01-02", 1850)


# ---------------------------------------------------------------------------------- aliases as data


def test_header_spellings_compare_without_case_blanks_and_bracketed_notes() -> None:
    assert header_key(" DIP_CODE ") == header_key("dip code") == header_key("Dip-Code")
    assert header_key("病种类型（1.核心病种；2.综合病种）") == header_key("病种类型")
    assert header_key("`YEAR`") == "year"


def test_exact_spellings_win_over_patterns_and_a_column_serves_one_name() -> None:
    spec = TableSpec.from_mapping({"source": ["*国临*编码"], "code": ["编码", "*编码"]})
    assert spec.match(["国临版编码", "编码"]) == {"source": 0, "code": 1}
    assert spec.match(["国临版编码", "医保版编码"]) == {"source": 0, "code": 1}


def test_aliases_come_from_toml_and_a_regions_file_adds_to_them(tmp_path) -> None:
    base = write(tmp_path / "h.toml", '[rules]\ncode = ["国标代码"]\n')
    extra = write(tmp_path / "home.toml", '[rules]\ncode = ["医保代码"]\n')
    spec = TableSpec.from_toml(base, "rules", required=["code"], extra=extra)
    assert spec.columns["code"] == ("国标代码", "医保代码")
    assert TableSpec.from_toml(base, "rules", extra=tmp_path / "absent.toml").columns["code"] == ("国标代码",)
    with pytest.raises(TableError, match="字符串列表"):
        TableSpec.from_toml(write(tmp_path / "bad.toml", "[rules]\ncode = 1\n"), "rules")
    with pytest.raises(TableError):
        TableSpec.from_toml(write(tmp_path / "broken.toml", "[rules\n"), "rules")
    with pytest.raises(ValueError, match="without aliases"):
        TableSpec.from_mapping({"code": ["x"]}, required=["name"])


# ---------------------------------------------------------------------------------- the real workbooks

RULES = SHARED_DATA / "rules" / "nhsa-rule-library"


@pytest.mark.slow
def test_every_real_nhsa_rule_workbook_opens_with_its_code_column() -> None:
    books = sorted(RULES.glob("*.xls*")) if RULES.is_dir() else []
    if not books:
        pytest.skip("the NHSA rule workbooks are absent")
    spec = TableSpec.from_mapping(
        {"code": ["国标代码", "药品代码", "项目编码", "项目代码", "主项编码"]}, required=["code"]
    )
    for book in books:
        with open_table(book, spec) as table:
            rows = list(table)
        assert rows and all(r.line > table.header_line for r in rows), book.name
        assert len(table.problems) < len(rows), (book.name, table.problems[:3])
