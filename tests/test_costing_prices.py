"""Price list import (CSV/XLSX, Chinese/English headers), storage in the data home, sample fallback."""

from __future__ import annotations

from decimal import Decimal

import pytest
from click.testing import CliRunner
from openpyxl import Workbook

from costing import PriceImportError, import_prices, load_prices, normalize_category, read_price_file

CHINESE_CSV = """项目编码,项目名称,单价,费用类别,计价单位
47.0100,腹腔镜下阑尾切除术,"1,850.00",06,次
250101001,血常规,20,化验费,次
XY0001,注射用头孢曲松钠 1g,8.5,西药,支
"""


def write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_chinese_headers_amounts_with_separators_and_category_names(tmp_path):
    items = read_price_file(write(tmp_path, "prices.csv", CHINESE_CSV))
    by_code = {i.code: i for i in items}
    assert by_code["47.0100"].unit_price == Decimal("1850.00") and by_code["47.0100"].category == "06"
    assert by_code["250101001"].category == "04"
    assert by_code["XY0001"].category == "09" and by_code["XY0001"].unit == "支"


def test_english_headers_tab_separated_and_gb18030_encoded(tmp_path):
    text = "Item Code\tName\tUnit Price\tCategory\tUnit\n88.4101\t脑血管造影\t2600\t03\t次\n"
    items = read_price_file(write(tmp_path, "prices.tsv", text, encoding="gb18030"))
    assert [(i.code, i.name, i.unit_price, i.category) for i in items] == [
        ("88.4101", "脑血管造影", Decimal("2600"), "03")
    ]


def test_xlsx_with_a_title_row_above_the_header(tmp_path):
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["某某医院 2026 年收费价目表（演示）"])
    sheet.append(["收费项目编码", "收费项目名称", "价格（元）", "收费类别", "单位"])
    sheet.append(["47.0100", "腹腔镜下阑尾切除术", 1850, "手术费", "次"])
    sheet.append([330100005, "全身麻醉", 1200.0, 6, "次"])
    path = tmp_path / "prices.xlsx"
    workbook.save(path)
    items = read_price_file(path)
    assert [(i.code, i.unit_price, i.category) for i in items] == [
        ("47.0100", Decimal("1850"), "06"),
        ("330100005", Decimal("1200"), "06"),
    ]


def test_bad_lines_reject_the_file_and_every_one_is_reported_with_its_line_number(tmp_path):
    text = CHINESE_CSV + ",缺编码,10,04,次\nX1,负价格,-5,04,次\nX2,类别错,5,99,次\n47.0100,重复,1,06,次\n"
    with pytest.raises(PriceImportError) as info:
        read_price_file(write(tmp_path, "bad.csv", text))
    lines = {e.line: e.message for e in info.value.errors}
    assert sorted(lines) == [5, 6, 7, 8]
    assert "item code is empty" in lines[5]
    assert "non-negative" in lines[6]
    assert "费用类别" in lines[7]
    assert "line 2" in lines[8]
    assert "line 5" in str(info.value)


def test_a_file_without_the_required_columns_is_refused(tmp_path):
    with pytest.raises(PriceImportError, match="header"):
        read_price_file(write(tmp_path, "x.csv", "a,b,c\n1,2,3\n"))
    with pytest.raises(PriceImportError, match="Excel"):
        read_price_file(write(tmp_path, "x.xlsx", "not a workbook"))


def test_import_stores_the_list_in_the_data_home_and_replaces_the_sample(tmp_path):
    assert load_prices(tmp_path).is_sample
    report = import_prices(tmp_path, write(tmp_path, "prices.csv", CHINESE_CSV))
    assert report.item_count == 3 and report.categories == {"04": 1, "06": 1, "09": 1}
    prices = load_prices(tmp_path)
    assert not prices.is_sample and len(prices) == 3 and "prices.csv" in prices.source
    assert prices.get("47.0100").unit_price == Decimal("1850.00")
    assert prices.get("88.4101") is None  # only the imported list counts now


def test_a_rejected_import_leaves_the_previous_list_untouched(tmp_path):
    import_prices(tmp_path, write(tmp_path, "good.csv", CHINESE_CSV))
    with pytest.raises(PriceImportError):
        import_prices(tmp_path, write(tmp_path, "bad.csv", "项目编码,项目名称,单价,费用类别\nA,b,x,01\n"))
    assert len(load_prices(tmp_path)) == 3


def test_sample_list_prices_the_demo_orders_and_is_labelled_sample():
    prices = load_prices(None)
    assert prices.is_sample and "示例" in prices.source
    for code in ("47.0100", "210300001", "250101001", "XY0001", "39.7400X002"):
        assert prices.get(code) is not None, code


def test_category_names_and_codes_normalise():
    assert normalize_category("6") == normalize_category("手术") == normalize_category("06 手术费") == "06"
    assert normalize_category("检验费") == "04"
    assert (
        normalize_category("15") is None
        and normalize_category("") is None
        and normalize_category(None) is None
    )
    assert normalize_category("06 床位费") is None  # contradicting code and name


def test_cli_imports_and_reports_bad_lines(tmp_path):
    from cds_service.cli import main

    runner = CliRunner()
    ok = runner.invoke(
        main, ["--home", str(tmp_path), "data", "import-prices", str(write(tmp_path, "p.csv", CHINESE_CSV))]
    )
    assert ok.exit_code == 0, ok.output
    assert "imported 3 price items" in ok.output
    bad = runner.invoke(
        main,
        [
            "--home",
            str(tmp_path),
            "data",
            "import-prices",
            str(write(tmp_path, "b.csv", CHINESE_CSV + "X,y,abc,01\n")),
        ],
    )
    assert bad.exit_code != 0 and "line 5" in bad.output


def test_a_corrupt_price_store_falls_back_to_the_labelled_sample_and_says_so(tmp_path, caplog):
    (tmp_path / "prices.sqlite").write_bytes(b"this is not a database" * 100)
    with caplog.at_level("ERROR"):
        prices = load_prices(tmp_path)
    assert prices.is_sample and "示例" in prices.source
    assert "prices.sqlite" in caplog.text
